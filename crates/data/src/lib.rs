//! profundo's datasets: which ones the shipped pipelines read, where they live, whether
//! their files are intact, and how to get the ones the repository may not ship.
//!
//! - [`catalog`]: the datasets (`datasets/catalog.toml`, compiled in) and their checksum
//!   manifests (`datasets/checksums/<name>.sha256`).
//! - [`location`]: the data folder (`$PROFUNDO_DATA`, else the platform's data directory)
//!   and where each dataset is looked for.
//! - [`verify`]: sha256 of every file against the manifest.
//! - [`fetch`]: download (HTTP/HTTPS) or copy (folder, archive) a dataset, check every file,
//!   and move it into place atomically.

pub mod archive;
pub mod catalog;
pub mod download;
pub mod error;
pub mod fetch;
pub mod location;
pub mod verify;

pub use catalog::{Catalog, Dataset};
pub use error::{DataError, Result};
pub use location::{DATA_ENV, REQUIRE_ENV, data_dir};
