//! One safetensors record per image (`butd-record-v1`): the fields of the golden files under
//! the same names, dtypes and meanings (`golden/README.md`), written atomically.
//!
//! Always written: `boxes` f32 K×4, `features` f32 K×2048, `keep` i64 K, `max_conf` f64 R,
//! `objects_id` i64, `objects_conf` f32, `attrs_id` i64, `attrs_conf` f32 (K each), `im_info`
//! f32 3, and `rois` f32 R×5 (`[0, x1, y1, x2, y2]`, cheap and what parity checks need first).
//! With activations: `image_bgr`, `data`, `res4b22`, `rpn_cls_prob_reshape`, `rpn_bbox_pred`,
//! `pool5_flat`, `cls_prob`, `predicted_cls` (f32), `attr_prob` (a record without proposals
//! keeps the first five, which were computed). With soft labels: `soft_labels` f16 K×1601, the
//! kept rows of `cls_prob` (UNITER's `soft_labels`, ≈ 115 KB for 36 boxes).
//!
//! Metadata (strings): `format`, `tensors`, `result` (`detections`, or `no_proposals` with a
//! `reason`: [`write_no_proposals_record`]), `image_name`, `orig_h`, `orig_w`, `im_scale`
//! (Python's `repr` of the f64, [`butd_formats::python_float_str`]), `net_h`, `net_w`, `num_rois`,
//! `num_boxes`, `selection`, `device`, `weights_sha256` when known, and the caller's
//! [`RecordInfo::extra`] entries.
//!
//! The contract itself (tensor names, metadata keys, temporary names, atomic writing,
//! [`record_state`]) is `butd-record`'s; this module only turns a [`Detection`]'s tch tensors
//! into those bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use butd_formats::python_float_str;
use butd_record::file::{write_atomically, WriteError};
use butd_record::meta;
use butd_record::tensors as names;
use safetensors::tensor::{Dtype, View};
use tch::{Kind, Tensor};

use crate::detector::{Detection, EarlyActivations, InputShape};
use crate::heads::{NUM_CLASSES, POOL5_CHANNELS};

