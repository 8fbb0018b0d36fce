//! profundo's face domain: face images in, identities out.
//!
//! - [`preprocess`]: decode PGM/PNG/JPEG/GIF/BMP, convert to grey, fit to the input size,
//!   normalise; [`folders`]: `<root>/<person>/<image>` datasets.
//! - [`detect`]: MTCNN face detection with five landmarks (shipped pretrained weights).
//! - [`align`]: similarity transform from five landmarks onto a template, bilinear warp.
//! - [`draw`]: detections drawn on the photo.
//! - [`augment`]: seeded flip, shift/scale/rotation, brightness/contrast for training.
//! - [`model`]: a residual CNN producing L2-normalised embeddings, trained with a CosFace or
//!   ArcFace margin over the training identities.
//! - [`eigenfaces`]: the PCA baseline; [`verification`]: ROC, AUC, EER, TAR@FAR;
//!   [`score_norm`]: centring and S-norm of scores against a cohort of other people;
//!   [`whiten`]: PCA whitening of centred embeddings.
//! - [`scenes`]: whole-photo test scenes made from face crops (placement, side lighting).
//! - [`stages`]: pipeline stage kinds `faces.load_images`, `faces.train_embedding`,
//!   `faces.eigenfaces`, `faces.evaluate`.
//! - [`model_dir`]: the model directory (typed manifest section, saving the networks).
//! - [`bench`]: the embedding network as `profundo bench models` times it.
//! - [`app`] and [`gallery`]: embed, verify, enroll and identify; [`photo`]: whole photos
//!   (detect, align and embed every face).

#![warn(missing_docs)]

pub mod align;
pub mod app;
pub mod augment;
pub mod bench;
pub mod detect;
pub mod draw;
pub mod eigenfaces;
pub mod error;
pub mod folders;
pub mod gallery;
pub mod model;
pub mod model_dir;
pub mod photo;
pub mod photometric;
pub mod preprocess;
pub mod scenes;
pub mod score_norm;
pub mod stages;
pub mod verification;
pub mod whiten;

pub use error::{FacesError, Result};

/// Registers the face stage kinds and artifact types.
pub fn register(reg: &mut profundo_pipeline::Registry) {
    stages::register(reg);
}
