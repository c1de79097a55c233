//! Recovering the RPN score of a roi from the stored `rpn_*` blobs, for tie attribution.
//!
//! The `rois` blob carries no scores. Every roi is one decoded, clipped anchor, so decoding all
//! anchors again (docs/semantics.md §2.4, §3 steps 1–3, with `butd-host`'s proposal layer code
//! and defaults) and looking the roi up among them gives its anchor index, and with it its score
//! in either implementation's `rpn_cls_prob_reshape`.
use butd_host::anchors::NUM_ANCHORS;
use butd_host::proposals::{decode_anchors, ProposalConfig};

use crate::boxes::Box4;
use butd_formats::tensors::Record;

/// Largest coordinate difference (network pixels) at which a roi is taken to be an anchor's
/// decoded box.
pub const ANCHOR_MATCH_TOL_PX: f64 = 1e-2;

/// Every anchor of one image, decoded, with its foreground score.
#[derive(Clone, Debug)]
pub struct RpnDecode {
    /// Flat anchor index i = (h·W + w)·12 + a → clipped box in network pixels.
    pub boxes: Vec<Box4>,
    /// Foreground probability, channel 12 + a of `rpn_cls_prob_reshape`.
    pub scores: Vec<f64>,
    /// `16 · im_scale`: the smallest side (+1 convention) a proposal may have.
    pub min_size: f64,
    /// The `PRE_NMS_TOP_N`-th largest score among boxes that pass the size filter, when more
    /// than that many pass (the top-6000 cut, §3 step 6).
    pub pre_nms_cut: Option<f64>,
}

impl RpnDecode {
    /// Decodes the record's `rpn_cls_prob_reshape`, `rpn_bbox_pred` and `im_info`; `None`
    /// when one is missing or their shapes do not agree.
    pub fn from_record(rec: &Record) -> Option<Self> {
        let prob = rec.get("rpn_cls_prob_reshape")?;
        let deltas = rec.get("rpn_bbox_pred")?;
        let info = rec.get("im_info")?;
        let (&[1, c, fh, fw], &[1, dc, dh, dw]) = (&prob.shape[..], &deltas.shape[..]) else {
            return None;
        };
        if c != 2 * NUM_ANCHORS || dc != 4 * NUM_ANCHORS || (fh, fw) != (dh, dw) {
            return None;
        }
        let [net_h, net_w, scale] = info.values[..] else {
            return None;
        };
        let cfg = ProposalConfig::default();
        let min_size = f64::from(cfg.min_size_threshold(scale as f32));
        let plane = fh * fw;
        let d: Vec<f32> = deltas.values.iter().map(|&v| v as f32).collect();
        let im_info = [net_h as f32, net_w as f32, scale as f32];
        let boxes: Vec<Box4> = decode_anchors(&d, fh, fw, im_info, cfg.feat_stride)
            .into_iter()
            .map(|b| b.map(f64::from))
            .collect();
        // Flat index i = cell·A + a, as `decode_anchors` lists the boxes.
        let scores: Vec<f64> = (0..boxes.len())
            .map(|i| prob.values[(NUM_ANCHORS + i % NUM_ANCHORS) * plane + i / NUM_ANCHORS])
            .collect();
        let mut passing: Vec<f64> = boxes
            .iter()
            .zip(&scores)
            .filter(|(b, _)| passes_min_size(b, min_size))
            .map(|(_, &s)| s)
            .collect();
        let top_n = cfg.pre_nms_top_n;
        let pre_nms_cut = (top_n > 0 && passing.len() > top_n).then(|| {
            let (_, kth, _) = passing.select_nth_unstable_by(top_n - 1, |a, b| b.total_cmp(a));
            *kth
        });
        Some(RpnDecode {
            boxes,
            scores,
            min_size,
            pre_nms_cut,
        })
    }

    /// The anchor whose decoded box is `roi` (within [`ANCHOR_MATCH_TOL_PX`]); among several,
    /// the best-scoring one, since NMS keeps that one of identical boxes.
    pub fn anchor_of(&self, roi: &Box4) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, b) in self.boxes.iter().enumerate() {
            let close = b
                .iter()
                .zip(roi)
                .all(|(p, q)| (p - q).abs() <= ANCHOR_MATCH_TOL_PX);
            if close && !best.is_some_and(|k| self.scores[i] <= self.scores[k]) {
                best = Some(i);
            }
        }
        best
    }
}

/// The proposal layer's size filter after clipping (§3 step 4), on a box read back as f64: the
/// f32 rule of `butd_host::proposals::passes_min_size`.
pub fn passes_min_size(b: &Box4, min_size: f64) -> bool {
    butd_host::proposals::passes_min_size(&b.map(|v| v as f32), min_size as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_size_uses_plus_one_and_greater_or_equal() {
        assert!(passes_min_size(&[0.0, 0.0, 15.0, 15.0], 16.0));
        assert!(!passes_min_size(&[0.0, 0.0, 14.9, 15.0], 16.0));
    }
}
