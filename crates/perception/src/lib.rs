//! profundo's perception domain: what a traffic sign says, also under snow, fog and dirt.
//!
//! The same rooms in the same order as every domain:
//! - [`gtsrb`]: reading GTSRB's official layout (zipped or unpacked, ROI crops) and class
//!   folders; [`picture`]: decoding images with size limits, crops, resizing; [`classes`]:
//!   the 43 sign names.
//! - [`augment`]: seeded training augmentation; [`corrupt`]: the corruption suite (snow,
//!   fog, smudges, occlusion, motion blur, noise, low light at three severities).
//! - [`model`]: the CNN (contrast normalisation, conv stages with batch norm, a head on
//!   the flattened map).
//! - [`train`]: the `perception.train` stage (the shared loop, validation by whole tracks)
//!   and the typed model directory.
//! - [`stages`]: `perception.load_signs` and `perception.corruptions` (robustness).
//! - [`bench`]: the CNN as `profundo bench models` times it.
//! - [`app`]: `classify` sign images, with an occlusion heat map that explains the answer.

#![warn(missing_docs)]

pub mod app;
pub mod augment;
pub mod bench;
pub mod classes;
pub mod corrupt;
pub mod error;
pub mod gtsrb;
pub mod model;
pub mod picture;
pub mod stages;
pub mod train;

pub use error::{PerceptionError, Result};

/// Registers the perception stage kinds.
pub fn register(reg: &mut profundo_pipeline::Registry) {
    stages::register(reg);
}
