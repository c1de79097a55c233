//! The converted weights (`butd convert … --map mappings/caffe-to-hf-frcnn.toml`): a safetensors
//! file in the Hugging Face FRCNN layout (`docs/ports.md` §C, §G), read into tch tensors.
//!
//! [`Weights`] checks every key it hands out (presence, dtype, shape) and, once the network is
//! built, that the file holds no key the network did not ask for, so a mapping that writes the
//! wrong names fails loudly instead of leaving random layers. [`WeightPath`] walks the key
//! hierarchy (`w.sub("backbone").sub("res4").sub(13).get(…)`) so key names are built in one
//! place.
//!
//! BatchNorm (+ Scale) is folded into the preceding convolution by [`fold_batchnorm`] (§2.2).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use butd_mapping::{METADATA_MAPPING, METADATA_MAPPING_DIGEST};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};
use tch::{Kind, Tensor};

/// Caffe's BatchNorm epsilon, the proto default `1e-5` stored as f32 (§2.2, §8.1).
pub const CAFFE_BN_EPS: f32 = 1e-5;

/// Why a weights file cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: missing tensor `{key}` (is this a file written by `butd convert` with the Hugging Face FRCNN mapping?)")]
    Missing { path: PathBuf, key: String },
    #[error("{path}: tensor `{key}` is {found:?}, expected {expected}")]
    Dtype {
        path: PathBuf,
        key: String,
        found: Dtype,
        expected: &'static str,
    },
    #[error("{path}: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        key: String,
        found: Vec<usize>,
        expected: Vec<i64>,
    },
    #[error("{path}: {} tensor(s) the network does not use, e.g. {}", keys.len(), keys.iter().take(5).cloned().collect::<Vec<_>>().join(", "))]
    Unexpected { path: PathBuf, keys: Vec<String> },
    #[error("{path}: tensor `{key}`: {message}")]
    Value {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{path}: written by {found}, but the network reads the layout of the built-in mapping `{EXPECTED_MAPPING}` ({METADATA_MAPPING_DIGEST} = {expected}). A mapping can reorder rows (e.g. keep Caffe's class order, background first) without changing a key or a shape, so these weights are refused; convert the caffemodel again with `butd convert MODEL --map {EXPECTED_MAPPING}`")]
    Layout {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: torch: {source}")]
    Torch {
        path: PathBuf,
        source: tch::TchError,
    },
}

/// The mapping whose output layout the network reads (`mappings/caffe-to-hf-frcnn.toml`).
pub const EXPECTED_MAPPING: &str = "caffe-to-hf-frcnn";

/// The [`butd_mapping::Mapping::digest`] of [`EXPECTED_MAPPING`], as built into this binary.
fn expected_mapping_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        butd_mapping::Mapping::builtin(EXPECTED_MAPPING)
            .expect("the built-in mapping parses (its tests say so)")
            .digest()
            .to_string()
    })
}

/// An open weights file. Tensors are created on demand (on the CPU, f32) and handed to the
/// layers, which fold and move them to their device.
pub struct Weights {
    path: PathBuf,
    buffer: Vec<u8>,
    data_start: usize,
    metadata: Metadata,
    used: RefCell<BTreeSet<String>>,
}

