//! Recovering the RPN score of a roi from the stored `rpn_*` blobs, for tie attribution.
//!
//! The `rois` blob carries no scores. Every roi is one decoded, clipped anchor, so decoding all
//! anchors again (docs/semantics.md §2.4, §3 steps 1–3) and looking the roi up among them gives
//! its anchor index, and with it its score in either implementation's `rpn_cls_prob_reshape`.
//! The decode uses the platform `expf`, not NumPy's SIMD kernel (§3 step 2): ≤ 2 ulp apart,
//! i.e. < 1e-3 px at these sizes, far inside [`ANCHOR_MATCH_TOL_PX`].
use crate::boxes::Box4;
use crate::tensor::Record;

/// Largest coordinate difference (network pixels) at which a roi is taken to be an anchor's
/// decoded box.
pub const ANCHOR_MATCH_TOL_PX: f64 = 1e-2;
/// Anchors per feature-map cell (3 ratios × 4 scales), §2.4.
const NUM_ANCHORS: usize = 12;
/// `feat_stride` of the proposal layer, §2.4.
const FEAT_STRIDE: f32 = 16.0;
/// `RPN_MIN_SIZE`, §3 step 4.
const RPN_MIN_SIZE: f32 = 16.0;
/// `RPN_PRE_NMS_TOP_N`, §3 step 6.
pub const PRE_NMS_TOP_N: usize = 6000;

/// The 12 base anchors of `generate_anchors(base_size=16, ratios=[0.5, 1, 2],
/// scales=[4, 8, 16, 32])`, in the fork's order a = 4·ratio + scale (§2.4). NumPy's `round` is
/// half-to-even.
pub fn base_anchors() -> [[f32; 4]; NUM_ANCHORS] {
    let mut out = [[0f32; 4]; NUM_ANCHORS];
    let ctr = 7.5f64;
    for (ri, ratio) in [0.5f64, 1.0, 2.0].into_iter().enumerate() {
        let w_r = (256.0 / ratio).sqrt().round_ties_even();
        let h_r = (w_r * ratio).round_ties_even();
        for (si, scale) in [4.0f64, 8.0, 16.0, 32.0].into_iter().enumerate() {
            let (ws, hs) = (w_r * scale, h_r * scale);
            out[4 * ri + si] = [
                (ctr - 0.5 * (ws - 1.0)) as f32,
                (ctr - 0.5 * (hs - 1.0)) as f32,
                (ctr + 0.5 * (ws - 1.0)) as f32,
                (ctr + 0.5 * (hs - 1.0)) as f32,
            ];
        }
    }
    out
}

/// `bbox_transform_inv` followed by `clip_boxes` for one anchor, in f32 as the fork computes it
/// (§3 steps 2–3; no clamp of dw/dh). `w_max`, `h_max` are W′−1 and H′−1.
pub fn decode_clip(anchor: [f32; 4], d: [f32; 4], w_max: f32, h_max: f32) -> [f32; 4] {
    let w = (anchor[2] - anchor[0]) + 1.0;
    let h = (anchor[3] - anchor[1]) + 1.0;
    let cx = anchor[0] + 0.5 * w;
    let cy = anchor[1] + 0.5 * h;
    let pcx = d[0] * w + cx;
    let pcy = d[1] * h + cy;
    let pw = d[2].exp() * w;
    let ph = d[3].exp() * h;
    let clip = |v: f32, hi: f32| v.min(hi).max(0.0);
    [
        clip(pcx - 0.5 * pw, w_max),
        clip(pcy - 0.5 * ph, h_max),
        clip(pcx + 0.5 * pw, w_max),
        clip(pcy + 0.5 * ph, h_max),
    ]
}

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
        let (w_max, h_max) = (net_w as f32 - 1.0, net_h as f32 - 1.0);
        let min_size = f64::from(RPN_MIN_SIZE * scale as f32);
        let plane = fh * fw;
        let anchors = base_anchors();
        let mut boxes = Vec::with_capacity(plane * NUM_ANCHORS);
        let mut scores = Vec::with_capacity(plane * NUM_ANCHORS);
        for y in 0..fh {
            for x in 0..fw {
                let (sx, sy) = (x as f32 * FEAT_STRIDE, y as f32 * FEAT_STRIDE);
                let cell = y * fw + x;
                for (a, base) in anchors.iter().enumerate() {
                    let anchor = [base[0] + sx, base[1] + sy, base[2] + sx, base[3] + sy];
                    let d =
                        std::array::from_fn(|j| deltas.values[(4 * a + j) * plane + cell] as f32);
                    let b = decode_clip(anchor, d, w_max, h_max);
                    boxes.push(b.map(f64::from));
                    scores.push(prob.values[(NUM_ANCHORS + a) * plane + cell]);
                }
            }
        }
        let mut passing: Vec<f64> = boxes
            .iter()
            .zip(&scores)
            .filter(|(b, _)| passes_min_size(b, min_size))
            .map(|(_, &s)| s)
            .collect();
        let pre_nms_cut = (passing.len() > PRE_NMS_TOP_N).then(|| {
            let (_, kth, _) =
                passing.select_nth_unstable_by(PRE_NMS_TOP_N - 1, |a, b| b.total_cmp(a));
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

/// The proposal layer's size filter after clipping: both sides, +1 convention, `≥` (§3 step 4).
pub fn passes_min_size(b: &Box4, min_size: f64) -> bool {
    b[2] - b[0] + 1.0 >= min_size && b[3] - b[1] + 1.0 >= min_size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_anchors_match_the_table_of_section_2_4() {
        let a = base_anchors();
        assert_eq!(a[0], [-38.0, -16.0, 53.0, 31.0]);
        assert_eq!(a[3], [-360.0, -184.0, 375.0, 199.0]);
        assert_eq!(a[5], [-56.0, -56.0, 71.0, 71.0]);
        assert_eq!(a[8], [-14.0, -36.0, 29.0, 51.0]);
        assert_eq!(a[11], [-168.0, -344.0, 183.0, 359.0]);
    }

    #[test]
    fn zero_deltas_give_the_anchor_one_pixel_wider_clipped() {
        // §3 step 2 has no "− 1" on X2/Y2: the decoded box ends one pixel past the anchor.
        let b = decode_clip([-38.0, -16.0, 53.0, 31.0], [0.0; 4], 99.0, 99.0);
        assert_eq!(b, [0.0, 0.0, 54.0, 32.0]);
    }

    #[test]
    fn min_size_uses_plus_one_and_greater_or_equal() {
        assert!(passes_min_size(&[0.0, 0.0, 15.0, 15.0], 16.0));
        assert!(!passes_min_size(&[0.0, 0.0, 14.9, 15.0], 16.0));
    }
}
