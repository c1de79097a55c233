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
