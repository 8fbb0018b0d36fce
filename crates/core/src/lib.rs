//! profundo's backbone: everything the domains share and nothing domain-specific.
//!
//! - [`backend`]: picks the Burn device (`flex` by default) from a name, at run time.
//! - [`train`]: one training loop with seeding, early stopping, checkpoints, resume, NaN
//!   detection, learning-rate schedules and a wall-clock budget.
//! - [`model`]: a small convolutional classifier over `[channels, height, width]` inputs.
//! - [`manifest`]: the `manifest.json` that lets an app load a model without its pipeline.
//! - [`metrics`]: classification metrics (accuracy, top-k, confusion matrix, P/R/F1).
//! - [`plots`]: training curves and confusion matrices as PNG.
//! - [`fsutil`]: atomic file and directory writes.
//! - [`conv`], [`pool`], [`norm`]: stride-1 convolution, window max pooling and batch
//!   normalisation with their own kernels and gradients on flex and LibTorch's on LibTorch
//!   (Burn's operations elsewhere); [`activation`]: ReLU with LibTorch's gradient.

#![warn(missing_docs)]

pub mod activation;
pub mod augment;
pub mod backend;
pub mod block;
pub mod conv;
pub mod error;
mod flex;
pub mod fsutil;
mod kernel_calls;
#[cfg(feature = "tch")]
mod libtorch_autograd;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod norm;
pub mod plots;
pub mod pool;
pub mod progress;
pub mod train;

pub use error::{CoreError, Result};

/// The version of profundo that wrote a model or run, recorded in manifests.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
