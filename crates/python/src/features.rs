//! `butd.open_features`: any feature file `butd verify` reads (records folder, BUTD / LXMERT
//! TSV, UNITER img_db or npz folder, VQA HDF5), opened and indexed by `butd_formats`'s source
//! (format detected by content, images listed by id, one record fetched at a time; a TSV is
//! indexed once by byte offset, not values, so a COCO-sized TSV is never held in memory). Each
//! record is read in its own format's terms (its reader's record, not the canonical f64 one).
//!
//! Values cross as `(dtype, shape, bytes)` triples that the Python side wraps as read-only
//! numpy arrays (`numpy.frombuffer`), so every format, float16 included, takes one path.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use butd_formats::source::{parse_tsv, Locator, Meta, Raw, Reader, Source};
use butd_formats::{
    detect_format, read_uniter_npz, Format, FormatError, NdArray, Record, SourceSpec, VqaImage,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use safetensors::SafeTensors;

use crate::{catch, guard};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FeatureFile>()?;
    Ok(())
}

/// One value of a record: a scalar, or an array as `(numpy dtype str, shape, little-endian bytes)`.
enum Value {
    Int(i64),
    Str(String),
    Array(&'static str, Vec<usize>, Vec<u8>),
}

type Values = Vec<(String, Value)>;

/// `unsendable`: the LMDB reader holds a thread-bound read transaction. A torch `Dataset`
/// opens the file in each DataLoader worker (worker processes, each its own object).
#[pyclass(module = "butd._butd", name = "_FeatureFile", unsendable)]
pub struct FeatureFile {
    meta: Meta,
    reader: Reader,
    ids: Vec<String>,
    at: HashMap<String, Locator>,
}

#[pymethods]
impl FeatureFile {
    #[new]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let (format, path) = guard(py, || Ok(detect_format(&path)?))?;
        let spec = SourceSpec::new(&path).with_format(format);
        let Source { meta, mut reader } = catch(|| Ok(Source::open(&spec)?))?;
        // Only the TSV pass takes long enough to release the GIL for; the LMDB reader is not
        // `Send` and so could not be listed without it anyway.
        let (ids, at) = match &mut reader {
            Reader::Tsv(lines) => guard(py, || index(&path, |visit| lines.list(visit)))?,
            other => catch(|| index(&path, |visit| other.list(&meta, visit)))?,
        };
        Ok(FeatureFile {
            meta,
            reader,
            ids,
            at,
        })
    }

    /// `records`, `butd-tsv`, `lxmert-tsv`, `uniter-lmdb`, `uniter-npz` or `vqa-hdf5`.
    #[getter]
    fn format(&self) -> &'static str {
        self.meta.format.name()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.meta.path.clone()
    }

    /// The ids, in the file's order.
    fn ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    fn __len__(&self) -> usize {
        self.ids.len()
    }

    fn __contains__(&self, id: &str) -> bool {
        self.at.contains_key(id)
    }

    /// The record of `id` as `{name: value}`; `KeyError` for an unknown id.
    fn get<'py>(&mut self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyDict>> {
        let Some(at) = self.at.get(id) else {
            return Err(pyo3::exceptions::PyKeyError::new_err(id.to_string()));
        };
        let values = catch(|| {
            read(
                &self.meta,
                self.reader
                    .fetch(&self.meta, at)
                    .map_err(anyhow::Error::msg)?,
            )
        })?;
        let d = PyDict::new(py);
        for (name, value) in values {
            match value {
                Value::Int(i) => d.set_item(name, i)?,
                Value::Str(s) => d.set_item(name, s)?,
                Value::Array(dtype, shape, bytes) => {
                    d.set_item(name, (dtype, shape, PyBytes::new(py, &bytes)))?
                }
            }
        }
        Ok(d)
    }
}

/// The source's listing as ids in the file's order and where each image is. An id seen twice
/// is an error (`butd verify` keeps the first and reports the second; a lookup by id cannot).
fn index(
    path: &Path,
    list: impl FnOnce(&mut dyn FnMut(&str, Locator, String)) -> Result<(), FormatError>,
) -> anyhow::Result<(Vec<String>, HashMap<String, Locator>)> {
    let (mut ids, mut at, mut twice) = (Vec::new(), HashMap::new(), None);
    list(&mut |id, loc, place| {
        if at.insert(id.to_string(), loc).is_some() {
            twice.get_or_insert_with(|| {
                format!("{}: {place}: image id {id} appears twice", path.display())
            });
        } else {
            ids.push(id.to_string());
        }
    })?;
    match twice {
        Some(e) => bail!(e),
        None => Ok((ids, at)),
    }
}

