//! The perception domain's errors.

use std::path::PathBuf;

/// Errors of the perception domain.
#[derive(Debug, thiserror::Error)]
pub enum PerceptionError {
    /// An image could not be used (unreadable, not an image, too large, too small).
    #[error("{path}: {message}")]
    Image {
        /// The file (or `archive.zip:member`).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A dataset folder or archive is not in a layout the loader knows.
    #[error("{path}: {message}")]
    Dataset {
        /// The folder, archive or table.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A setting is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A backbone error (model loading, I/O, plotting).
    #[error(transparent)]
    Core(#[from] profundo_core::CoreError),
}

impl PerceptionError {
    /// An [`PerceptionError::Image`] error for `path`.
    pub fn image(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Image {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`PerceptionError::Dataset`] error for `path`.
    pub fn dataset(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Dataset {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<PerceptionError> for profundo_pipeline::StageError {
    fn from(e: PerceptionError) -> Self {
        match e {
            PerceptionError::Image { path, message }
            | PerceptionError::Dataset { path, message } => Self::Data { path, message },
            PerceptionError::Core(c) => Self::Core(c),
            other => Self::Other(other.to_string()),
        }
    }
}

/// Result type of the perception domain.
pub type Result<T, E = PerceptionError> = std::result::Result<T, E>;
