//! `butd.open_features`: any feature file `butd verify` reads (records folder, BUTD / LXMERT
//! TSV, UNITER img_db or npz folder, VQA HDF5), format detected by content
//! (`butd_formats::detect_format`), opened as a read-only id → record lookup. Each lookup reads
//! one record through the `butd_formats` reader of its format; TSVs are indexed once (one pass
//! keeping each row's byte offset, not its values), so a COCO-sized TSV is never held in memory.
//!
//! Values cross as `(dtype, shape, bytes)` triples that the Python side wraps as read-only
//! numpy arrays (`numpy.frombuffer`), so every format, float16 included, takes one path.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use butd_formats::{detect_format, Format};
use butd_formats::{
    read_uniter_npz, ButdTsvReader, LxmertTsvReader, NdArray, Record, UniterLmdbReader, VqaHdf5,
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

/// How one format finds a record by id.
enum Index {
    /// Records (`<id>.safetensors`) or UNITER npz files (`<id>.npz`).
    Files(HashMap<String, PathBuf>),
    /// Byte offset and length of each row.
    Tsv {
        rows: HashMap<String, (u64, usize)>,
        lxmert: bool,
    },
    /// id (name without `.npz`) → LMDB key.
    Lmdb(UniterLmdbReader, HashMap<String, String>),
    /// id → image index.
    Vqa(VqaHdf5, HashMap<String, usize>),
}

/// `unsendable`: the LMDB reader holds a thread-bound read transaction. A torch `Dataset`
/// opens the file in each DataLoader worker (worker processes, each its own object).
#[pyclass(module = "butd._butd", name = "_FeatureFile", unsendable)]
pub struct FeatureFile {
    path: PathBuf,
    format: Format,
    ids: Vec<String>,
    index: Index,
}

#[pymethods]
impl FeatureFile {
    #[new]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let (format, path) = guard(py, || Ok(detect_format(&path)?))?;
        // Only the TSV pass takes long enough to release the GIL for; the LMDB reader is not
        // `Send` and so could not be built without it anyway.
        let (ids, index) = match format {
            Format::Records => catch(|| files(&path, "safetensors"))?,
            Format::UniterNpz => catch(|| files(&path, "npz"))?,
            Format::UniterLmdb => catch(|| open_lmdb(&path))?,
            Format::VqaHdf5 => catch(|| vqa(&path))?,
            Format::ButdTsv | Format::LxmertTsv => {
                let (ids, rows) = guard(py, || tsv(&path))?;
                let lxmert = format == Format::LxmertTsv;
                (ids, Index::Tsv { rows, lxmert })
            }
        };
        Ok(FeatureFile {
            path,
            format,
            ids,
            index,
        })
    }

    /// `records`, `butd-tsv`, `lxmert-tsv`, `uniter-lmdb`, `uniter-npz` or `vqa-hdf5`.
    #[getter]
    fn format(&self) -> &'static str {
        self.format.name()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The ids, in the file's order.
    fn ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    fn __len__(&self) -> usize {
        self.ids.len()
    }

    fn __contains__(&self, id: &str) -> bool {
        match &self.index {
            Index::Files(m) => m.contains_key(id),
            Index::Tsv { rows, .. } => rows.contains_key(id),
            Index::Lmdb(_, m) => m.contains_key(id),
            Index::Vqa(_, m) => m.contains_key(id),
        }
    }

    /// The record of `id` as `{name: value}`; `KeyError` for an unknown id.
    fn get<'py>(&mut self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyDict>> {
        if !self.__contains__(id) {
            return Err(pyo3::exceptions::PyKeyError::new_err(id.to_string()));
        }
        let values = catch(|| self.read(id))?;
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

impl FeatureFile {
    fn read(&mut self, id: &str) -> anyhow::Result<Values> {
        match &mut self.index {
            Index::Files(m) if self.format == Format::Records => read_record_file(&m[id]),
            Index::Files(m) => Ok(ndarrays(read_uniter_npz(&m[id])?.arrays)),
            Index::Tsv { rows, lxmert } => {
                let (offset, len) = rows[id];
                let mut line = vec![0u8; len];
                let mut file = File::open(&self.path)
                    .with_context(|| format!("{}: cannot open", self.path.display()))?;
                file.seek(SeekFrom::Start(offset))?;
                file.read_exact(&mut line).with_context(|| {
                    format!("{}: cannot read the row of {id}", self.path.display())
                })?;
                let row = if *lxmert {
                    LxmertTsvReader::new(Cursor::new(line), &self.path).next()
                } else {
                    ButdTsvReader::new(Cursor::new(line), &self.path).next()
                };
                Ok(record_values(
                    row.ok_or_else(|| anyhow!("{id}: empty row"))??,
                ))
            }
            Index::Lmdb(reader, keys) => Ok(ndarrays(reader.get(&keys[id])?.arrays)),
            Index::Vqa(file, images) => {
                let img = file.image(images[id])?;
                let k = img.image_bb.len();
                Ok(vec![
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
                ])
            }
        }
    }
}

fn f32s<'a>(values: impl Iterator<Item = &'a f32>, shape: Vec<usize>) -> Value {
    Value::Array("<f4", shape, values.flat_map(|v| v.to_le_bytes()).collect())
}

fn i64s(values: &[i64]) -> Value {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Value::Array("<i8", vec![values.len()], bytes)
}

/// Every file `<id>.<ext>` directly in `dir`, sorted by id.
fn files(dir: &Path, ext: &str) -> anyhow::Result<(Vec<String>, Index)> {
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(ext) {
            let id = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            found.push((id, path));
        }
    }
    found.sort();
    let ids = found.iter().map(|(id, _)| id.clone()).collect();
    Ok((ids, Index::Files(found.into_iter().collect())))
}

/// One pass over the TSV: each row's id (its first field) and where the row is.
fn tsv(path: &Path) -> anyhow::Result<(Vec<String>, HashMap<String, (u64, usize)>)> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let (mut ids, mut rows) = (Vec::new(), HashMap::new());
    let (mut offset, mut line) = (0u64, Vec::new());
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let id_end = line.iter().position(|&b| b == b'\t').unwrap_or(0);
        if id_end == 0 && !line.trim_ascii().is_empty() {
            bail!(
                "{}: line {}: no tab-separated id",
                path.display(),
                ids.len() + 1
            );
        }
        if id_end > 0 {
            let id = String::from_utf8_lossy(&line[..id_end]).into_owned();
            if rows.insert(id.clone(), (offset, n)).is_some() {
                bail!("{}: image id {id} appears twice", path.display());
            }
            ids.push(id);
        }
        offset += n as u64;
    }
    Ok((ids, rows))
}

fn open_lmdb(dir: &Path) -> anyhow::Result<(Vec<String>, Index)> {
    let reader = UniterLmdbReader::open(dir)?;
    let ids: Vec<String> = reader
        .keys()
        .iter()
        .map(|k| k.strip_suffix(".npz").unwrap_or(k).to_string())
        .collect();
    let keys = ids
        .iter()
        .cloned()
        .zip(reader.keys().iter().cloned())
        .collect();
    Ok((ids, Index::Lmdb(reader, keys)))
}

fn vqa(path: &Path) -> anyhow::Result<(Vec<String>, Index)> {
    let file = VqaHdf5::open(path)?;
    let ids: Vec<String> = file.image_ids().iter().map(|i| i.to_string()).collect();
    let images = ids.iter().cloned().zip(0..).collect();
    Ok((ids, Index::Vqa(file, images)))
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
