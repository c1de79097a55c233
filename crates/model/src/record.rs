//! One safetensors record per image (`butd-record-v1`): the fields of the golden files under
//! the same names, dtypes and meanings (`golden/README.md`), written atomically.
//!
//! Always written: `boxes` f32 K×4, `features` f32 K×2048, `keep` i64 K, `max_conf` f64 R,
//! `objects_id` i64, `objects_conf` f32, `attrs_id` i64, `attrs_conf` f32 (K each), `im_info`
//! f32 3, and `rois` f32 R×5 (`[0, x1, y1, x2, y2]`, cheap and what parity checks need first).
//! With activations: `image_bgr`, `data`, `res4b22`, `rpn_cls_prob_reshape`, `rpn_bbox_pred`,
//! `pool5_flat`, `cls_prob`, `predicted_cls` (f32), `attr_prob`.
//!
//! Metadata (strings): `format`, `tensors`, `result` (`detections`, or `no_proposals` with a
//! `reason`: [`write_no_proposals_record`]), `image_name`, `orig_h`, `orig_w`, `im_scale`
//! (Python's `repr` of the f64, [`butd_formats::python_float_str`]), `net_h`, `net_w`, `num_rois`,
//! `num_boxes`, `selection`, `device`, `weights_sha256` when known, and the caller's
//! [`RecordInfo::extra`] entries.
//!
//! A record is complete or absent: it is written to a temporary file in the same folder, named
//! `.butd-record-*.tmp` ([`is_temp_record_name`]), and renamed into place. [`record_state`]
//! tells a complete record from a damaged one without reading its tensors.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use butd_formats::python_float_str;
use safetensors::tensor::{Dtype, View};
use tch::{Kind, Tensor};

use crate::detector::{Detection, InputShape};
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
    /// More metadata entries (e.g. `precision`).
    pub extra: Vec<(String, String)>,
}

/// The `result` metadata of a record with detections.
pub const RESULT_DETECTIONS: &str = "detections";
/// The `result` metadata of a record whose image had no proposals (Caffe's crash case).
pub const RESULT_NO_PROPOSALS: &str = "no_proposals";