impl Weights {
    /// Reads and parses a safetensors file (the whole file is read once; the bytes are dropped
    /// with the `Weights`).
    pub fn open(path: &Path) -> Result<Weights, WeightsError> {
        let buffer = std::fs::read(path).map_err(|source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&buffer).map_err(|e| WeightsError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Weights {
            path: path.to_path_buf(),
            buffer,
            data_start: 8 + header_len,
            metadata,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root of the key hierarchy.
    pub fn root(&self) -> WeightPath<'_> {
        WeightPath {
            weights: self,
            prefix: String::new(),
        }
    }

    /// Refuses weights not written by [`EXPECTED_MAPPING`]: their `butd_mapping_digest`
    /// metadata (written by `butd convert`, i.e. by `butd-mapping`'s writer) must equal the
    /// built-in mapping's digest.
    ///
    /// Weights without the digest are refused too, naming what metadata they have. The key set
    /// and shapes cannot stand in for it: a mapping that keeps Caffe's class order (background
    /// first) writes the same keys and shapes, and every class would be shifted by one.
    pub fn check_layout(&self) -> Result<(), WeightsError> {
        let meta = |key: &str| {
            self.metadata
                .metadata()
                .as_ref()
                .and_then(|m| m.get(key))
                .map(String::as_str)
        };
        let expected = expected_mapping_digest();
        let found = match (meta(METADATA_MAPPING), meta(METADATA_MAPPING_DIGEST)) {
            (_, Some(d)) if d == expected => return Ok(()),
            (origin, Some(d)) => format!(
                "mapping `{}` ({METADATA_MAPPING_DIGEST} = {d})",
                origin.unwrap_or("?")
            ),
            (Some(origin), None) => {
                format!("mapping `{origin}` without a {METADATA_MAPPING_DIGEST} (an older butd convert?)")
            }
            (None, None) => format!(
                "no {METADATA_MAPPING} / {METADATA_MAPPING_DIGEST} metadata (not a file of `butd convert`)"
            ),
        };
        Err(WeightsError::Layout {
            path: self.path.clone(),
            found,
            expected: expected.to_string(),
        })
    }

    /// Fails if the file holds tensors that no layer asked for (HF's `strict=True`).
    pub fn check_all_used(&self) -> Result<(), WeightsError> {
        let used = self.used.borrow();
        let mut unexpected: Vec<String> = self
            .metadata
            .tensors()
            .into_keys()
            .filter(|k| !used.contains(k))
            .collect();
        if unexpected.is_empty() {
            return Ok(());
        }
        unexpected.sort();
        Err(WeightsError::Unexpected {
            path: self.path.clone(),
            keys: unexpected,
        })
    }

    fn tensor(&self, key: &str, kind: Kind, shape: &[i64]) -> Result<Tensor, WeightsError> {
        let info = self
            .metadata
            .info(key)
            .ok_or_else(|| WeightsError::Missing {
                path: self.path.clone(),
                key: key.into(),
            })?;
        let (expected_dtype, name) = match kind {
            Kind::Float => (Dtype::F32, "F32"),
            Kind::Int64 => (Dtype::I64, "I64"),
            _ => unreachable!("weights are f32 or i64"),
        };
        if info.dtype != expected_dtype {
            return Err(WeightsError::Dtype {
                path: self.path.clone(),
                key: key.into(),
                found: info.dtype,
                expected: name,
            });
        }
        if info.shape.len() != shape.len()
            || info.shape.iter().zip(shape).any(|(&f, &e)| f as i64 != e)
        {
            return Err(WeightsError::Shape {
                path: self.path.clone(),
                key: key.into(),
                found: info.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        self.used.borrow_mut().insert(key.to_string());
        let (begin, end) = info.data_offsets;
        let bytes = &self.buffer[self.data_start + begin..self.data_start + end];
        Tensor::f_from_data_size(bytes, shape, kind).map_err(|source| WeightsError::Torch {
            path: self.path.clone(),
            source,
        })
    }
}

/// A position in the key hierarchy (`backbone.res4.13.conv1`), like `tch::nn::Path`.
#[derive(Clone)]
pub struct WeightPath<'a> {
    weights: &'a Weights,
    prefix: String,
}

impl<'a> WeightPath<'a> {
    /// The child `name` (a string or an index).
    pub fn sub(&self, name: impl Display) -> WeightPath<'a> {
        WeightPath {
            weights: self.weights,
            prefix: self.key(name),
        }
    }

    /// The full key of the child `name`.
    pub fn key(&self, name: impl Display) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The f32 tensor `name` (CPU), checked to have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[i64]) -> Result<Tensor, WeightsError> {
        self.weights.tensor(&self.key(name), Kind::Float, shape)
    }

    /// Checks that the f32 tensor `name` has `shape` and marks it used, without building it
    /// (for tensors that the network does not compute with, e.g. `bbox_pred`).
    pub fn check(&self, name: &str, shape: &[i64]) -> Result<(), WeightsError> {
        self.get(name, shape).map(drop)
    }

    /// Accepts an optional i64 scalar (BatchNorm's `num_batches_tracked`, which a converter may
    /// omit, docs/ports.md §C.10).
    pub fn optional_counter(&self, name: &str) -> Result<(), WeightsError> {
        let key = self.key(name);
        if self.weights.metadata.info(&key).is_none() {
            return Ok(());
        }
        self.weights.tensor(&key, Kind::Int64, &[]).map(drop)
    }

    /// An error about the value (not the shape) of the tensor `name`.
    pub fn value_error(&self, name: &str, message: impl Into<String>) -> WeightsError {
        WeightsError::Value {
            path: self.weights.path.clone(),
            key: self.key(name),
            message: message.into(),
        }
    }

    pub(crate) fn torch_error(&self, source: tch::TchError) -> WeightsError {
        WeightsError::Torch {
            path: self.weights.path.clone(),
            source,
        }
    }
}

/// Folds an inference BatchNorm + Scale (HF `….norm.{weight,bias,running_mean,running_var}` =
/// Caffe γ, β, m/s, v/s) into the convolution `weight` (out, in, kh, kw) it follows, so the
/// layer becomes one convolution with a bias:
///
/// `W′ = W·γ/√(var+ε)`, `b′ = β − mean·γ/√(var+ε)`, ε = f32(1e-5) (§2.2).
///
/// Computed in f64 and rounded once to f32. Caffe evaluates the same expression as a chain of
/// f32 operations (`pow(var ⊕ ε, 0.5)`, `(x ⊖ mean) ⊘ std`, `⊗ γ ⊕ β`), each rounding by at most
/// half an ulp; the folded f64 form is the exact value of that formula, so the two differ by a
/// few ulp (≈1e-7 relative) per layer, far below the 1e-5 target (§2.2: bit-exactness is out of
/// reach anyway, the convolution's summation order differs).
pub fn fold_batchnorm(
    weight: &Tensor,
    norm: &WeightPath,
) -> Result<(Tensor, Tensor), WeightsError> {
    let out = weight.size()[0];
    let gamma = norm.get("weight", &[out])?;
    let beta = norm.get("bias", &[out])?;
    let mean = norm.get("running_mean", &[out])?;
    let var = norm.get("running_var", &[out])?;
    norm.optional_counter("num_batches_tracked")?;
    let f64_of = |t: &Tensor| t.to_kind(Kind::Double);
    let inv_std = f64_of(&gamma) / (f64_of(&var) + f64::from(CAFFE_BN_EPS)).sqrt();
    let folded_w = (f64_of(weight) * inv_std.view([out, 1, 1, 1])).to_kind(Kind::Float);
    let folded_b = (f64_of(&beta) - f64_of(&mean) * &inv_std).to_kind(Kind::Float);
    Ok((folded_w, folded_b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(dir: &Path, tensors: &[(&str, Tensor)]) -> PathBuf {
        let path = dir.join("w.safetensors");
        Tensor::write_safetensors(tensors, &path).unwrap();
        path
    }

    #[test]
    fn fold_batchnorm_matches_caffe_f32_chain() {
        let dir = tempfile::tempdir().unwrap();
        let w = Tensor::randn([8, 3, 3, 3], (Kind::Float, tch::Device::Cpu));
        let gamma = Tensor::rand([8], (Kind::Float, tch::Device::Cpu)) + 0.5;
        let beta = Tensor::randn([8], (Kind::Float, tch::Device::Cpu));
        let mean = Tensor::randn([8], (Kind::Float, tch::Device::Cpu));
        let var = Tensor::rand([8], (Kind::Float, tch::Device::Cpu)) * 3.0;
        let path = write_file(
            dir.path(),
            &[
                ("c.weight", w.shallow_clone()),
                ("c.norm.weight", gamma.shallow_clone()),
                ("c.norm.bias", beta.shallow_clone()),
                ("c.norm.running_mean", mean.shallow_clone()),
                ("c.norm.running_var", var.shallow_clone()),
            ],
        );
        let weights = Weights::open(&path).unwrap();
        let c = weights.root().sub("c");
        let conv_w = c.get("weight", &[8, 3, 3, 3]).unwrap();
        let (fw, fb) = fold_batchnorm(&conv_w, &c.sub("norm")).unwrap();
        weights.check_all_used().unwrap();

        let x = Tensor::randn([2, 3, 9, 9], (Kind::Float, tch::Device::Cpu));
        let folded = x.conv2d(&fw, Some(&fb), [1, 1], [1, 1], [1, 1], 1);
        // Caffe's chain, in f32 operations (§2.2).
        let y = x.conv2d::<Tensor>(&w, None, [1, 1], [1, 1], [1, 1], 1);
        let std = (var + f64::from(CAFFE_BN_EPS))
            .pow_tensor_scalar(0.5)
            .view([1, 8, 1, 1]);
        let caffe = (y - mean.view([1, 8, 1, 1])) / std * gamma.view([1, 8, 1, 1])
            + beta.view([1, 8, 1, 1]);
        let rel = f64::try_from((&folded - &caffe).abs().max()).unwrap()
            / f64::try_from(caffe.abs().max()).unwrap();
        assert!(rel < 1e-6, "folded BN differs from Caffe's chain by {rel}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            &[
                (
                    "a.b",
                    Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu)),
                ),
                ("extra", Tensor::zeros([1], (Kind::Float, tch::Device::Cpu))),
            ],
        );
        let weights = Weights::open(&path).unwrap();
        let root = weights.root();
        let e = root.sub("a").get("b", &[3, 2]).unwrap_err().to_string();
        assert!(
            e.contains("w.safetensors") && e.contains("`a.b`") && e.contains("[2, 3]"),
            "{e}"
        );
        let e = root.sub("a").get("c", &[1]).unwrap_err().to_string();
        assert!(e.contains("missing tensor `a.c`"), "{e}");
        root.sub("a").check("b", &[2, 3]).unwrap();
        let e = weights.check_all_used().unwrap_err().to_string();
        assert!(e.contains("extra"), "{e}");
        let e = Weights::open(&dir.path().join("none.safetensors"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("none.safetensors"), "{e}");
    }
}
