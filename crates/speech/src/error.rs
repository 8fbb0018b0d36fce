//! The speech domain's errors.

use std::path::PathBuf;

/// Errors of the speech domain.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// A WAV file could not be used.
    #[error("{path}: {message}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A feature or resampling setting is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A backbone error (model loading, I/O).
    #[error(transparent)]
    Core(#[from] profundo_core::CoreError),
}

impl From<SpeechError> for profundo_pipeline::StageError {
    fn from(e: SpeechError) -> Self {
        match e {
            SpeechError::Wav { path, message } => Self::Data { path, message },
            SpeechError::Core(c) => Self::Core(c),
            other => Self::Other(other.to_string()),
        }
    }
}

/// Result type of the speech domain.
pub type Result<T, E = SpeechError> = std::result::Result<T, E>;
