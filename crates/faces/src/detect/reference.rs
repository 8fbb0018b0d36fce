//! The parity fixture: what the reference MTCNN (facenet-pytorch 2.6.0) finds on the
//! shipped photos and the dlib detection photos (`scripts/mtcnn-reference.sh` writes it),
//! and how a detection run is compared with it.

use serde::Deserialize;

use super::Face;
use super::metrics::iou;

/// The fixture, compiled in.
pub const FIXTURE: &str = include_str!("../../tests/fixtures/mtcnn-reference.json");

/// The reference detector's output on a set of photos.
#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    /// Which program wrote it.
    pub generator: String,
    /// One entry per photo.
    pub photos: Vec<ReferencePhoto>,
}

/// The reference's faces in one photo.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferencePhoto {
    /// `repo` (path relative to the repository) or `data` (relative to the data folder).
    pub root: String,
    /// The photo.
    pub path: String,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// The faces, largest first.
    pub faces: Vec<Face>,
}

impl Reference {
    /// The compiled-in fixture.
    pub fn builtin() -> Self {
        serde_json::from_str(FIXTURE).expect("the compiled-in MTCNN fixture is valid JSON")
    }
}

/// How far `found` is from `reference`: for each reference face, the found face of highest
/// IoU, that IoU and the largest landmark distance in pixels. A reference face with no
/// overlapping detection gets IoU 0 and an infinite distance.
pub fn compare(found: &[Face], reference: &[Face]) -> Vec<(f32, f32)> {
    reference
        .iter()
        .map(|r| {
            found
                .iter()
                .map(|f| {
                    let dist = f
                        .landmarks
                        .iter()
                        .zip(&r.landmarks)
                        .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
                        .fold(0.0f32, f32::max);
                    (iou(&f.bbox, &r.bbox), dist)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((0.0, f32::INFINITY))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Detector, DetectorConfig};
    use super::*;

    /// The Burn detector finds what the reference finds on the shipped photos: every face
    /// with IoU >= 0.95, landmarks within 2 px, score within 0.01, and no other face.
    #[test]
    fn matches_the_reference_mtcnn_on_the_shipped_photos() {
        let reference = Reference::builtin();
        let detector = Detector::on_cpu(DetectorConfig::default()).unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let shipped: Vec<_> = reference
            .photos
            .iter()
            .filter(|p| p.root == "repo")
            .collect();
        assert!(shipped.len() >= 3, "{}", reference.generator);
        for photo in shipped {
            let img = image::open(repo.join(&photo.path)).unwrap();
            let found = detector.detect_image(&img);
            assert_eq!(found.len(), photo.faces.len(), "{}: {found:?}", photo.path);
            for ((overlap, dist), r) in compare(&found, &photo.faces).iter().zip(&photo.faces) {
                assert!(
                    *overlap >= 0.95 && *dist <= 2.0,
                    "{}: IoU {overlap}, landmarks off by {dist} px: {found:?} vs {r:?}",
                    photo.path
                );
            }
            for (f, r) in found.iter().zip(&photo.faces) {
                assert!(
                    (f.score - r.score).abs() < 0.01,
                    "{}: {f:?} {r:?}",
                    photo.path
                );
            }
        }
    }
}
