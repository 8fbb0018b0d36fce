//! The crate's one error type: every variant names the input and the problem.

use std::path::{Path, PathBuf};

/// Errors from the catalogue, verification and fetching.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A dataset name that the catalogue does not hold.
    #[error("unknown dataset `{name}`{suggestion}; known datasets: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// ` (did you mean `x`?)` or empty.
        suggestion: String,
        /// Every name in the catalogue, comma-separated.
        known: String,
    },
    /// The compiled-in catalogue or a checksum manifest is malformed (a build defect).
    #[error("{file}: {message}")]
    Catalog {
        /// `datasets/catalog.toml` or `datasets/checksums/<name>.sha256`.
        file: String,
        /// What is wrong, with the line where known.
        message: String,
    },
    /// A shipped dataset needs no fetching.
    #[error("`{name}` ships with the repository (datasets/{path}); there is nothing to fetch")]
    Shipped {
        /// The dataset.
        name: String,
        /// Its folder under `datasets/`.
        path: String,
    },
    /// A download failed: status, connection, or a body that ended early.
    #[error("{url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A source that is neither a URL, a folder nor a readable archive.
    #[error("{}: {message}", input.display())]
    Source {
        /// The `--from` value or the downloaded file.
        input: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Files of a dataset are missing or differ from the checksum manifest.
    #[error("{dataset} at {}: {}", root.display(), describe_problems(missing, changed))]
    Mismatch {
        /// The dataset.
        dataset: String,
        /// Where its files were looked for.
        root: PathBuf,
        /// Files listed in the manifest but absent.
        missing: Vec<String>,
        /// Files whose sha256 differs from the manifest.
        changed: Vec<String>,
    },
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// At most five names of each kind, then a count: an error line stays readable.
pub(crate) fn describe_problems(missing: &[String], changed: &[String]) -> String {
    fn some(names: &[String]) -> String {
        let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        let more = names.len().saturating_sub(shown.len());
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    }
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!(
            "{} file(s) differ from their checksum (changed or truncated): {}",
            changed.len(),
            some(changed)
        ));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "{} file(s) missing: {}",
            missing.len(),
            some(missing)
        ));
    }
    parts.join("; ")
}