/// A fetched image in its own format's terms: a record file's tensors, a TSV row's fields,
/// UNITER's arrays or the VQA HDF5's datasets.
fn read(meta: &Meta, raw: Raw) -> anyhow::Result<Values> {
    Ok(match raw {
        Raw::File(p) if meta.format == Format::Records => read_record_file(&p)?,
        Raw::File(p) => ndarrays(read_uniter_npz(&p)?.arrays),
        Raw::Line { bytes, line } => {
            record_values(parse_tsv(meta, &bytes, line).map_err(anyhow::Error::msg)?)
        }
        Raw::Uniter(entry) => ndarrays(entry.arrays),
        Raw::Vqa(img) => vqa_values(&img),
    })
}

fn vqa_values(img: &VqaImage) -> Values {
    let k = img.image_bb.len();
    vec![
        ("image_id".into(), Value::Int(img.image_id)),
        (
            "image_bb".into(),
            f32s(img.image_bb.iter().flatten(), vec![k, 4]),
        ),
        (
            "spatial_features".into(),
            f32s(img.spatial.iter().flatten(), vec![k, 6]),
        ),
        (
            "image_features".into(),
            f32s(img.features.iter(), vec![k, img.feature_dim]),
        ),
    ]
}

fn f32s<'a>(values: impl Iterator<Item = &'a f32>, shape: Vec<usize>) -> Value {
    Value::Array("<f4", shape, values.flat_map(|v| v.to_le_bytes()).collect())
}

fn i64s(values: &[i64]) -> Value {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Value::Array("<i8", vec![values.len()], bytes)
}

fn ndarrays(arrays: Vec<(String, NdArray)>) -> Values {
    arrays
        .into_iter()
        .map(|(name, a)| (name, Value::Array(a.dtype.descr(), a.shape, a.data)))
        .collect()
}

/// A TSV row: what the format holds, under the record's names.
fn record_values(r: Record) -> Values {
    let k = r.boxes.len();
    let mut v = vec![
        ("image_id".into(), Value::Str(r.image_id)),
        ("image_h".into(), Value::Int(r.image_h as i64)),
        ("image_w".into(), Value::Int(r.image_w as i64)),
        ("boxes".into(), f32s(r.boxes.iter().flatten(), vec![k, 4])),
        (
            "features".into(),
            f32s(r.features.iter(), vec![k, r.feature_dim]),
        ),
    ];
    for (name, ids) in [("objects_id", &r.objects_id), ("attrs_id", &r.attrs_id)] {
        if let Some(ids) = ids {
            v.push((name.into(), i64s(ids)));
        }
    }
    for (name, confs) in [
        ("objects_conf", &r.objects_conf),
        ("attrs_conf", &r.attrs_conf),
    ] {
        if let Some(c) = confs {
            v.push((name.into(), f32s(c.iter(), vec![c.len()])));
        }
    }
    v
}

/// Every tensor of a record file, and `image_h` / `image_w` from its metadata.
fn read_record_file(path: &Path) -> anyhow::Result<Values> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let bad = |e: safetensors::SafeTensorError| {
        anyhow!("{}: not a safetensors file: {e}", path.display())
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(bad)?;
    let st = SafeTensors::deserialize(&bytes).map_err(bad)?;
    let mut values = Values::new();
    let metadata = header.metadata().clone().unwrap_or_default();
    for (key, name) in [("orig_h", "image_h"), ("orig_w", "image_w")] {
        if let Some(n) = metadata.get(key).and_then(|s| s.parse::<i64>().ok()) {
            values.push((name.into(), Value::Int(n)));
        }
    }
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let t = st.tensor(&name).map_err(bad)?;
        let dtype = numpy_dtype(t.dtype()).ok_or_else(|| {
            anyhow!(
                "{}: tensor {name}: dtype {:?} has no numpy twin here",
                path.display(),
                t.dtype()
            )
        })?;
        values.push((
            name,
            Value::Array(dtype, t.shape().to_vec(), t.data().to_vec()),
        ));
    }
    Ok(values)
}

fn numpy_dtype(dtype: safetensors::Dtype) -> Option<&'static str> {
    use safetensors::Dtype::*;
    Some(match dtype {
        F64 => "<f8",
        F32 => "<f4",
        F16 => "<f2",
        I64 => "<i8",
        I32 => "<i4",
        U8 => "|u1",
        BOOL => "|b1",
        _ => return None,
    })
}