// The contract, under the paths callers of `butd_model::record` have always used.
pub use butd_record::{
    is_temp_record_name, record_state, RecordState, RECORD_FORMAT, RESULT_DETECTIONS,
    RESULT_NO_PROPOSALS,
};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Io(#[from] WriteError),
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

/// float16, rounded to nearest: UNITER stores its soft labels so.
fn f16s(values: &[f32], shape: &[usize]) -> Bytes {
    Bytes {
        dtype: Dtype::F16,
        shape: shape.to_vec(),
        data: values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
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
        (names::BOXES, f32s(&flat_boxes, &[k, 4])),
        (
            names::FEATURES,
            f32s(&det.features, &[k, POOL5_CHANNELS as usize]),
        ),
        (names::KEEP, i64s(&keep)),
        (names::MAX_CONF, f64s(&det.selection.max_conf)),
        (names::OBJECTS_ID, i64s(&det.objects_id)),
        (names::OBJECTS_CONF, f32s(&det.objects_conf, &[k])),
        (names::ATTRS_ID, i64s(&det.attrs_id)),
        (names::ATTRS_CONF, f32s(&det.attrs_conf, &[k])),
        (names::IM_INFO, f32s(&det.input.im_info, &[3])),
        (names::ROIS, f32s(&rois, &[det.rois.len(), 5])),
    ];
    if let Some(soft) = &det.soft_labels {
        tensors.push((names::SOFT_LABELS, f16s(soft, &[k, NUM_CLASSES as usize])));
    }
    if let Some(a) = &det.activations {
        tensors.extend(early_tensors(&a.early));
        for (name, t) in [
            (names::POOL5_FLAT, &a.pool5_flat),
            (names::CLS_PROB, &a.cls_prob),
            (names::PREDICTED_CLS, &a.predicted_cls),
            (names::ATTR_PROB, &a.attr_prob),
        ] {
            tensors.push((name, tensor_bytes(t)));
        }
    }
    tensors
}

/// The blobs before the proposal layer, by golden name.
fn early_tensors(e: &EarlyActivations) -> Vec<(&'static str, Bytes)> {
    [
        (names::IMAGE_BGR, &e.image_bgr),
        (names::DATA, &e.data),
        (names::RES4B22, &e.res4b22),
        (names::RPN_CLS_PROB_RESHAPE, &e.rpn_cls_prob_reshape),
        (names::RPN_BBOX_PRED, &e.rpn_bbox_pred),
    ]
    .into_iter()
    .map(|(name, t)| (name, tensor_bytes(t)))
    .collect()
}

/// The tensors of a record without proposals: every final tensor with 0 rows, `rois` 0×5, and
/// the blobs that were computed when `early` is given (as the golden crash record has them).
fn no_proposal_tensors(
    input: &InputShape,
    early: Option<&EarlyActivations>,
) -> Vec<(&'static str, Bytes)> {
    let mut tensors = vec![
        (names::BOXES, f32s(&[], &[0, 4])),
        (names::FEATURES, f32s(&[], &[0, POOL5_CHANNELS as usize])),
        (names::KEEP, i64s(&[])),
        (names::MAX_CONF, f64s(&[])),
        (names::OBJECTS_ID, i64s(&[])),
        (names::OBJECTS_CONF, f32s(&[], &[0])),
        (names::ATTRS_ID, i64s(&[])),
        (names::ATTRS_CONF, f32s(&[], &[0])),
        (names::IM_INFO, f32s(&input.im_info, &[3])),
        (names::ROIS, f32s(&[], &[0, 5])),
    ];
    tensors.extend(early.map(early_tensors).unwrap_or_default());
    tensors
}

/// Writes `det` to `path` (a temporary file in the same folder, renamed into place, so a
/// reader never sees half a record).
pub fn write_record(path: &Path, det: &Detection, info: &RecordInfo) -> Result<(), RecordError> {
    let fields = [
        (meta::RESULT, RESULT_DETECTIONS.to_string()),
        (meta::NUM_ROIS, det.rois.len().to_string()),
        (meta::NUM_BOXES, det.selection.keep.len().to_string()),
        (meta::SELECTION, det.selection.branch.as_str().to_string()),
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
    early: Option<&EarlyActivations>,
    reason: &str,
    info: &RecordInfo,
) -> Result<(), RecordError> {
    let fields = [
        (meta::RESULT, RESULT_NO_PROPOSALS.to_string()),
        (meta::REASON, reason.to_string()),
        (meta::NUM_ROIS, "0".to_string()),
        (meta::NUM_BOXES, "0".to_string()),
        (meta::SELECTION, "none".to_string()),
    ];
    write_tensors(
        path,
        no_proposal_tensors(input, early),
        input,
        &fields,
        info,
    )
}

/// The common metadata, then the serialised file written atomically.
fn write_tensors(
    path: &Path,
    tensors: Vec<(&'static str, Bytes)>,
    input: &InputShape,
    fields: &[(&str, String)],
    info: &RecordInfo,
) -> Result<(), RecordError> {
    let mut tensor_names: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
    tensor_names.sort_unstable();
    let mut metadata: HashMap<String, String> = [
        (meta::FORMAT, RECORD_FORMAT.to_string()),
        (meta::TENSORS, tensor_names.join(",")),
        (meta::IMAGE_NAME, info.image_name.clone()),
        (meta::ORIG_H, input.orig_h.to_string()),
        (meta::ORIG_W, input.orig_w.to_string()),
        (meta::IM_SCALE, python_float_str(input.im_scale)),
        (meta::NET_H, input.net_h.to_string()),
        (meta::NET_W, input.net_w.to_string()),
        (meta::DEVICE, info.device.clone()),
    ]
    .into_iter()
    .chain(fields.iter().map(|(k, v)| (*k, v.clone())))
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(sha) = &info.weights_sha256 {
        metadata.insert(meta::WEIGHTS_SHA256.into(), sha.clone());
    }
    for (k, v) in &info.extra {
        metadata.insert(k.clone(), v.clone());
    }
    let views: Vec<(&str, &Bytes)> = tensors.iter().map(|(n, b)| (*n, b)).collect();
    let bytes =
        safetensors::serialize(views, &Some(metadata)).map_err(|e| RecordError::Serialize {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    write_atomically(path, &bytes)?;
    Ok(())
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
        write_no_proposals_record(&path, &shape(), None, "no proposals: test", &info).unwrap();
        assert!(matches!(
            record_state(&path),
            RecordState::Complete { result, .. } if result == RESULT_NO_PROPOSALS
        ));
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
        write_no_proposals_record(&path, &shape(), None, "x", &RecordInfo::default()).unwrap();
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
