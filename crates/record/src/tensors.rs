//! The record's tensor names (the golden files' names, `golden/README.md`, "Tensors") and how
//! each one's rows relate to regions.

use serde::{Deserialize, Serialize};

pub const IMAGE_BGR: &str = "image_bgr";
pub const IM_INFO: &str = "im_info";
pub const DATA: &str = "data";
pub const RES4B22: &str = "res4b22";
pub const RPN_CLS_PROB_RESHAPE: &str = "rpn_cls_prob_reshape";
pub const RPN_BBOX_PRED: &str = "rpn_bbox_pred";
pub const ROIS: &str = "rois";
pub const POOL5_FLAT: &str = "pool5_flat";
pub const CLS_PROB: &str = "cls_prob";
pub const PREDICTED_CLS: &str = "predicted_cls";
pub const ATTR_PROB: &str = "attr_prob";
pub const MAX_CONF: &str = "max_conf";
pub const BBOX_PRED_KEEP: &str = "bbox_pred_keep";
pub const KEEP: &str = "keep";
pub const BOXES: &str = "boxes";
pub const FEATURES: &str = "features";
pub const OBJECTS_ID: &str = "objects_id";
pub const OBJECTS_CONF: &str = "objects_conf";
pub const ATTRS_ID: &str = "attrs_id";
pub const ATTRS_CONF: &str = "attrs_conf";
/// UNITER's per-region `conf` (generate_tsv's `max_conf[keep]`).
pub const CONF: &str = "conf";
/// UNITER's per-region `soft_labels` (the kept `cls_prob` rows).
pub const SOFT_LABELS: &str = "soft_labels";

/// What `butd extract` always writes: the final regions, `max_conf`, `im_info` and `rois`
/// (cheap, and what parity checks need first).
pub const ALWAYS_WRITTEN: [&str; 10] = [
    BOXES,
    FEATURES,
    KEEP,
    MAX_CONF,
    OBJECTS_ID,
    OBJECTS_CONF,
    ATTRS_ID,
    ATTRS_CONF,
    IM_INFO,
    ROIS,
];

/// What `butd extract --activations` adds: the intermediate blobs, under Caffe's blob names.
pub const ACTIVATIONS: [&str; 9] = [
    IMAGE_BGR,
    DATA,
    RES4B22,
    RPN_CLS_PROB_RESHAPE,
    RPN_BBOX_PRED,
    POOL5_FLAT,
    CLS_PROB,
    PREDICTED_CLS,
    ATTR_PROB,
];

/// Tensors whose row i belongs to `rois[i]`.
pub const ROIS_TENSORS: [&str; 6] = [
    ROIS,
    POOL5_FLAT,
    CLS_PROB,
    ATTR_PROB,
    PREDICTED_CLS,
    MAX_CONF,
];

/// Tensors whose row j belongs to final region j. `conf` (generate_tsv's `max_conf` of the
/// region) and `soft_labels` (its `cls_prob` row) are what UNITER's img_db stores per region.
pub const FINAL_TENSORS: [&str; 10] = [
    KEEP,
    BOXES,
    FEATURES,
    OBJECTS_ID,
    OBJECTS_CONF,
    ATTRS_ID,
    ATTRS_CONF,
    BBOX_PRED_KEEP,
    CONF,
    SOFT_LABELS,
];

/// Every tensor name, in pipeline order (the order reports list layers in).
pub const PIPELINE_ORDER: [&str; 22] = [
    IMAGE_BGR,
    IM_INFO,
    DATA,
    RES4B22,
    RPN_CLS_PROB_RESHAPE,
    RPN_BBOX_PRED,
    ROIS,
    POOL5_FLAT,
    CLS_PROB,
    PREDICTED_CLS,
    ATTR_PROB,
    MAX_CONF,
    BBOX_PRED_KEEP,
    KEEP,
    BOXES,
    FEATURES,
    OBJECTS_ID,
    OBJECTS_CONF,
    ATTRS_ID,
    ATTRS_CONF,
    CONF,
    SOFT_LABELS,
];

/// How a tensor's rows relate to regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Compared element by element (`data`, `res4b22`, `rpn_*`, `im_info`, `image_bgr`, …).
    Dense,
    /// Row i belongs to `rois[i]` ([`ROIS_TENSORS`]).
    Rois,
    /// Row j belongs to final region j (`keep[j]`, `boxes[j]`; [`FINAL_TENSORS`]).
    Final,
}

/// The role of the tensor `name`; names the contract does not list are dense.
pub fn role_of(name: &str) -> Role {
    if ROIS_TENSORS.contains(&name) {
        Role::Rois
    } else if FINAL_TENSORS.contains(&name) {
        Role::Final
    } else {
        Role::Dense
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_tensor_has_a_place_in_the_pipeline_order() {
        for name in ALWAYS_WRITTEN.iter().chain(&ACTIVATIONS) {
            assert!(PIPELINE_ORDER.contains(name), "{name}");
        }
        assert_eq!(role_of("rois"), Role::Rois);
        assert_eq!(role_of("soft_labels"), Role::Final);
        assert_eq!(role_of("res4b22"), Role::Dense);
    }
}
