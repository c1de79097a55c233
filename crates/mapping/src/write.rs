//! Computing the planned tensors and writing them as one safetensors file.
//!
//! The file is written once, front to back, in target order: header, then each tensor's bytes
//! straight after the previous one's. A plain copy of a packed f32 blob goes from the model's
//! memory map to the file with no intermediate buffer; transformed tensors are built as
//! `ndarray` arrays (views where the transform allows) and streamed out. The file appears
//! atomically: it is written under a temporary name in the destination directory and renamed
//! over the destination only when complete (not fsynced: a crash may lose the new file, never
//! expose half of one).

use std::io::{BufWriter, Write};
use std::path::Path;

use butd_caffe::{BlobDtype, CaffeModel};
use half::f16;
use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
use crate::manifest::Dtype;
use crate::plan::{Output, Plan, Source};
use crate::spec::{Mapping, RuleSource};

/// How float tensors are stored in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FloatDtype {
    #[default]
    F32,
    /// Rounded to nearest f16 when written.
    F16,
}

/// The weights' `__metadata__` key naming the mapping that wrote them (its file or `builtin:NAME`).
pub const METADATA_MAPPING: &str = "butd_mapping";
/// The key holding that mapping's [`Mapping::digest`].
pub const METADATA_MAPPING_DIGEST: &str = "butd_mapping_digest";

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub float: FloatDtype,
    /// Extra `__metadata__` entries (besides `format = pt` and the mapping's
    /// [`METADATA_MAPPING`] and [`METADATA_MAPPING_DIGEST`], which every file gets).
    pub metadata: Vec<(String, String)>,
    /// Write NaN and ±inf values instead of refusing them ([`Error::NonFinite`]).
    pub allow_non_finite: bool,
}

