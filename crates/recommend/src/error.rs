//! The recommendation domain's errors.

use std::path::PathBuf;

/// Errors of the recommendation domain.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    /// A rating table or metadata file could not be used.
    #[error("{path}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (with the row when known).
        message: String,
    },
    /// A saved model is missing, corrupt or of another kind.
    #[error("{path}: {message}")]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An item id the model has never seen.
    #[error("unknown item `{item}`: {hint}")]
    UnknownItem {
        /// The id asked for.
        item: String,
        /// What the model knows instead.
        hint: String,
    },
    /// A setting or request is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
    /// Training failed (non-finite loss).
    #[error("training failed: {0}")]
    Training(String),
    /// A backbone error (I/O, manifests).
    #[error(transparent)]
    Core(#[from] profundo_core::CoreError),
}

impl RecommendError {
    /// A data error about `path`.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Data {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<RecommendError> for profundo_pipeline::StageError {
    fn from(e: RecommendError) -> Self {
        match e {
            RecommendError::Data { path, message } | RecommendError::Model { path, message } => {
                Self::Data { path, message }
            }
            RecommendError::Core(c) => Self::Core(c),
            other => Self::Other(other.to_string()),
        }
    }
}

/// Result type of the recommendation domain.
pub type Result<T, E = RecommendError> = std::result::Result<T, E>;