/// Temporary record files are `.butd-record-<random>.tmp`: hidden, and never a `*.safetensors`.
const TEMP_PREFIX: &str = ".butd-record-";
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `file_name` is a temporary record file (left behind only when its writer was killed).
pub fn is_temp_record_name(file_name: &str) -> bool {
    file_name.starts_with(TEMP_PREFIX) && file_name.ends_with(TEMP_SUFFIX)
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
        ("im_info", f32s(&det.input.im_info, &[3])),
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

/// The tensors of a record without proposals: every final tensor with 0 rows, `rois` 0×5.
fn no_proposal_tensors(input: &InputShape) -> Vec<(&'static str, Bytes)> {
    vec![
        ("boxes", f32s(&[], &[0, 4])),
        ("features", f32s(&[], &[0, POOL5_CHANNELS as usize])),
        ("keep", i64s(&[])),
        ("max_conf", f64s(&[])),
        ("objects_id", i64s(&[])),
        ("objects_conf", f32s(&[], &[0])),
        ("attrs_id", i64s(&[])),
        ("attrs_conf", f32s(&[], &[0])),
        ("im_info", f32s(&input.im_info, &[3])),
        ("rois", f32s(&[], &[0, 5])),
    ]
}

/// Writes `det` to `path` (a temporary file in the same folder, renamed into place, so a
/// reader never sees half a record).
pub fn write_record(path: &Path, det: &Detection, info: &RecordInfo) -> Result<(), RecordError> {
    let fields = [
        ("result", RESULT_DETECTIONS.to_string()),
        ("num_rois", det.rois.len().to_string()),
        ("num_boxes", det.selection.keep.len().to_string()),
        ("selection", det.selection.branch.as_str().to_string()),
    ];
    write_tensors(path, record_tensors(det), &det.input, &fields, info)
}

/// Writes the record of an image whose proposal layer returned nothing (Caffe dies on such an
/// image, §3): a complete record with `rois` 0×5 and 0-row final tensors, `result =
/// no_proposals` and `reason` in the metadata, so that a resumed run counts the image as done
/// and `butd verify` passes it against the golden crash record.
pub fn write_no_proposals_record(
    path: &Path,
    input: &InputShape,
    reason: &str,
    info: &RecordInfo,
) -> Result<(), RecordError> {
    let fields = [
        ("result", RESULT_NO_PROPOSALS.to_string()),
        ("reason", reason.to_string()),
        ("num_rois", "0".to_string()),
        ("num_boxes", "0".to_string()),
        ("selection", "none".to_string()),
    ];
    write_tensors(path, no_proposal_tensors(input), input, &fields, info)
}

/// The common metadata, then the serialised file written atomically.
fn write_tensors(
    path: &Path,
    tensors: Vec<(&'static str, Bytes)>,
    input: &InputShape,
    fields: &[(&str, String)],
    info: &RecordInfo,
) -> Result<(), RecordError> {
    let io_err = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    let mut meta: HashMap<String, String> = [
        ("format", RECORD_FORMAT.to_string()),
        ("tensors", names.join(",")),
        ("image_name", info.image_name.clone()),
        ("orig_h", input.orig_h.to_string()),
        ("orig_w", input.orig_w.to_string()),
        ("im_scale", python_float_str(input.im_scale)),
        ("net_h", input.net_h.to_string()),
        ("net_w", input.net_w.to_string()),
        ("device", info.device.clone()),
    ]
    .into_iter()
    .chain(fields.iter().map(|(k, v)| (*k, v.clone())))
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(sha) = &info.weights_sha256 {
        meta.insert("weights_sha256".into(), sha.clone());
    }
    for (k, v) in &info.extra {
        meta.insert(k.clone(), v.clone());
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
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io_err)?;
    tmp.write_all(&bytes).map_err(io_err)?;
    // The temporary file is private (0600); a record is an ordinary output file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err)?;
    }
    // On disk before the rename, so that after a power cut the name never points at a file
    // whose data was not written yet.
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// What a record file on disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    Absent,
    /// A whole `butd-record-v1` file; `result` as its metadata says.
    Complete {
        result: String,
    },
    /// Something else: why.
    Damaged(String),
}

/// Checks `path` without reading its tensors: the safetensors header parses, says
/// `format = butd-record-v1`, and the file is exactly as long as the header's offsets say.
pub fn record_state(path: &Path) -> RecordState {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return RecordState::Absent,
        Err(e) => return RecordState::Damaged(format!("cannot open: {e}")),
    };
    let damaged = |m: String| RecordState::Damaged(m);
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return damaged(format!("cannot stat: {e}")),
    };
    let mut n = [0u8; 8];
    if file.read_exact(&mut n).is_err() {
        return damaged(format!("{len} bytes, shorter than a safetensors header"));
    }
    let n = u64::from_le_bytes(n);
    if n > len - 8 {
        return damaged(format!("header of {n} bytes in a file of {len}"));
    }
    let mut header = vec![0u8; n as usize];
    if let Err(e) = file.read_exact(&mut header) {
        return damaged(format!("cannot read the header: {e}"));
    }
    let header: serde_json::Value = match serde_json::from_slice(&header) {
        Ok(v) => v,
        Err(e) => return damaged(format!("header is not JSON: {e}")),
    };
    let Some(entries) = header.as_object() else {
        return damaged("header is not a JSON object".into());
    };
    let meta = entries.get("__metadata__");
    let meta_str = |key: &str| meta.and_then(|m| m.get(key)).and_then(|v| v.as_str());
    if meta_str("format") != Some(RECORD_FORMAT) {
        return damaged(format!("metadata format is not {RECORD_FORMAT}"));
    }
    let data_end = entries
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if 8 + n + data_end != len {
        return damaged(format!(
            "{len} bytes, but its header describes {}",
            8 + n + data_end
        ));
    }
    RecordState::Complete {
        result: meta_str("result").unwrap_or(RESULT_DETECTIONS).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> InputShape {
        InputShape {
            orig_h: 20,
            orig_w: 30,
            net_h: 600,
            net_w: 900,
            im_scale: 30.0,
            im_info: [600.0, 900.0, 30.0],
        }
    }

    #[test]
    fn no_proposals_record_is_complete_with_zero_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("micro.safetensors");
        let info = RecordInfo {
            image_name: "micro.png".into(),
            device: "cpu".into(),
            ..RecordInfo::default()
        };
        write_no_proposals_record(&path, &shape(), "no proposals: test", &info).unwrap();
        assert_eq!(
            record_state(&path),
            RecordState::Complete {
                result: RESULT_NO_PROPOSALS.into()
            }
        );
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("rois").unwrap().shape(), [0, 5]);
        assert_eq!(st.tensor("features").unwrap().shape(), [0, 2048]);
        assert_eq!(st.tensor("keep").unwrap().shape(), [0]);
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap();
        assert_eq!(meta["reason"], "no proposals: test");
        assert_eq!(meta["orig_w"], "30");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["micro.safetensors"], "no temporary file is left");
    }

    #[test]
    fn damaged_records_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.safetensors");
        assert_eq!(record_state(&path), RecordState::Absent);
        write_no_proposals_record(&path, &shape(), "x", &RecordInfo::default()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, 20, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                matches!(record_state(&path), RecordState::Damaged(_)),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(matches!(record_state(&path), RecordState::Damaged(_)));
        assert!(is_temp_record_name(".butd-record-a1B2c3.tmp"));
        assert!(!is_temp_record_name("r.safetensors"));
    }
}
