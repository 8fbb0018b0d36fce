//! Errors of the pipeline layer.

use std::path::PathBuf;

/// One problem found in a pipeline file, located by file and line.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The pipeline file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Errors of the pipeline layer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The pipeline file is invalid (all problems found, not just the first).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// A stage failed while running.
    #[error("stage `{stage}` ({kind}) failed: {source}")]
    Stage {
        /// Stage name.
        stage: String,
        /// Stage kind.
        kind: String,
        /// What went wrong.
        source: StageError,
    },
    /// A problem with a run directory or a command-line request.
    #[error("{0}")]
    Usage(String),
    /// Another run of the same pipeline holds its lock and `--no-wait` was given.
    #[error(
        "{}: another run of this pipeline holds the lock ({holder}); wait for it to finish, \
         or leave out --no-wait to queue behind it",
        path.display()
    )]
    Locked {
        /// The lock file (`runs/<pipeline>/.lock`).
        path: PathBuf,
        /// Who holds it, as it wrote itself there (`pid 1234`).
        holder: String,
    },
    /// A backbone error (I/O on a named file, JSON, ...).
    #[error(transparent)]
    Core(#[from] profundo_core::CoreError),
}

/// Errors raised inside a stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A backbone error.
    #[error(transparent)]
    Core(#[from] profundo_core::CoreError),
    /// Bad input data, naming the file and the problem.
    #[error("{path}: {message}")]
    Data {
        /// The offending file or directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl StageError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Core(profundo_core::CoreError::io(path, source))
    }

    /// A data error about `path`.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Data {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result type of the pipeline layer.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
