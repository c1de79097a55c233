//! The synthetic BUTD caffemodel: a stand-in for `resnet101_faster_rcnn_final.caffemodel` with
//! the released file's 478 layers, blob shapes and order, and deterministic weights, written
//! bit for bit as `golden/SYNTHETIC.md` specifies it (the golden Caffe outputs in `golden/`
//! were computed from exactly this file). `butd synth` is this crate's command.
//!
//! ```no_run
//! use butd_synth::Variant;
//! // 270,617,013 bytes, sha256 0a7c7c77…3998, in about a second.
//! butd_synth::write_file("synthetic.caffemodel".as_ref(), Variant::V2_FLOAT)?;
//! // The values of one blob, as the reader must decode them:
//! let conv1 = &butd_synth::layers()[0];
//! assert_eq!(conv1.blobs[0].values(&conv1.name, 0).len(), 64 * 3 * 7 * 7);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Design
//! - The per-layer table (`golden/synthetic_constants.json`: names, types, bottoms, tops,
//!   shapes, the recipe's `a`/`b` and overrides) is embedded, so the command works from any
//!   directory; the values are recomputed from it (SYNTHETIC.md §3), never stored.
//! - The file is streamed: every length prefix is computed from the shapes before the bytes
//!   are written, and each blob's values are generated in chunks of 64 Ki values (peak memory
//!   a few MB for a 600 MB file).
//! - The same functions are the tests' reference for what the reader must decode (one source
//!   of the recipe); the sha256 figures of SYNTHETIC.md §1 anchor them to the Python generator
//!   that produced the golden run's file.
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod wire;

/// Caffe's two NetParameter layouts (SYNTHETIC.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `layer` (field 100), packed values, `BlobShape` dims: what Caffe writes today.
    V2,
    /// Legacy `layers` (field 2): V1 type enums, unpacked values, 4-D `num/channels/height/width`.
    V1,
}

/// How blob values are stored: `data` (f32) or `double_data` (the same f32 values widened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Float,
    Double,
}

/// One of the four files of SYNTHETIC.md §1, with its documented size and sha256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub encoding: Encoding,
    pub dtype: Dtype,
}

impl Variant {
    /// The default file, the one the golden outputs were computed from.
    pub const V2_FLOAT: Variant = Variant {
        encoding: Encoding::V2,
        dtype: Dtype::Float,
    };
    pub const V1_FLOAT: Variant = Variant {
        encoding: Encoding::V1,
        dtype: Dtype::Float,
    };
    pub const V2_DOUBLE: Variant = Variant {
        encoding: Encoding::V2,
        dtype: Dtype::Double,
    };
    pub const V1_DOUBLE: Variant = Variant {
        encoding: Encoding::V1,
        dtype: Dtype::Double,
    };
    pub const ALL: [Variant; 4] = [
        Self::V2_FLOAT,
        Self::V1_FLOAT,
        Self::V2_DOUBLE,
        Self::V1_DOUBLE,
    ];

    /// The cache file name the scripts and tests use for this variant.
    pub fn file_name(self) -> &'static str {
        match (self.encoding, self.dtype) {
            (Encoding::V2, Dtype::Float) => "synthetic.caffemodel",
            (Encoding::V1, Dtype::Float) => "synthetic_v1.caffemodel",
            (Encoding::V2, Dtype::Double) => "synthetic_double.caffemodel",
            (Encoding::V1, Dtype::Double) => "synthetic_v1_double.caffemodel",
        }
    }

    /// `(size in bytes, sha256)` as SYNTHETIC.md §1 documents them.
    pub fn figures(self) -> (u64, &'static str) {
        match (self.encoding, self.dtype) {
            (Encoding::V2, Dtype::Float) => (
                270_617_013,
                "0a7c7c778ef597a49d385c03a023665e3ee64470cd4a4f08dea23d44df1c3998",
            ),
            (Encoding::V1, Dtype::Float) => (
                338_256_987,
                "1367bb5d522d412592f3ff2399e0edbc5d03d3219fb95ff02a0c30fe3e32a967",
            ),
            (Encoding::V2, Dtype::Double) => (
                541_196_421,
                "e3c3d6ecaa77f3c05c5b12ddd0ef8c3fa212ba3b77826fe4344724cba46e6d7a",
            ),
            (Encoding::V1, Dtype::Double) => (
                608_836_329,
                "8c05d19e5fb37b0d4a59fc8b95ce7514566fd3c2b1c0578809f0a6ff26b9a02b",
            ),
        }
    }
}

