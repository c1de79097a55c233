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
    #[error("{path}: {message}")]
    Thresholds { path: PathBuf, message: String },
    /// A run that could not go on (the comparison workers stopped).
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },
    /// An input that is not a readable source of the kind asked for, or a feature file that
    /// breaks its format (the message names file and line / entry).
    #[error(transparent)]
    Format(#[from] butd_formats::FormatError),
}

impl VerifyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VerifyError::Io {
            path: path.into(),
            source,
        }
    }
}
