//! The face library API in a few lines: load a trained model, enroll people into an
//! in-memory gallery, identify a face, and verify two faces.
//!
//! ```text
//! cargo run --release -- run pipelines/faces-orl.toml        # trains runs/faces-orl/latest
//! cargo run --release -p profundo-faces --example identify -- \
//!     runs/faces-orl/latest "$PROFUNDO_DATA/faces/orl"
//! ```
//! With the ORL layout (`s1/1.pgm` ...), people `s1`..`s3` are enrolled from images 1-5 and
//! image 6 of each is identified.

use std::path::PathBuf;

use profundo_core::backend::BackendKind;
use profundo_faces::app::FaceModel;
use profundo_faces::gallery::{Enrolled, Gallery};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model_dir), Some(faces)) = (args.next(), args.next()) else {
        eprintln!("usage: identify MODEL_OR_RUN_DIR FACES_ROOT");
        std::process::exit(2);
    };
    let faces = PathBuf::from(faces);
    let model = FaceModel::load(model_dir.as_ref(), BackendKind::Flex, "cpu")?;
    let mut gallery = Gallery::new(model.model_id(), model.dim());
    let people = ["s1", "s2", "s3"];
    for person in people {
        let mut images = Vec::new();
        for i in 1..=5 {
            let path = faces.join(person).join(format!("{i}.pgm"));
            images.push(Enrolled {
                image: path.display().to_string(),
                embedding: model.embed_file(&path)?,
            });
        }
        gallery.enroll(person, images)?;
    }
    for person in people {
        let query = faces.join(person).join("6.pgm");
        let embedding = model.embed_file(&query)?;
        if let Some(m) = gallery.identify(&embedding, model.threshold()) {
            println!("{}: {} (score {:.3})", query.display(), m.name, m.score);
        }
    }
    let verdict = model.verify(&faces.join("s1/7.pgm"), &faces.join("s2/7.pgm"))?;
    println!(
        "s1/7 vs s2/7: {} (score {:.3}, threshold {:.3})",
        if verdict.same {
            "same person"
        } else {
            "different people"
        },
        verdict.score,
        verdict.threshold
    );
    Ok(())
}