/// One layer of the table: what the file's LayerParameter holds.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    /// The Caffe type string (`Convolution`, `BatchNorm`, `Python`, …).
    pub kind: String,
    pub bottom: Vec<String>,
    pub top: Vec<String>,
    pub blobs: Vec<Blob>,
}

/// One blob's recipe: `value_i = fl32(fl32(u_i · a) + b)`, then the `set` overrides.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Caffe's shape; empty for the one 0-dimensional blob (`heatmap_scale`, one value).
    pub shape: Vec<usize>,
    pub a: f32,
    pub b: f32,
    /// `(flat index, f32 bits)` overrides.
    pub set: Vec<(usize, u32)>,
}

impl Blob {
    /// Number of values: the product of the shape (1 for the 0-dimensional blob).
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Every value of this blob, blob number `j` of layer `layer`, overrides applied.
    pub fn values(&self, layer: &str, j: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.count()];
        self.fill(blob_key(layer, j), 0, &mut out);
        out
    }

    /// Values `start..start + out.len()` of the blob whose key is `key`.
    fn fill(&self, key: u64, start: usize, out: &mut [f32]) {
        for (i, v) in out.iter_mut().enumerate() {
            *v = recipe_value(key, (start + i) as u64, self.a, self.b);
        }
        for &(index, bits) in &self.set {
            if let Some(v) = index.checked_sub(start).and_then(|k| out.get_mut(k)) {
                *v = f32::from_bits(bits);
            }
        }
    }
}

/// `golden/synthetic_constants.json`: the net name and the layers.
fn table() -> &'static (String, Vec<Layer>) {
    static TABLE: OnceLock<(String, Vec<Layer>)> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Embedded data, checked by this crate's tests: a parse failure is a build defect.
        table::parse(include_str!("../../../golden/synthetic_constants.json"))
            .expect("golden/synthetic_constants.json is well-formed")
    })
}

/// The ten layers of the released BUTD caffemodel, after `attr_prob`, that its test net
/// (`faster_rcnn_end2end_final/test.prototxt`) does not use: the heatmap branch and the
/// relation head of the training net (golden/SYNTHETIC.md §1). The synthetic model has the
/// released architecture, so it has them too; `butd inspect` marks them by these names.
pub const UNUSED_BY_TEST_NET: [&str; 10] = [
    "heatmap_conv1",
    "heatmap_conv2",
    "heatmap_conv3",
    "heatmap_embedding",
    "heatmap_scale",
    "fc_rel1",
    "fc_subject",
    "fc_object",
    "rel_merge",
    "rel_score",
];

/// The table's layers, in file order (478).
pub fn layers() -> &'static [Layer] {
    &table().1
}

/// The net name the file records (`"ResNet-101"`).
pub fn net_name() -> &'static str {
    &table().0
}

/// FNV-1a, 64 bit: the recipe's blob key hash (the workspace's one FNV, butd-host's).
pub use butd_host::fnv1a64;

