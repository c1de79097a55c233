//! The record's metadata: keys and the values the contract fixes. All values are strings
//! (safetensors metadata), numbers in their decimal form, `im_scale` as Python's `repr`.

/// The `format` value of every record.
pub const RECORD_FORMAT: &str = "butd-record-v1";

/// The `result` of a record with detections.
pub const RESULT_DETECTIONS: &str = "detections";
/// The `result` of a record whose image had no proposals (Caffe's crash case, §3).
pub const RESULT_NO_PROPOSALS: &str = "no_proposals";

/// [`RECORD_FORMAT`].
pub const FORMAT: &str = "format";
/// The tensor names, sorted, comma-separated.
pub const TENSORS: &str = "tensors";
/// [`RESULT_DETECTIONS`] or [`RESULT_NO_PROPOSALS`] (absent in older records: detections).
pub const RESULT: &str = "result";
/// Why a record has no detections (with [`RESULT_NO_PROPOSALS`]).
pub const REASON: &str = "reason";
/// The image's file name, as the golden files' `image_name`.
pub const IMAGE_NAME: &str = "image_name";
pub const ORIG_H: &str = "orig_h";
pub const ORIG_W: &str = "orig_w";
/// The resize factor, Python's `repr` of the f64.
pub const IM_SCALE: &str = "im_scale";
pub const NET_H: &str = "net_h";
pub const NET_W: &str = "net_w";
pub const NUM_ROIS: &str = "num_rois";
pub const NUM_BOXES: &str = "num_boxes";
/// generate_tsv's selection branch (`threshold`, `argsort_min_boxes`, `argsort_max_boxes`;
/// `none` without proposals).
pub const SELECTION: &str = "selection";
/// `cpu`, `cuda:0`, …
pub const DEVICE: &str = "device";
pub const WEIGHTS_SHA256: &str = "weights_sha256";
/// In golden files of images on which Caffe crashed: what Caffe did.
pub const CAFFE_RESULT: &str = "caffe_result";

// Provenance: what made the record. `butd extract` writes these into every record; a run into a
// folder whose records differ from it in one of [`RUN_SETTINGS`] refuses to start
// (docs/extract.md, "Provenance").

/// The butd version that wrote the record.
pub const BUTD_VERSION: &str = "butd_version";
/// The mapping `butd convert` used for the weights and its digest (their `butd_mapping` and
/// `butd_mapping_digest` metadata: `builtin:caffe-to-hf-frcnn (fnv1a64:…)`), `unknown` where
/// absent.
pub const WEIGHTS_MAPPING: &str = "weights_mapping";
/// The butd version that converted the weights (their `butd_version` metadata), or `unknown`.
pub const WEIGHTS_CONVERTED_BY: &str = "weights_converted_by";
/// `adaptive` (generate_tsv's MIN_BOXES..MAX_BOXES by a confidence threshold) or `fixed`
/// (`--fixed N`: MIN_BOXES = MAX_BOXES = N).
pub const SELECT_MODE: &str = "select_mode";
/// generate_tsv's `conf_thresh`.
pub const CONF_THRESH: &str = "conf_thresh";
/// generate_tsv's MIN_BOXES.
pub const MIN_BOXES: &str = "min_boxes";
/// generate_tsv's MAX_BOXES.
pub const MAX_BOXES: &str = "max_boxes";
/// `fp32` (`--precision exact`), `bf16`, `tf32`: the arithmetic the network ran in
/// (`butd_model::precision::Precision::record_value`).
pub const PRECISION: &str = "precision";
/// SHA-256 of the image file's bytes (as the golden files' `image_sha256`).
pub const IMAGE_SHA256: &str = "image_sha256";

/// The settings that decide a record's values: records that differ in one of them do not
/// belong in one folder (nor in one exported file).
pub const RUN_SETTINGS: [&str; 6] = [
    WEIGHTS_SHA256,
    SELECT_MODE,
    CONF_THRESH,
    MIN_BOXES,
    MAX_BOXES,
    PRECISION,
];

/// The selection a record's metadata states, in words (`fixed 36`, `adaptive 10–100 boxes,
/// conf_thresh 0.2`), or `None` for a record written before provenance.
pub fn selection_of(meta: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let get = |k: &str| meta.get(k).map(String::as_str);
    match get(SELECT_MODE)? {
        "fixed" => Some(format!("fixed {}", get(MAX_BOXES)?)),
        mode => Some(format!(
            "{mode} {}–{} boxes, conf_thresh {}",
            get(MIN_BOXES)?,
            get(MAX_BOXES)?,
            get(CONF_THRESH)?
        )),
    }
}
