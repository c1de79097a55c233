use std::path::PathBuf;

/// Every error names the file it concerns and, where there is one, the line, entry or tensor.
/// Underlying I/O and LMDB errors are part of the message (fields named `error`, not `source`,
/// so that `{:#}` chains do not print them twice).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A record file that is not what `butd extract` writes (missing or malformed tensor,
    /// metadata, or an image id the id policy cannot give).
    #[error("{path}: {message}")]
    Record { path: PathBuf, message: String },
    /// A record without detections: the golden crash record (Caffe died before `rois`
    /// reached the heads) or zero kept boxes. No downstream format can hold it.
    #[error("{path}: no detections ({reason})")]
    NoDetections { path: PathBuf, reason: String },
    /// A file being read that breaks its format; `at` says where (line, entry, dataset).
    #[error("{path}: {at}: {message}")]
    Parse {
        path: PathBuf,
        at: String,
        message: String,
    },
    /// A record the target format cannot hold as its consumer expects.
    #[error("{path}: image {image_id}: {message}")]
    Unsupported {
        path: PathBuf,
        image_id: String,
        message: String,
    },
    /// A record tensor whose dtype the f64 widening does not cover (FP8).
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
    /// An input that is not a readable feature source of the kind asked for (format detection,
    /// an LMDB split directory with several DBs, a records path that is not a directory, …).
    #[error("{path}: {message}")]
    Source { path: PathBuf, message: String },
    /// Options that do not go together (an id policy and an id map, [`crate::choose_id_policy`]).
    #[error("{0}")]
    Usage(String),
    #[error("{path}: LMDB: {error}")]
    Lmdb { path: PathBuf, error: heed::Error },
}

impl FormatError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| FormatError::Io { path, error }
    }

    pub(crate) fn parse(
        path: impl Into<PathBuf>,
        at: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FormatError::Parse {
            path: path.into(),
            at: at.into(),
            message: message.into(),
        }
    }
}
