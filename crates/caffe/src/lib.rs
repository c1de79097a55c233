//! Zero-copy, bounds-checked reader for Caffe `.caffemodel` files (binary `NetParameter`).
//!
//! ```no_run
//! let model = butd_caffe::CaffeModel::open("model.caffemodel")?;
//! for layer in model.layers() {
//!     for blob in &layer.blobs {
//!         let values: Vec<f32> = model.to_vec_f32(blob);
//!         println!("{} {} {:?} {}", layer.name, layer.kind, blob.shape, values.len());
//!     }
//! }
//! # Ok::<(), butd_caffe::Error>(())
//! ```
//!
//! # Design
//!
//! The released BUTD model is 270 MB, almost all of it 67 M packed floats. Decoding it into
//! generated protobuf structs would copy every float (peak RSS twice the file) and lose the
//! byte offsets that good error messages need. So the file is memory-mapped and walked by a
//! small hand-written wire-format walker (`wire.rs`) that checks every length against the end
//! of its enclosing message and records offsets. Packed little-endian `data`/`double_data`
//! stays a byte range into the map; values are converted only when asked for
//! ([`CaffeModel::read_f32`]). Legacy unpacked data (one tag per value, as in old V1 files)
//! stays in the map as a strided run as long as its values are consecutive; scattered pieces
//! (which no Caffe writer produces) are gathered into an owned `Vec` at parse time.
//!
//! Field numbers and the V1 layer-type names are not typed by hand: `build.rs` compiles
//! `proto/caffe.proto` with protox (pure Rust, no system `protoc`) and generates them from
//! the descriptor (`schema.rs`).
//!
//! # What is read
//!
//! - `NetParameter.layer` (V2, field 100) or the legacy `layers` (V1, field 2); both in one
//!   file is an error, as in Caffe. V1 layer types become their V2 strings (`CONVOLUTION` →
//!   `"Convolution"`); a V1 layer without a type (NONE, or a value the schema lacks) gets `""`,
//!   as Caffe's upgrade leaves it.
//! - Blob shapes follow Caffe's `Blob::FromProto`: `shape` when present, where a present
//!   shape with no dims is a 0-dimensional blob holding one value; otherwise the legacy
//!   `num, channels, height, width`, kept exactly as given (`[n, c, h, w]`, unset ones 0, not
//!   squeezed: a V1 bias of `[C]` reads as `[1, 1, 1, C]`); otherwise no dims.
//! - `data` (f32) or `double_data` (f64, rounded to f32 by the readers), packed or not.
//!   `diff`, `double_diff` and all other fields are skipped.
//! - Errors, never panics, for malformed input: each names the file, byte offset, and the
//!   layer and blob when known ([`Error`]).

mod decode;
mod error;
mod schema;
mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::{Error, ErrorKind, Location};

/// Which layer list the file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `NetParameter.layer` (field 100), `LayerParameter` with a string type.
    V2,
    /// Legacy `NetParameter.layers` (field 2), `V1LayerParameter` with an enum type.
    V1,
}

/// How a blob's values are stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobDtype {
    /// `BlobProto.data` (float).
    F32,
    /// `BlobProto.double_data` (double).
    F64,
}

impl BlobDtype {
    /// Bytes per value.
    pub fn width(self) -> usize {
        match self {
            BlobDtype::F32 => 4,
            BlobDtype::F64 => 8,
        }
    }
}

/// One layer, with or without blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    /// The V2 type string ("Convolution", "BatchNorm", ...); `""` for a V1 layer without an
    /// enum type.
    pub kind: String,
    pub bottom: Vec<String>,
    pub top: Vec<String>,
    pub blobs: Vec<Blob>,
    /// Byte offset of the layer's field tag in the file.
    pub offset: u64,
}

impl Layer {
    /// Values in all of the layer's blobs.
    pub fn param_count(&self) -> u64 {
        self.blobs.iter().map(|b| b.len() as u64).sum()
    }
}

/// One parameter blob. Its values are read through the [`CaffeModel`] it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Dimensions, outermost first. Empty: a 0-dimensional blob with one value. Legacy 4-D
    /// blobs keep `[num, channels, height, width]` as given.
    pub shape: Vec<usize>,
    /// Byte offset of the blob's field tag in the file.
    pub offset: u64,
    pub dtype: BlobDtype,
    len: usize,
    data: Data,
}

impl Blob {
    /// Number of values: the product of the shape (1 for a 0-dimensional blob).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Where a blob's values are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    /// In the file: value `i` at byte `start + i * stride` (`stride == width` when packed).
    Run { start: usize, stride: usize },
    /// Gathered at parse time from scattered pieces: the values' little-endian bytes, packed.
    Gathered(Vec<u8>),
}

enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// A parsed `.caffemodel`: the layer table, with blob values left in the file bytes.
pub struct CaffeModel {
    bytes: Bytes,
    path: Option<PathBuf>,
    name: Option<String>,
    format: Format,
    layers: Vec<Layer>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for CaffeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaffeModel")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("layers", &self.layers.len())
            .field("file_len", &self.file_len())
            .finish()
    }
}

