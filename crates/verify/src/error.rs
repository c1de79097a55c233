use std::path::PathBuf;

/// Everything that stops verify from reading its inputs. A candidate that merely differs from the
/// golden is not an error: it is a [`crate::Finding`] in the report.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    #[error(
        "{path}: tensor `{tensor}` has dtype {dtype}; verify compares bool, integer and \
         float (F16/BF16/F32/F64) tensors only"
    )]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("tensor `{tensor}`: shape {shape:?} holds {expected} values, got {got}")]
    ValueCount {
        tensor: String,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path}: {message}")]
    Thresholds { path: PathBuf, message: String },
    /// An input that is not a readable source of the kind asked for (format detection, an
    /// LMDB split directory with several DBs, …).
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },
    /// A feature file that breaks its format (the message names file and line / entry).
    #[error(transparent)]
    Format(#[from] butd_formats::FormatError),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl VerifyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VerifyError::Io {
            path: path.into(),
            source,
        }
    }
}
