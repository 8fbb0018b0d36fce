//! Errors of the translation domain.

use std::path::PathBuf;

/// What can go wrong reading corpora, training, loading or using a translation model.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// A corpus file could not be read or has a malformed line.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Corpus {
        /// The file.
        path: PathBuf,
        /// 1-based line, when the problem is on one line.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer could not be trained, read or used.
    #[error("tokenizer{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Tokenizer {
        /// Its file, when one is involved.
        path: Option<PathBuf>,
        /// What is wrong.
        message: String,
    },
    /// A model directory is incomplete or inconsistent.
    #[error("{}: {message}", path.display())]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting is invalid.
    #[error("invalid setting `{name}`: {message}")]
    Config {
        /// The setting.
        name: String,
        /// Why.
        message: String,
    },
    /// Input to translate is unusable.
    #[error("{source_name}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Input {
        /// Where the input came from (a file, `<stdin>` or `<argument>`).
        source_name: String,
        /// 1-based line.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// Training failed (non-finite loss, ...).
    #[error("training failed: {0}")]
    Training(String),
    /// An error from the backbone (weights, manifests, I/O).
    #[error(transparent)]
    Core(#[from] profundo_core::CoreError),
}

impl TranslateError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        Self::Corpus {
            path: path.to_path_buf(),
            line: None,
            message: e.to_string(),
        }
    }

    /// An invalid setting.
    pub fn config(name: &str, message: impl Into<String>) -> Self {
        Self::Config {
            name: name.to_string(),
            message: message.into(),
        }
    }
}

impl From<TranslateError> for profundo_pipeline::StageError {
    fn from(e: TranslateError) -> Self {
        match e {
            TranslateError::Core(c) => Self::Core(c),
            TranslateError::Model { path, message } => Self::Data { path, message },
            other => profundo_pipeline::StageError::Other(other.to_string()),
        }
    }
}

/// Result alias of the translation domain.
pub type Result<T> = std::result::Result<T, TranslateError>;
