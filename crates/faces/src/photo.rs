//! Whole photos in the face apps: detect every face (MTCNN), align each one from its five
//! landmarks onto the framing the embedding network was trained on, and embed it.
//!
//! The embedding networks here are trained on ORL-style crops: a 92x112 frame holding the
//! whole head. [`ORL_TEMPLATE`] is where the five landmarks sit in such a frame, so an
//! aligned face from any photo looks like a training crop before the model's own
//! preprocessing (resize, normalisation) runs on it.

use std::path::Path;

use crate::align::{Grey, align_face};
use crate::app::FaceModel;
use crate::detect::{Detector, Face, Planes};
use crate::preprocess::{Preprocess, read_image};
use crate::{FacesError, Result};

/// Width of the aligned frame (ORL's).
pub const ALIGNED_WIDTH: u32 = 92;
/// Height of the aligned frame (ORL's).
pub const ALIGNED_HEIGHT: u32 = 112;

/// Where MTCNN puts the five landmarks (eyes, nose tip, mouth corners) in the 92x112 ORL
/// crops on average: the mean over all 320 images of `faces/orl` (the reference MTCNN
/// finds exactly one face in each). `tests/faces_detect.rs` recomputes it with profundo's
/// detector when the data folder has ORL.
pub const ORL_TEMPLATE: [[f64; 2]; 5] = [
    [27.45, 53.07],
    [62.14, 53.20],
    [44.45, 71.44],
    [29.43, 87.59],
    [59.33, 87.92],
];

/// One face of a photo and its embedding.
#[derive(Debug, Clone)]
pub struct FaceEmbedding {
    /// The detection (box, score, landmarks); for a whole image used as a crop
    /// (`--no-detect`), the whole image as the box, score 1 and no landmarks.
    pub face: Face,
    /// The embedding.
    pub embedding: Vec<f32>,
}

/// Every face of a photo, largest first, with its network input: detected, aligned onto
/// the ORL framing ([`ORL_TEMPLATE`]), then preprocessed as `pre` says (`path` names the
/// photo in errors).
pub fn aligned_inputs(
    detector: &Detector,
    pre: &Preprocess,
    img: &image::DynamicImage,
    path: &Path,
) -> Result<Vec<(Face, Vec<f32>)>> {
    let planes = Planes::from_image(img);
    let faces = detector.detect(&planes);
    let grey = Grey::of(&planes);
    faces
        .into_iter()
        .map(|f| {
            let aligned = align_face(
                &grey,
                &f.landmarks,
                &ORL_TEMPLATE,
                ALIGNED_WIDTH,
                ALIGNED_HEIGHT,
            )
            .ok_or_else(|| FacesError::Image {
                path: path.to_path_buf(),
                message: format!("the face at {:?} has degenerate landmarks", f.bbox),
            })?;
            let input = pre.input(&image::DynamicImage::ImageLuma8(aligned), path)?;
            Ok((f, input))
        })
        .collect()
}

/// The face model with the detector in front of it.
pub struct PhotoFaces<'a> {
    /// The embedding model.
    pub model: &'a FaceModel,
    /// The detector; none uses each image whole, as a face crop (`--no-detect`).
    pub detector: Option<&'a Detector>,
}

impl PhotoFaces<'_> {
    /// Every face of the photo at `path`, largest first, with its embedding. A photo in
    /// which no face is found gives an empty list (the caller says so for that photo).
    pub fn faces(&self, path: &Path) -> Result<Vec<FaceEmbedding>> {
        let img = read_image(path)?;
        self.faces_in(&img, path)
    }

    /// [`Self::faces`] on a decoded image (`path` names it in errors).
    pub fn faces_in(&self, img: &image::DynamicImage, path: &Path) -> Result<Vec<FaceEmbedding>> {
        let pre = self.model.preprocess();
        let (faces, inputs): (Vec<Face>, Vec<Vec<f32>>) = match self.detector {
            Some(detector) => aligned_inputs(detector, pre, img, path)?
                .into_iter()
                .unzip(),
            None => {
                let (w, h) = (img.width() as f32, img.height() as f32);
                let whole = Face {
                    bbox: [0.0, 0.0, w, h],
                    score: 1.0,
                    landmarks: [[0.0; 2]; 5],
                };
                (vec![whole], vec![pre.input(img, path)?])
            }
        };
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = self.model.embed_inputs(&inputs);
        Ok(faces
            .into_iter()
            .zip(embeddings)
            .map(|(face, embedding)| FaceEmbedding { face, embedding })
            .collect())
    }

    /// The one face to enroll or verify from a photo: its only face, or its largest when
    /// `largest` is set; an error naming the photo when there is none, or several without
    /// `largest`.
    pub fn one_face(&self, path: &Path, largest: bool) -> Result<FaceEmbedding> {
        let mut faces = self.faces(path)?;
        let bad = |message: String| FacesError::Image {
            path: path.to_path_buf(),
            message,
        };
        match faces.len() {
            0 => Err(bad(
                "no face found (an image that is already a face crop: --no-detect)".into(),
            )),
            1 => Ok(faces.remove(0)),
            n if largest => {
                tracing::info!("{}: {n} faces, using the largest", path.display());
                Ok(faces.remove(0))
            }
            n => Err(bad(format!(
                "{n} faces found; which one is meant? --largest takes the largest, or crop \
                 the photo (boxes: {})",
                faces
                    .iter()
                    .map(|f| format!("{:?}", f.face.bbox.map(|v| v.round() as i64)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// One face of a photo as `faces identify --json` reports it, one per line (the server's
/// identify route answers a list of them).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentifiedFace {
    /// The photo.
    pub path: String,
    /// The face's box, `[x1, y1, x2, y2]` in pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The person, or `unknown` under the model's threshold.
    pub name: String,
    /// The closest enrolled person, even under the threshold.
    pub nearest: Option<String>,
    /// Cosine similarity to that person's template.
    pub score: f64,
}

impl IdentifiedFace {
    /// The report of `face` in the photo `path`, matched as `m`.
    pub fn new(path: String, face: &Face, m: crate::gallery::Match) -> Self {
        Self {
            path,
            bbox: face.bbox,
            name: m.name,
            nearest: m.nearest,
            score: m.score,
        }
    }
}
