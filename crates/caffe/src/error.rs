use std::fmt;
use std::path::PathBuf;

/// Why a model could not be read. Display names the file, the byte offset and, where known,
/// the layer (index and name) and the blob index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{location}: {kind}")]
    Malformed {
        location: Box<Location>,
        kind: ErrorKind,
    },
}

impl Error {
    /// What was wrong, for a malformed file (`None` for an I/O error).
    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            Error::Io { .. } => None,
            Error::Malformed { kind, .. } => Some(kind),
        }
    }

    /// Where it was wrong, for a malformed file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Io { .. } => None,
            Error::Malformed { location, .. } => Some(location),
        }
    }
}

/// Where in the file a problem is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// `None` for a model made with [`crate::CaffeModel::from_vec`].
    pub file: Option<PathBuf>,
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Index of the layer in file order.
    pub layer_index: Option<usize>,
    /// The layer's name, when it was read before the problem.
    pub layer: Option<String>,
    /// Index of the blob within its layer.
    pub blob: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => f.write_str("<memory>")?,
        }
        write!(f, ": byte {}", self.offset)?;
        if let Some(i) = self.layer_index {
            write!(f, ", layer {i}")?;
        }
        if let Some(name) = &self.layer {
            write!(f, " {name:?}")?;
        }
        if let Some(j) = self.blob {
            write!(f, ", blob {j}")?;
        }
        Ok(())
    }
}

/// What is wrong with a malformed file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("the file is empty (expected a Caffe NetParameter)")]
    Empty,
    #[error("no layers found: not a Caffe model? (expected NetParameter field {v2} `layer` or field {v1} `layers`)")]
    NoLayers { v2: u32, v1: u32 },
    #[error("the file has both V2 `layer` and V1 `layers` fields; Caffe refuses such a net")]
    MixedFormats,
    #[error("V0 (pre-2014) layers are not supported; upgrade the model with Caffe's upgrade_net_proto_binary")]
    V0Layer,
    #[error("in {message}: truncated {what}: {within} ends at byte {end}")]
    Truncated {
        message: &'static str,
        what: &'static str,
        within: &'static str,
        end: u64,
    },
    #[error("in {message}: varint longer than 10 bytes or over 64 bits (not protobuf?)")]
    VarintOverflow { message: &'static str },
    #[error("in {message}: invalid field number {number} (not protobuf?)")]
    InvalidFieldNumber { message: &'static str, number: u64 },
    #[error("in {message}: field {field} has invalid wire type {wire_type} (not protobuf?)")]
    InvalidWireType {
        message: &'static str,
        field: u32,
        wire_type: u8,
    },
    #[error("in {message}: field {field} declares {declared} bytes but only {available} remain in {within} (truncated?)")]
    LengthPastEnd {
        message: &'static str,
        field: u32,
        declared: u64,
        available: u64,
        within: &'static str,
    },
    #[error("in {message}: end of group {field} without a start (not protobuf?)")]
    UnexpectedEndGroup { message: &'static str, field: u32 },
    #[error("in {message}: group {field} is not closed before the end of its message")]
    UnterminatedGroup { message: &'static str, field: u32 },
    #[error("in {message}: groups nested deeper than {limit}")]
    GroupTooDeep { message: &'static str, limit: usize },
    #[error("{message}.{field} (field {number}) has wire type {found}, expected {expected}")]
    WrongWireType {
        message: &'static str,
        field: &'static str,
        number: u32,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{message}.{field} is not valid UTF-8")]
    InvalidUtf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("packed {field} is {bytes} bytes long, not a multiple of {width}")]
    PackedLength {
        field: &'static str,
        bytes: u64,
        width: u64,
    },
    #[error("invalid dimension {value} in {field}")]
    BadDimension { field: &'static str, value: i64 },
    #[error("shape {shape:?} has more elements than fit in 64 bits")]
    ShapeOverflow { shape: Vec<u64> },
    #[error("blob has {found} values but its shape {shape:?} needs {expected}")]
    CountMismatch {
        shape: Vec<usize>,
        expected: u64,
        found: u64,
    },
    #[error("blob has both float data ({floats} values) and double_data ({doubles} values)")]
    BothDataKinds { floats: u64, doubles: u64 },
    #[error("duplicate layer name {name:?} (first at layer {first_index}, byte {first_offset})")]
    DuplicateLayer {
        name: String,
        first_index: usize,
        first_offset: u64,
    },
}