impl WriteOptions {
    /// `butd convert`'s options: `float`, and the provenance every converted file carries
    /// besides what the writer adds itself: `butd_source` (the model's file name) and
    /// `butd_version`. The CLI and the Python package both write through this.
    pub fn stamped(float: FloatDtype, model: &Path) -> WriteOptions {
        let source = model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        WriteOptions {
            float,
            metadata: vec![
                ("butd_source".to_string(), source),
                (
                    "butd_version".to_string(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
            ],
            ..WriteOptions::default()
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub tensors: usize,
    pub bytes: u64,
    /// Temporary files of an earlier, interrupted write of the same output that were removed.
    pub stale_removed: usize,
}

/// The output is written as `.<name>.<random>.tmp` beside it.
const TEMP_SUFFIX: &str = ".tmp";

/// Removes the temporary files (`<prefix>*.tmp` in `dir`) that an interrupted write of the same
/// output left behind: a Ctrl-C, SIGTERM or kill ends the process before the temporary file's
/// destructor runs. Two processes writing one output at once race anyway (the last rename
/// wins), so a temporary file of this name is never another run's live work worth keeping.
fn remove_stale_temp_files(dir: &Path, prefix: &str) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(TEMP_SUFFIX) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A computed tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

impl Plan {
    /// Computes one output in memory (for tests and for callers that want arrays, not files).
    pub fn tensor(&self, mapping: &Mapping, model: &CaffeModel, out: &Output) -> Tensor {
        match &out.source {
            Source::Const(ri) => {
                let RuleSource::Const { value, .. } = &mapping.rules[*ri].source else {
                    unreachable!("a Const source comes from a const rule")
                };
                let shape = IxDyn(&value.shape);
                if value.dtype == Dtype::I64 {
                    let v = value.values.iter().map(|&x| x as i64).collect();
                    return Tensor::I64(
                        ArrayD::from_shape_vec(shape, v).expect("shape checked at parse"),
                    );
                }
                let v = value.values.iter().map(|&x| x as f32).collect();
                let x = ArrayD::from_shape_vec(shape, v).expect("shape checked at parse");
                Tensor::F32(apply_ops(out, model, x))
            }
            Source::Blob(id) => {
                let blob = &model.layers()[id.layer].blobs[id.blob];
                let x = ArrayD::from_shape_vec(IxDyn(&out.source_shape), model.to_vec_f32(blob))
                    .expect("planned shape has the blob's element count");
                Tensor::F32(apply_ops(out, model, x))
            }
        }
    }

    /// Writes every output to `path` as safetensors, in plan order. Refuses a plan with
    /// problems (`Error::Strict`). `mapping` and `model` must be the ones the plan was made from.
    pub fn write_safetensors(
        &self,
        mapping: &Mapping,
        model: &CaffeModel,
        path: &Path,
        options: &WriteOptions,
    ) -> Result<Written> {
        self.check()?;
        if !options.allow_non_finite {
            self.check_factors(model)?;
        }
        // Every file says which mapping wrote it, whoever calls the writer (CLI, tests, Python).
        let mut options = options.clone();
        options
            .metadata
            .retain(|(k, _)| k != METADATA_MAPPING && k != METADATA_MAPPING_DIGEST);
        options.metadata.extend([
            (METADATA_MAPPING.to_string(), mapping.origin.clone()),
            (
                METADATA_MAPPING_DIGEST.to_string(),
                mapping.digest().to_string(),
            ),
        ]);
        let options = &options;
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let stale_removed = remove_stale_temp_files(dir, &prefix).map_err(io)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(TEMP_SUFFIX);
        // Like File::create (0666 less the umask), not tempfile's private 0600.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder.tempfile_in(dir).map_err(io)?;
        let (header, data_len) = self.header(options);
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(header.as_bytes()).map_err(io)?;
        let mut scratch = Vec::new();
        let mut bytes = Vec::new();
        for out in &self.outputs {
            let first_bad = self
                .write_one(
                    mapping,
                    model,
                    out,
                    options.float,
                    &mut w,
                    &mut scratch,
                    &mut bytes,
                )
                .map_err(io)?;
            if let (Some((index, value)), false) = (first_bad, options.allow_non_finite) {
                // The temporary file is dropped (removed): nothing is written.
                return Err(Error::NonFinite {
                    key: out.key.clone(),
                    from: source_name(model, mapping, out),
                    index,
                    value,
                });
            }
        }
        w.flush().map_err(io)?;
        drop(w);
        let total = 8 + header.len() as u64 + data_len;
        let len = tmp.as_file().metadata().map_err(io)?.len();
        if len != total {
            let e = std::io::Error::other(format!("wrote {len} bytes, expected {total}"));
            return Err(io(e));
        }
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(Written {
            tensors: self.outputs.len(),
            bytes: total,
            stale_removed,
        })
    }

    /// The JSON header, padded with spaces to a multiple of 8 bytes (so data starts aligned),
    /// and the total data length. Keys appear in plan order, data in the same order.
    fn header(&self, options: &WriteOptions) -> (String, u64) {
        let q = |s: &str| serde_json::to_string(s).expect("strings serialise");
        let mut meta = vec![("format".to_string(), "pt".to_string())];
        meta.extend(options.metadata.iter().cloned());
        let meta: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("{}:{}", q(k), q(v)))
            .collect();
        let mut h = format!("{{\"__metadata__\":{{{}}}", meta.join(","));
        let mut offset = 0u64;
        for out in &self.outputs {
            let dtype = written_dtype(&out.dtype, options.float);
            let n: usize = out.shape.iter().product();
            let end = offset + (n * dtype.size().expect("written dtypes have a size")) as u64;
            let shape: Vec<String> = out.shape.iter().map(ToString::to_string).collect();
            h.push_str(&format!(
                ",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
                q(&out.key),
                dtype.safetensors_name(),
                shape.join(",")
            ));
            offset = end;
        }
        h.push('}');
        while h.len() % 8 != 0 {
            h.push(' ');
        }
        (h, offset)
    }

    /// The one-element factor blobs (`bn_factor`) must be finite: a NaN factor makes every
    /// value of its tensor NaN.
    fn check_factors(&self, model: &CaffeModel) -> Result<()> {
        for out in &self.outputs {
            for id in out.ops.iter().filter_map(|op| op.factor.as_ref()) {
                let layer = &model.layers()[id.layer];
                let mut v = [0.0f32];
                model.read_f32(&layer.blobs[id.blob], &mut v);
                if !v[0].is_finite() {
                    return Err(Error::NonFinite {
                        key: out.key.clone(),
                        from: format!("the factor blob {}[{}]", layer.name, id.blob),
                        index: 0,
                        value: v[0],
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes one output; returns its first non-finite value (flat index, value), if any.
    #[allow(clippy::too_many_arguments)]
    fn write_one(
        &self,
        mapping: &Mapping,
        model: &CaffeModel,
        out: &Output,
        float: FloatDtype,
        w: &mut impl Write,
        scratch: &mut Vec<f32>,
        bytes: &mut Vec<u8>,
    ) -> std::io::Result<Option<(usize, f32)>> {
        if let (Source::Blob(id), true) = (&out.source, out.ops.is_empty()) {
            let blob = &model.layers()[id.layer].blobs[id.blob];
            if float == FloatDtype::F32 && blob.dtype == BlobDtype::F32 {
                if let Some(raw) = model.data_bytes(blob) {
                    // Caffe stores little-endian f32, as safetensors does: copy the bytes.
                    w.write_all(raw)?;
                    return Ok(first_non_finite_le(raw));
                }
            }
            scratch.resize(blob.len(), 0.0);
            model.read_f32(blob, scratch);
            write_floats(w, scratch, float, bytes)?;
            return Ok(first_non_finite(scratch));
        }
        match self.tensor(mapping, model, out) {
            Tensor::I64(x) => {
                bytes.clear();
                x.iter()
                    .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
                w.write_all(bytes)?;
                Ok(None)
            }
            Tensor::F32(x) => {
                let owned;
                let values = match x.as_slice() {
                    Some(s) => s,
                    None => {
                        owned = x.iter().copied().collect::<Vec<_>>();
                        &owned
                    }
                };
                write_floats(w, values, float, bytes)?;
                Ok(first_non_finite(values))
            }
        }
    }
}

/// Where an output's values come from, as error messages name it.
fn source_name(model: &CaffeModel, mapping: &Mapping, out: &Output) -> String {
    match &out.source {
        Source::Blob(id) => format!(
            "the Caffe blob {}[{}]",
            model.layers()[id.layer].name,
            id.blob
        ),
        Source::Const(ri) => format!("the constant on line {}", mapping.rules[*ri].line),
    }
}

/// The first NaN or ±inf (flat index, value).
fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    let i = values.iter().position(|v| !v.is_finite())?;
    Some((i, values[i]))
}

/// [`first_non_finite`] of little-endian f32 bytes: all exponent bits set is NaN or ±inf.
/// `bench_convert` with this check on every tensor: 0.24 s of CPU per convert of the 270 MB
/// model (median; 0.22 s before it, README).
fn first_non_finite_le(raw: &[u8]) -> Option<(usize, f32)> {
    let i = raw
        .chunks_exact(4)
        .position(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000)?;
    Some((
        i,
        f32::from_le_bytes(raw[4 * i..4 * i + 4].try_into().expect("4 bytes")),
    ))
}

fn written_dtype(dtype: &Dtype, float: FloatDtype) -> Dtype {
    match (dtype, float) {
        (Dtype::F32, FloatDtype::F16) => Dtype::F16,
        (d, _) => d.clone(),
    }
}

fn apply_ops(out: &Output, model: &CaffeModel, x: ArrayD<f32>) -> ArrayD<f32> {
    out.ops.iter().fold(x, |x, op| {
        let factor = op.factor.map(|id| {
            let blob = &model.layers()[id.layer].blobs[id.blob];
            let mut v = [0.0f32];
            model.read_f32(blob, &mut v);
            v[0]
        });
        op.step.apply(x, factor)
    })
}

/// Little-endian f32 or f16 values: f32 on a little-endian machine is written as it lies in
/// memory; otherwise values are converted in 1 MiB pieces.
fn write_floats(
    w: &mut impl Write,
    values: &[f32],
    float: FloatDtype,
    bytes: &mut Vec<u8>,
) -> std::io::Result<()> {
    if float == FloatDtype::F32 && cfg!(target_endian = "little") {
        return w.write_all(native_bytes(values));
    }
    for chunk in values.chunks(1 << 18) {
        bytes.clear();
        match float {
            FloatDtype::F32 => chunk
                .iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
            FloatDtype::F16 => chunk
                .iter()
                .for_each(|&v| bytes.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        }
        w.write_all(bytes)?;
    }
    Ok(())
}

/// The in-memory bytes of `values` (native byte order).
fn native_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding bytes and u8 has alignment 1; the slice covers exactly the
    // memory of `values` and borrows it for the same lifetime.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}
