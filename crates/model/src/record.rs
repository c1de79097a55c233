//! One safetensors record per image (`butd-record-v1`): the fields of the golden files under
//! the same names, dtypes and meanings (`shared/golden/README.md`), written atomically.
//!
//! Always written: `boxes` f32 K×4, `features` f32 K×2048, `keep` i64 K, `max_conf` f64 R,
//! `objects_id` i64, `objects_conf` f32, `attrs_id` i64, `attrs_conf` f32 (K each), `im_info`
//! f32 3, and `rois` f32 R×5 (`[0, x1, y1, x2, y2]`, cheap and what parity checks need first).
//! With activations: `image_bgr`, `data`, `res4b22`, `rpn_cls_prob_reshape`, `rpn_bbox_pred`,
//! `pool5_flat`, `cls_prob`, `predicted_cls` (f32), `attr_prob`.
//!
//! Metadata (strings): `format`, `tensors`, `image_name`, `orig_h`, `orig_w`, `im_scale`
//! (Python's `repr` of the f64, [`python_float_repr`]), `net_h`, `net_w`, `num_rois`,
//! `num_boxes`, `selection`, `device`, and `weights_sha256` when known.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, View};
use tch::{Kind, Tensor};

use crate::detector::Detection;
use crate::heads::POOL5_CHANNELS;

/// The `format` metadata value.
pub const RECORD_FORMAT: &str = "butd-record-v1";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: cannot write the record: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot serialise the record: {message}")]
    Serialize { path: PathBuf, message: String },
}

/// What the record says about its provenance.
#[derive(Debug, Clone, Default)]
pub struct RecordInfo {
    /// The image's file name (as the golden `image_name`).
    pub image_name: String,
    /// `cpu`, `cuda:0`, …
    pub device: String,
    pub weights_sha256: Option<String>,
}

/// Python's `repr(float)` (shortest round-trip digits; positional for 1e-4 ≤ |x| < 1e16 with a
/// trailing `.0` for integers, otherwise `d.ddde±XX`), so `im_scale` reads exactly as the golden
/// metadata: `1.5625`, `0.9090909090909091`, `20.0`.
pub fn python_float_repr(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// A tensor's bytes, owned, for `safetensors::serialize`.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data[..]).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn f32s(values: &[f32], shape: &[usize]) -> Bytes {
    Bytes {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn f64s(values: &[f64]) -> Bytes {
    Bytes {
        dtype: Dtype::F64,
        shape: vec![values.len()],
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn i64s(values: &[i64]) -> Bytes {
    Bytes {
        dtype: Dtype::I64,
        shape: vec![values.len()],
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn tensor_bytes(t: &Tensor) -> Bytes {
    let t = t.contiguous();
    let (dtype, elt) = match t.kind() {
        Kind::Float => (Dtype::F32, 4),
        Kind::Uint8 => (Dtype::U8, 1),
        Kind::Int64 => (Dtype::I64, 8),
        Kind::Double => (Dtype::F64, 8),
        kind => unreachable!("activations are f32/u8/i64/f64, not {kind:?}"),
    };
    let numel = t.numel();
    let mut data = vec![0u8; numel * elt];
    t.copy_data_u8(&mut data, numel);
    Bytes {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        data,
    }
}

/// The record's tensors, by golden name.
fn record_tensors(det: &Detection) -> Vec<(&'static str, Bytes)> {
    let k = det.selection.keep.len();
    let flat_boxes: Vec<f32> = det.boxes.iter().flatten().copied().collect();
    let rois: Vec<f32> = det
        .rois
        .iter()
        .flat_map(|r| [0.0, r[0], r[1], r[2], r[3]])
        .collect();
    let keep: Vec<i64> = det.selection.keep.iter().map(|&i| i as i64).collect();
    let mut tensors = vec![
        ("boxes", f32s(&flat_boxes, &[k, 4])),
        (
            "features",
            f32s(&det.features, &[k, POOL5_CHANNELS as usize]),
        ),
        ("keep", i64s(&keep)),
        ("max_conf", f64s(&det.selection.max_conf)),
        ("objects_id", i64s(&det.objects_id)),
        ("objects_conf", f32s(&det.objects_conf, &[k])),
        ("attrs_id", i64s(&det.attrs_id)),
        ("attrs_conf", f32s(&det.attrs_conf, &[k])),
        ("im_info", f32s(&det.im_info, &[3])),
        ("rois", f32s(&rois, &[det.rois.len(), 5])),
    ];
    if let Some(a) = &det.activations {
        for (name, t) in [
            ("image_bgr", &a.image_bgr),
            ("data", &a.data),
            ("res4b22", &a.res4b22),
            ("rpn_cls_prob_reshape", &a.rpn_cls_prob_reshape),
            ("rpn_bbox_pred", &a.rpn_bbox_pred),
            ("pool5_flat", &a.pool5_flat),
            ("cls_prob", &a.cls_prob),
            ("predicted_cls", &a.predicted_cls),
            ("attr_prob", &a.attr_prob),
        ] {
            tensors.push((name, tensor_bytes(t)));
        }
    }
    tensors
}

/// Writes `det` to `path` (a temporary file in the same folder, renamed into place, so a
/// reader never sees half a record).
pub fn write_record(path: &Path, det: &Detection, info: &RecordInfo) -> Result<(), RecordError> {
    let io_err = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tensors = record_tensors(det);
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    let mut meta: HashMap<String, String> = [
        ("format", RECORD_FORMAT.to_string()),
        ("tensors", names.join(",")),
        ("image_name", info.image_name.clone()),
        ("orig_h", det.orig_h.to_string()),
        ("orig_w", det.orig_w.to_string()),
        ("im_scale", python_float_repr(det.im_scale)),
        ("net_h", det.net_h.to_string()),
        ("net_w", det.net_w.to_string()),
        ("num_rois", det.rois.len().to_string()),
        ("num_boxes", det.selection.keep.len().to_string()),
        ("selection", det.selection.branch.as_str().to_string()),
        ("device", info.device.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(sha) = &info.weights_sha256 {
        meta.insert("weights_sha256".into(), sha.clone());
    }
    let views: Vec<(&str, &Bytes)> = tensors.iter().map(|(n, b)| (*n, b)).collect();
    let bytes = safetensors::serialize(views, &Some(meta)).map_err(|e| RecordError::Serialize {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
    tmp.write_all(&bytes).map_err(io_err)?;
    // The temporary file is private (0600); a record is an ordinary output file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err)?;
    }
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr_of_scales() {
        // The golden metadata's im_scale strings (shared/golden/index.json).
        assert_eq!(python_float_repr(1.5625), "1.5625");
        assert_eq!(python_float_repr(1000.0 / 1100.0), "0.9090909090909091");
        assert_eq!(python_float_repr(20.0), "20.0");
        assert_eq!(python_float_repr(600.0 / 512.0), "1.171875");
        assert_eq!(python_float_repr(1.2), "1.2");
        // Python switches to exponents below 1e-4 and from 1e16.
        assert_eq!(python_float_repr(1e-5), "1e-05");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1.5e300), "1.5e+300");
    }
}
