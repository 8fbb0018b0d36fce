//! The face domain's errors.

use std::path::PathBuf;

/// Errors of the face domain.
#[derive(Debug, thiserror::Error)]
pub enum FacesError {
    /// An image file could not be used.
    #[error("{path}: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A dataset folder is not in the expected `<root>/<person>/<image>` shape.
    #[error("{path}: {message}")]
    Dataset {
        /// The folder.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A gallery file is corrupt, from another model, or asked something impossible.
    #[error("{path}: {message}")]
    Gallery {
        /// The gallery file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A backbone error (model loading, I/O).
    #[error(transparent)]
    Core(#[from] profundo_core::CoreError),
}

impl From<FacesError> for profundo_pipeline::StageError {
    fn from(e: FacesError) -> Self {
        match e {
            FacesError::Image { path, message } | FacesError::Dataset { path, message } => {
                Self::Data { path, message }
            }
            FacesError::Core(c) => Self::Core(c),
            other => Self::Other(other.to_string()),
        }
    }
}

/// Result type of the face domain.
pub type Result<T, E = FacesError> = std::result::Result<T, E>;
