//! Any record as named tensors: the public record format (one safetensors file per image,
//! tensor names as in `golden/README.md`, `docs/verify.md`) read and written whole, and the
//! shape every feature file is normalised to ([`crate::canonical`]). Every value is widened to
//! f64 once, so comparisons do not care which dtype each side chose (i64 ids are exact up to
//! 2^53).
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::error::FormatError;
use crate::resolution::{Half, Resolution};

/// One tensor of a record, values widened to f64 in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    /// Set when the values went through a 16-bit float (an F16/BF16 tensor, a float16 format):
    /// they are compared up to their rounding intervals.
    pub resolution: Option<Resolution>,
}

impl Tensor {
    /// A tensor of `dtype` holding `values`; fails when their count does not fit `shape`.
    pub fn new(
        name: &str,
        dtype: Dtype,
        shape: Vec<usize>,
        values: Vec<f64>,
    ) -> Result<Self, FormatError> {
        let expected: usize = shape.iter().product();
        if expected != values.len() {
            return Err(FormatError::ValueCount {
                tensor: name.to_string(),
                shape,
                expected,
                got: values.len(),
            });
        }
        let resolution = match dtype {
            Dtype::F16 => Some(Resolution::plain(Half::F16)),
            Dtype::BF16 => Some(Resolution::plain(Half::BF16)),
            _ => None,
        };
        Ok(Tensor {
            dtype,
            shape,
            values,
            resolution,
        })
    }

    /// The same tensor, its values standing for what `resolution` says.
    pub fn with_resolution(mut self, resolution: Resolution) -> Self {
        self.resolution = Some(resolution);
        self
    }

    /// Its first `rows` rows (all when it has fewer).
    pub fn first_rows(&self, rows: usize) -> Tensor {
        let rows = rows.min(self.rows());
        let mut t = self.clone();
        if let Some(first) = t.shape.first_mut() {
            *first = rows;
            t.values.truncate(rows * self.row_len());
        }
        t
    }

    /// Rows along the first axis (a 0-d tensor is one row).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Values per row: the product of the trailing dimensions.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.row_len();
        &self.values[i * n..(i + 1) * n]
    }

    /// Entries that are NaN or ±inf.
    pub fn nonfinite(&self) -> usize {
        self.values.iter().filter(|v| !v.is_finite()).count()
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        let v = &self.values;
        match self.dtype {
            Dtype::BOOL => v.iter().map(|&x| u8::from(x != 0.0)).collect(),
            Dtype::U8 => v.iter().map(|&x| x as u8).collect(),
            Dtype::I8 => v.iter().flat_map(|&x| (x as i8).to_le_bytes()).collect(),
            Dtype::I16 => v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect(),
            Dtype::U16 => v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect(),
            Dtype::I32 => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
            Dtype::U32 => v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
            Dtype::I64 => v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect(),
            Dtype::U64 => v.iter().flat_map(|&x| (x as u64).to_le_bytes()).collect(),
            Dtype::F16 => v
                .iter()
                .flat_map(|&x| half::f16::from_f64(x).to_le_bytes())
                .collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|&x| half::bf16::from_f64(x).to_le_bytes())
                .collect(),
            Dtype::F32 => v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
            // Only dtypes that `decode` accepts reach a Tensor, and F64 is the last of them.
            _ => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
        }
    }
}

fn le<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(chunk);
    a
}

/// Widens little-endian `bytes` of `dtype` to f64; `None` for dtypes verify does not compare (FP8).
fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    macro_rules! widen {
        ($t:ty, $n:literal) => {
            bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(le::<$n>(c)) as f64)
                .collect()
        };
    }
    Some(match dtype {
        Dtype::BOOL | Dtype::U8 => bytes.iter().map(|&b| f64::from(b)).collect(),
        Dtype::I8 => widen!(i8, 1),
        Dtype::I16 => widen!(i16, 2),
        Dtype::U16 => widen!(u16, 2),
        Dtype::I32 => widen!(i32, 4),
        Dtype::U32 => widen!(u32, 4),
        Dtype::I64 => widen!(i64, 8),
        Dtype::U64 => widen!(u64, 8),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes(le::<2>(c)).to_f64())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes(le::<2>(c)).to_f64())
            .collect(),
        Dtype::F32 => widen!(f32, 4),
        Dtype::F64 => widen!(f64, 8),
        _ => return None,
    })
}