impl CaffeModel {
    /// Memory-maps and parses a model. The file must not be modified while the model is
    /// alive (as with any memory map, a concurrent writer could change the values read).
    pub fn open(path: impl AsRef<Path>) -> Result<CaffeModel, Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let bytes = if len == 0 {
            // Mapping an empty file fails on some systems; the decoder reports it properly.
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: read-only map; the documented contract is that nobody writes the file
            // meanwhile. Every access is bounds-checked against the map's length.
            Bytes::Map(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Self::parse(bytes, Some(path.to_path_buf()))
    }

    /// Parses a model held in memory (tests, fuzzing).
    pub fn from_vec(bytes: Vec<u8>) -> Result<CaffeModel, Error> {
        Self::parse(Bytes::Owned(bytes), None)
    }

    fn parse(bytes: Bytes, path: Option<PathBuf>) -> Result<CaffeModel, Error> {
        let net = decode::decode_net(bytes_of(&bytes), path.as_deref())?;
        Ok(CaffeModel {
            bytes,
            path,
            name: net.name,
            format: net.format,
            layers: net.layers,
            by_name: net.by_name,
        })
    }

    /// The file it was opened from (`None` for [`CaffeModel::from_vec`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// `NetParameter.name`, when the file has one.
    pub fn net_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// All layers, with and without blobs, in file order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The layer with this name (names are unique: duplicates are a parse error).
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.by_name.get(name).map(|&i| &self.layers[i])
    }

    pub fn file_len(&self) -> u64 {
        bytes_of(&self.bytes).len() as u64
    }

    /// All values of `blob` (which must come from this model), as f32; f64 data is rounded
    /// to nearest.
    ///
    /// # Panics
    /// If `out.len() != blob.len()`.
    pub fn read_f32(&self, blob: &Blob, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            blob.len(),
            "read_f32: output length differs from the blob's"
        );
        self.read_f32_at(blob, 0, out);
    }

    /// Values `first .. first + out.len()` of `blob` (flat, row-major), as f32: for
    /// converting a big blob in chunks without holding all of it twice.
    ///
    /// # Panics
    /// If the range goes past the blob's end.
    pub fn read_f32_at(&self, blob: &Blob, first: usize, out: &mut [f32]) {
        let in_range = first
            .checked_add(out.len())
            .is_some_and(|end| end <= blob.len);
        assert!(
            in_range,
            "read_f32_at: values {first}..+{} past the blob's {}",
            out.len(),
            blob.len
        );
        if out.is_empty() {
            return;
        }
        let (bytes, start, stride) = match &blob.data {
            &Data::Run { start, stride } => (bytes_of(&self.bytes), start, stride),
            Data::Gathered(v) => (v.as_slice(), 0, blob.dtype.width()),
        };
        let width = blob.dtype.width();
        let bytes = &bytes[start + first * stride..][..(out.len() - 1) * stride + width];
        match blob.dtype {
            BlobDtype::F32 => convert_run(bytes, stride, out, f32::from_le_bytes),
            BlobDtype::F64 => convert_run(bytes, stride, out, |b| f64::from_le_bytes(b) as f32),
        }
    }

    /// All values of `blob` as a new Vec (see [`CaffeModel::read_f32`]).
    pub fn to_vec_f32(&self, blob: &Blob) -> Vec<f32> {
        let mut out = vec![0.0; blob.len()];
        self.read_f32(blob, &mut out);
        out
    }

    /// The blob's raw little-endian values (`blob.dtype.width()` bytes each), when they are
    /// contiguous: packed in the file (zero-copy) or gathered at parse time. `None` for
    /// unpacked values, which have a tag between each two.
    pub fn data_bytes<'a>(&'a self, blob: &'a Blob) -> Option<&'a [u8]> {
        let size = blob.len * blob.dtype.width();
        match &blob.data {
            &Data::Run { start, stride } if stride == blob.dtype.width() => {
                Some(&bytes_of(&self.bytes)[start..][..size])
            }
            Data::Gathered(v) => Some(v),
            Data::Run { .. } => None,
        }
    }
}

fn bytes_of(bytes: &Bytes) -> &[u8] {
    match bytes {
        Bytes::Map(m) => m,
        Bytes::Owned(v) => v,
    }
}

/// Converts `out.len()` values of `W` bytes, `stride` bytes apart, starting at `bytes[0]`.
fn convert_run<const W: usize>(
    bytes: &[u8],
    stride: usize,
    out: &mut [f32],
    convert: impl Fn([u8; W]) -> f32,
) {
    if stride == W {
        for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact(W)) {
            *o = convert(*chunk.first_chunk::<W>().expect("chunks_exact"));
        }
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            *o = convert(
                *bytes[i * stride..]
                    .first_chunk::<W>()
                    .expect("sliced to fit"),
            );
        }
    }
}
