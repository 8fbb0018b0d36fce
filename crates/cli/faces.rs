//! `profundo faces detect | enroll | identify | verify | gallery`.

use std::path::{Path, PathBuf};

use profundo_faces::app::FaceModel;
use profundo_faces::detect::{Detector, DetectorConfig, Face};
use profundo_faces::draw::{KNOWN, UNKNOWN, draw_faces, save_png};
use profundo_faces::gallery::{Enrolled, Gallery, UNKNOWN_NAME};
use profundo_faces::photo::{IdentifiedFace, PhotoFaces};
use profundo_faces::preprocess::read_image;
use serde::Serialize;

use crate::args::{
    DetectArgs, EnrollArgs, FacesArgs, FacesCommand, FindingArgs, GalleryArgs, IdentifyArgs,
    VerifyArgs,
};

pub fn faces(a: FacesArgs) -> anyhow::Result<()> {
    match a.command {
        FacesCommand::Detect(d) => detect(d),
        FacesCommand::Enroll(e) => enroll(e),
        FacesCommand::Identify(i) => identify(i),
        FacesCommand::Verify(v) => verify(v),
        FacesCommand::Gallery(g) => gallery(g),
    }
}

/// One photo's line of `faces detect --json`.
#[derive(Serialize)]
struct DetectedPhoto<'a> {
    path: String,
    faces: &'a [Face],
}

fn detect(a: DetectArgs) -> anyhow::Result<()> {
    let detector = load_detector(a.min_face_size)?;
    let drawings = drawing_paths(&a.photos, a.draw.as_deref())?;
    let mut failed = 0;
    for (k, path) in a.photos.iter().enumerate() {
        let img = match read_image(path) {
            Ok(img) => img,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
                continue;
            }
        };
        let faces = detector.detect_image(&img);
        if a.json {
            let line = DetectedPhoto {
                path: path.display().to_string(),
                faces: &faces,
            };
            println!("{}", serde_json::to_string(&line)?);
        } else if faces.is_empty() {
            println!("{}\tno face found", path.display());
        } else {
            println!("{}\t{} face(s)", path.display(), faces.len());
            for f in &faces {
                let [x1, y1, x2, y2] = f.bbox;
                println!(
                    "  box {x1:.0},{y1:.0},{x2:.0},{y2:.0}\tscore {:.3}",
                    f.score
                );
            }
        }
        if let Some(out) = drawings.get(k) {
            save_png(out, &draw_faces(&img, &faces, &[]))?;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} photo(s) could not be read", a.photos.len());
    }
    Ok(())
}

/// Where `--draw` puts each photo's drawing: the given file for one photo, `<stem>.png` in
/// the given folder for several (two photos of one name are refused up front).
fn drawing_paths(photos: &[PathBuf], draw: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let Some(out) = draw else {
        return Ok(Vec::new());
    };
    if let [_] = photos {
        return Ok(vec![out.to_path_buf()]);
    }
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("--draw {}: cannot create the folder: {e}", out.display()))?;
    let mut seen = std::collections::HashMap::new();
    photos
        .iter()
        .map(|p| {
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            let target = out.join(format!("{stem}.png"));
            if let Some(first) = seen.insert(target.clone(), p) {
                anyhow::bail!(
                    "--draw: {} and {} would both be drawn to {}; draw them separately",
                    first.display(),
                    p.display(),
                    target.display()
                );
            }
            Ok(target)
        })
        .collect()
}

/// The shipped detector on the CPU (flex), searching faces of `min_face_size` pixels and up.
pub(crate) fn load_detector(min_face_size: f64) -> anyhow::Result<Detector> {
    Ok(Detector::on_cpu(DetectorConfig {
        min_face_size,
        ..DetectorConfig::default()
    })?)
}

/// The detector the apps run before the model, or none with `--no-detect`.
fn detector(f: &FindingArgs) -> anyhow::Result<Option<Detector>> {
    (!f.no_detect)
        .then(|| load_detector(f.min_face_size))
        .transpose()
}

fn enroll(a: EnrollArgs) -> anyhow::Result<()> {
    let model = FaceModel::load(&a.model.model, a.model.backend, &a.model.device)?;
    let detector = detector(&a.finding)?;
    let photos = PhotoFaces {
        model: &model,
        detector: detector.as_ref(),
    };
    let mut gallery = Gallery::open_or_new(&a.gallery, model.model_id(), model.dim())?;
    // Embed every image first: one bad file changes nothing in the gallery.
    let mut images = Vec::with_capacity(a.images.len());
    for path in &a.images {
        images.push(Enrolled {
            image: path.display().to_string(),
            embedding: photos.one_face(path, a.largest)?.embedding,
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
    let detector = detector(&a.finding)?;
    let photos = PhotoFaces {
        model: &model,
        detector: detector.as_ref(),
    };
    let drawings = drawing_paths(&a.images, a.draw.as_deref())?;
    let mut failed = 0;
    for (k, path) in a.images.iter().enumerate() {
        let found = read_image(path).and_then(|img| Ok((photos.faces_in(&img, path)?, img)));
        let (faces, img) = match found {
            Ok(found) => found,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
                continue;
            }
        };
        if faces.is_empty() {
            failed += 1;
            eprintln!(
                "error: {}: no face found (an image that is already a face crop: --no-detect)",
                path.display()
            );
        }
        let mut colours = Vec::with_capacity(faces.len());
        for f in &faces {
            let Some(m) = gallery.identify(&f.embedding, model.threshold()) else {
                anyhow::bail!("{}: no one to compare with", a.gallery.display());
            };
            colours.push(if m.name == UNKNOWN_NAME {
                UNKNOWN
            } else {
                KNOWN
            });
            let line = IdentifiedFace::new(path.display().to_string(), &f.face, m);
            if a.json {
                println!("{}", serde_json::to_string(&line)?);
            } else {
                let [x1, y1, x2, y2] = line.bbox.map(|v| v.round() as i64);
                println!(
                    "{}\t{x1},{y1},{x2},{y2}\t{}\t{:.3}",
                    line.path, line.name, line.score
                );
            }
        }
        if let Some(out) = drawings.get(k) {
            let boxes: Vec<Face> = faces.iter().map(|f| f.face.clone()).collect();
            save_png(out, &draw_faces(&img, &boxes, &colours))?;
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
    let detector = detector(&a.finding)?;
    let photos = PhotoFaces {
        model: &model,
        detector: detector.as_ref(),
    };
    let x = photos.one_face(&a.image_a, a.largest)?;
    let y = photos.one_face(&a.image_b, a.largest)?;
    let v = model.verdict(&x.embedding, &y.embedding);
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
