//! profundo's backbone: everything the domains share and nothing domain-specific.
//!
//! - [`backend`]: picks the Burn device (`flex` by default) from a name, at run time.
//! - [`bench`]: what `profundo bench models` times, as the domains describe their workloads.
//! - [`train`]: one training loop with seeding, early stopping, checkpoints, resume, NaN
//!   detection, learning-rate schedules and a wall-clock budget.
//! - [`model`]: what the loop needs of a network (the [`model::Classifier`] trait, batch-norm
//!   statistics, global average pooling); the networks live in the domains.
//! - [`manifest`]: the `manifest.json` that lets an app load a model without its pipeline.
//! - [`metrics`]: classification metrics (accuracy, top-k, confusion matrix, P/R/F1).
//! - [`plots`]: training curves and confusion matrices as PNG.
//! - [`fsutil`]: atomic file and directory writes.
//! - [`seed`]: one seed per purpose and step, derived from the pipeline seed.
//! - [`image_file`]: decoding users' image files with size limits and EXIF orientation.
//! - [`conv`], [`pool`], [`norm`], [`activation`], [`block`]: the layers with profundo's
//!   own kernels, re-exported from the `profundo-kernels` crate where they live.

#![warn(missing_docs)]

pub mod augment;
pub mod backend;
pub mod bench;
pub mod error;
pub mod fsutil;
pub mod image_file;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod plots;
pub mod progress;
pub mod seed;
pub mod train;

pub use profundo_kernels::{activation, block, conv, norm, pool};

pub use error::{CoreError, Result};

/// The version of profundo that wrote a model or run, recorded in manifests.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
