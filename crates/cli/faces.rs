//! `profundo faces enroll | identify | verify | gallery`.

use profundo_faces::app::FaceModel;
use profundo_faces::gallery::{Enrolled, Gallery};

use crate::args::{EnrollArgs, FacesArgs, FacesCommand, GalleryArgs, IdentifyArgs, VerifyArgs};

pub fn faces(a: FacesArgs) -> anyhow::Result<()> {
    match a.command {
        FacesCommand::Enroll(e) => enroll(e),
        FacesCommand::Identify(i) => identify(i),
        FacesCommand::Verify(v) => verify(v),
        FacesCommand::Gallery(g) => gallery(g),
    }
}

fn enroll(a: EnrollArgs) -> anyhow::Result<()> {
    let model = FaceModel::load(&a.model.model, a.model.backend, &a.model.device)?;
    let mut gallery = Gallery::open_or_new(&a.gallery, model.model_id(), model.dim())?;
    // Embed every image first: one bad file changes nothing in the gallery.
    let mut images = Vec::with_capacity(a.images.len());
    for path in &a.images {
        images.push(Enrolled {
            image: path.display().to_string(),
            embedding: model.embed_file(path)?,
        });
    }
    let added = images.len();
    let total = gallery.enroll(&a.name, images)?;
    gallery.save(&a.gallery)?;
    println!(
        "enrolled {} image(s) of `{}` ({total} in all) in {}",
        added,
        a.name,
        a.gallery.display()
    );
    Ok(())
}

fn identify(a: IdentifyArgs) -> anyhow::Result<()> {
    let model = FaceModel::load(&a.model.model, a.model.backend, &a.model.device)?;
    let gallery = Gallery::load(&a.gallery, Some((model.model_id(), model.dim())))?;
    if gallery.people.is_empty() {
        anyhow::bail!(
            "{}: the gallery is empty; enroll people first with `profundo faces enroll`",
            a.gallery.display()
        );
    }
    let mut failed = 0;
    for path in &a.images {
        let m = model
            .embed_file(path)
            .map(|e| gallery.identify(&e, model.threshold()));
        match m {
            Ok(Some(m)) if a.json => println!(
                "{}",
                serde_json::json!({"path": path.display().to_string(), "name": m.name, "score": m.score, "nearest": m.nearest})
            ),
            Ok(Some(m)) => println!("{}\t{}\t{:.3}", path.display(), m.name, m.score),
            Ok(None) => {
                failed += 1;
                eprintln!("error: {}: no one to compare with", path.display());
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} image(s) could not be identified",
            a.images.len()
        );
    }
    Ok(())
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let model = FaceModel::load(&a.model.model, a.model.backend, &a.model.device)?;
    let v = model.verify(&a.image_a, &a.image_b)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"same": v.same, "score": v.score, "threshold": v.threshold})
        );
    } else {
        println!(
            "{} (score {:.3}, threshold {:.3})",
            if v.same {
                "same person"
            } else {
                "different people"
            },
            v.score,
            v.threshold
        );
    }
    Ok(())
}

fn gallery(a: GalleryArgs) -> anyhow::Result<()> {
    let mut gallery = Gallery::load(&a.gallery, None)?;
    if let Some(name) = &a.remove {
        gallery.remove(name, &a.gallery)?;
        gallery.save(&a.gallery)?;
        println!("removed `{name}` from {}", a.gallery.display());
        return Ok(());
    }
    if a.json {
        let people: Vec<_> = gallery
            .people
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "images": p.images.len()}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"model_id": gallery.model_id, "embedding_dim": gallery.embedding_dim, "people": people})
        );
    } else {
        println!(
            "{}: {} people (model {})",
            a.gallery.display(),
            gallery.people.len(),
            gallery.model_id
        );
        for p in &gallery.people {
            println!("{}\t{} image(s)", p.name, p.images.len());
        }
    }
    Ok(())
}
