//! profundo's recommendation domain: interaction tables in, "what should this user see
//! next?" out.
//!
//! - [`table`] and [`dataset`]: rating tables through polars (MovieLens `u.data`,
//!   `ratings.dat`, `ratings.csv`, any CSV or Parquet), dense ids, titles, official folds.
//! - [`split`]: official folds, random by rating, per-user leave-last-K-out.
//! - [`train`]: baselines (global mean, biases, popularity), biased matrix factorisation and
//!   BPR in Burn; [`factors`]: the fitted form every model shares, scoring and top-K.
//! - [`metrics`] and [`evaluation`]: RMSE/MAE, full-ranking HR/NDCG/Recall/MAP@K, coverage.
//! - [`search`]: hyper-parameter search on validation cuts of the training folds.
//! - [`stages`]: pipeline stage kinds `recommend.load_ratings`, `recommend.split`,
//!   `recommend.train`, `recommend.evaluate`.
//! - [`bench`]: the factorisation as `profundo bench models` times it.
//! - [`model_dir`]: the typed manifest section and evaluation summary of a saved model.
//! - [`serving`] and [`app`]: saved models, top-K for a user, similar items, cold start.

#![warn(missing_docs)]

pub mod app;
pub mod bench;
pub mod dataset;
pub mod error;
pub mod evaluation;
pub mod factors;
pub mod metrics;
pub mod model_dir;
pub mod search;
pub mod serving;
pub mod split;
pub mod stages;
pub mod table;
pub mod train;

pub use error::{RecommendError, Result};

/// Registers the recommendation stage kinds and artifact types.
pub fn register(reg: &mut profundo_pipeline::Registry) {
    stages::register(reg);
}