/// The dtype's name as safetensors writes it in the header ("F32", "I64", …).
pub fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

/// One image's tensors and string metadata.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

impl Record {
    /// Memory-maps and decodes a safetensors file.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path))?;
        let bad = |reason: String| FormatError::Record {
            path: path.to_path_buf(),
            message: format!("not a valid safetensors file: {reason}"),
        };
        // SAFETY: the map is read-only and lives only inside this function; a file truncated
        // concurrently by another process is outside what verify can defend against.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(FormatError::io(path))?;
        let (_, header) = SafeTensors::read_metadata(&map).map_err(|e| bad(format!("{e:?}")))?;
        let st = SafeTensors::deserialize(&map).map_err(|e| bad(format!("{e:?}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            let values =
                decode(view.dtype(), view.data()).ok_or_else(|| FormatError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    dtype: dtype_name(view.dtype()),
                })?;
            let tensor = Tensor::new(name, view.dtype(), view.shape().to_vec(), values)
                .map_err(|e| bad(e.to_string()))?;
            tensors.insert(name.to_string(), tensor);
        }
        let metadata = header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Record {
            path: path.to_path_buf(),
            tensors,
            metadata,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Writes the record as safetensors (each tensor in its own dtype), e.g. a candidate from a
    /// Rust implementation or a perturbed copy of a golden file.
    pub fn write(&self, path: &Path) -> Result<(), FormatError> {
        let views: Vec<(String, OwnedView)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let view = OwnedView {
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    bytes: t.to_le_bytes(),
                };
                (name.clone(), view)
            })
            .collect();
        let metadata: Option<HashMap<String, String>> = if self.metadata.is_empty() {
            None
        } else {
            Some(self.metadata.clone().into_iter().collect())
        };
        safetensors::serialize_to_file(views, &metadata, path).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(error) => FormatError::Io {
                path: path.to_path_buf(),
                error,
            },
            other => FormatError::Record {
                path: path.to_path_buf(),
                message: format!("cannot write as safetensors: {other:?}"),
            },
        })
    }
}

struct OwnedView {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for OwnedView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_comparable_dtype_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.safetensors");
        let dtypes = [
            Dtype::BOOL,
            Dtype::U8,
            Dtype::I8,
            Dtype::I16,
            Dtype::U16,
            Dtype::F16,
            Dtype::BF16,
            Dtype::I32,
            Dtype::U32,
            Dtype::F32,
            Dtype::F64,
            Dtype::I64,
            Dtype::U64,
        ];
        let mut rec = Record::default();
        for (k, dt) in dtypes.iter().enumerate() {
            let values = if *dt == Dtype::BOOL {
                vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
            } else {
                vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0 + k as f64]
            };
            let t = Tensor::new("t", *dt, vec![2, 3], values).unwrap();
            rec.tensors.insert(format!("t{k}"), t);
        }
        rec.metadata.insert("format".into(), "test".into());
        rec.write(&path).unwrap();
        let back = Record::open(&path).unwrap();
        assert_eq!(back.tensors, rec.tensors);
        assert_eq!(back.metadata, rec.metadata);
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, [1u8, 0, 0]).unwrap();
        let err = Record::open(&path).unwrap_err().to_string();
        assert!(err.contains("bad.safetensors"), "{err}");
    }

    #[test]
    fn value_count_must_fit_the_shape() {
        let err = Tensor::new("x", Dtype::F32, vec![2, 2], vec![1.0; 3]).unwrap_err();
        assert!(err.to_string().contains("`x`"));
    }
}