/// splitmix64, the recipe's per-value generator.
pub fn splitmix64(s: u64) -> u64 {
    let z = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of blob `j` of layer `layer`: FNV-1a-64 of `"{layer}/{j}"` (names may hold `/`).
pub fn blob_key(layer: &str, j: usize) -> u64 {
    fnv1a64(format!("{layer}/{j}").as_bytes())
}

/// `u_i`: the uniform in [-1, 1) of value `i`, exact in f32 (a 24-bit integer times 2⁻²³).
pub fn uniform(key: u64, i: u64) -> f32 {
    let x = splitmix64(key.wrapping_add(i));
    ((x >> 40) as i32 - 8_388_608) as f32 * (1.0 / 8_388_608.0)
}

/// Value `i` before overrides: `fl32(fl32(u · a) + b)`, two separately rounded f32 operations
/// (no FMA: `mul_add` would round once and change bits).
pub fn recipe_value(key: u64, i: u64, a: f32, b: f32) -> f32 {
    let v = uniform(key, i) * a;
    v + b
}

/// Writes the whole file of `variant` to `out`; returns the number of bytes written.
pub fn write(out: &mut impl Write, variant: Variant) -> io::Result<u64> {
    let mut counted = wire::Counting::new(out);
    wire::write_net(&mut counted, net_name(), layers(), variant)?;
    Ok(counted.written())
}

/// Writes `variant` to `path` atomically: a temporary file beside it, renamed when complete.
pub fn write_file(path: &Path, variant: Variant) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut w = io::BufWriter::with_capacity(1 << 22, std::fs::File::create(&tmp)?);
        write(&mut w, variant)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `path` holding `variant`: written unless a file of the documented size is already there
/// (the tests' and scripts' cache; the size tells a complete file from another variant).
pub fn ensure(path: &Path, variant: Variant) -> io::Result<()> {
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(variant.figures().0) {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_file(path, variant)
}

/// The butd cache: `$BUTD_CACHE`, else `$XDG_CACHE_HOME/butd`, else `~/.cache/butd` (as
/// `scripts/env.sh`), where the tests, benchmarks and scripts keep the synthetic models.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BUTD_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    base.join("butd")
}

/// The cached copy of `variant` in [`cache_dir`], written first when missing ([`ensure`]).
pub fn cached(variant: Variant) -> io::Result<PathBuf> {
    let path = cache_dir().join(variant.file_name());
    ensure(&path, variant)?;
    Ok(path)
}

mod table {
    //! Parsing the embedded JSON table.
    use super::{Blob, Layer};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Table {
        net_name: String,
        layers: Vec<RawLayer>,
    }

    #[derive(Deserialize)]
    struct RawLayer {
        name: String,
        #[serde(rename = "type")]
        kind: String,
        bottom: Vec<String>,
        top: Vec<String>,
        blobs: Vec<RawBlob>,
    }

    #[derive(Deserialize)]
    struct RawBlob {
        shape: Vec<usize>,
        a: String,
        b: String,
        #[serde(default)]
        set: Vec<(usize, String)>,
    }

    /// An f32 bit pattern written as `"0x3e4ed917"`.
    fn bits(s: &str) -> Result<u32, String> {
        u32::from_str_radix(s.trim_start_matches("0x"), 16)
            .map_err(|e| format!("{s:?} is not an f32 bit pattern: {e}"))
    }

    fn blob(raw: RawBlob) -> Result<Blob, String> {
        let set = raw
            .set
            .iter()
            .map(|(i, b)| Ok((*i, bits(b)?)))
            .collect::<Result<_, String>>()?;
        Ok(Blob {
            shape: raw.shape,
            a: f32::from_bits(bits(&raw.a)?),
            b: f32::from_bits(bits(&raw.b)?),
            set,
        })
    }

    pub(super) fn parse(text: &str) -> Result<(String, Vec<Layer>), String> {
        let table: Table = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let layers = table
            .layers
            .into_iter()
            .map(|l| {
                Ok(Layer {
                    name: l.name,
                    kind: l.kind,
                    bottom: l.bottom,
                    top: l.top,
                    blobs: l
                        .blobs
                        .into_iter()
                        .map(blob)
                        .collect::<Result<_, String>>()?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok((table.net_name, layers))
    }
}
