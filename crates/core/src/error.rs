//! The backbone's error type.

use std::path::PathBuf;

/// Errors raised by the backbone.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A backend was asked for that this build does not contain.
    #[error("backend `{name}` is not available in this build: {hint}")]
    BackendUnavailable {
        /// The requested backend name.
        name: String,
        /// How to get it.
        hint: String,
    },
    /// A device name that is not `cpu`, `cuda` or `cuda:N`, or a device the backend lacks.
    #[error("device `{device}` cannot be used: {hint}")]
    BadDevice {
        /// The requested device.
        device: String,
        /// What would work.
        hint: String,
    },
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON (de)serialisation error on a named file.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Saving or loading model weights failed.
    #[error("{path}: cannot {action} model weights: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// `save` or `load`.
        action: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The training loss became NaN or infinite.
    #[error(
        "training stopped: the loss became {value} at epoch {epoch}, batch {batch}; \
         lower the learning rate (`lr`) or check the inputs for NaN/inf values"
    )]
    NonFiniteLoss {
        /// The offending loss value.
        value: f32,
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid setting `{name}`: {message}")]
    InvalidConfig {
        /// The setting.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// A model manifest is missing, of another version or domain, or has a bad field.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest (or the directory that lacks one).
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A plot could not be drawn.
    #[error("{path}: cannot draw plot: {message}")]
    Plot {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl CoreError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The backbone's result type.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
