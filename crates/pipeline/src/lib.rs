//! Declarative pipelines: a TOML file of named stages, validated as a whole before anything
//! runs, executed in dependency order with a content-addressed cache, each run written to
//! `runs/<pipeline>/<run-id>/`.
//!
//! - [`spec`]: parsing, `${ENV}` expansion, `--set` overrides and validation with file:line.
//! - [`registry`]: the stage-kind trait and the registry the CLI assembles.
//! - [`artifacts`]: the artifact types stages exchange (items, features, splits, models, ...).
//! - [`engine`]: execution, caching, `--from`/`--until`/`--force`, resume.
//! - [`run_dir`]: run directories, `latest`, `show` and `compare`.
//! - [`stages`]: the domain-independent stage kinds (`split.*`,
//!   `eval.classification`, `export.model`).

#![warn(missing_docs)]

pub mod artifacts;
pub mod engine;
pub mod error;
pub mod registry;
pub mod run_dir;
pub mod spec;
pub mod stages;

pub use error::{PipelineError, Result, StageError};
pub use registry::{ParamError, Registry, StageContext};
