//! The RPN proposal layer (`rpn.proposal_layer.ProposalLayer`, phase TEST), bit for bit (§2.4, §3).
//!
//! Anchors are shifted over the feature map, decoded with the RPN deltas in f32 (NumPy's own
//! SIMD `exp`), clipped to the network input, filtered by the scaled minimum size, sorted with
//! NumPy's introsort, cut to the pre-NMS top N, reduced by `cpu_nms` at 0.7 and cut to the
//! post-NMS top N. Every step keeps NumPy 1.x's float32 arithmetic and tie order, so the output
//! equals Caffe's `rois` exactly, including the order of tied scores.

use crate::anchors::{caffe_anchors, NUM_ANCHORS};
use crate::nms::{cpu_nms, BoxF32};
use crate::numpy_exp::numpy_exp_f32;
use crate::numpy_sort::{argsort_numpy_desc, tie_counts};

/// The proposal layer's TEST settings (§3, §8.1).
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalConfig {
    /// `RPN_PRE_NMS_TOP_N`; 0 keeps every proposal (as the Python layer's `if … > 0`).
    pub pre_nms_top_n: usize,
    /// `RPN_POST_NMS_TOP_N`; 0 keeps every NMS survivor.
    pub post_nms_top_n: usize,
    /// `RPN_NMS_THRESH`, compared in f64 against the f32 overlap.
    pub nms_thresh: f64,
    /// `RPN_MIN_SIZE` in original-image pixels; multiplied by f32(s) in f32.
    pub min_size: f32,
    /// Stride of the feature map in input pixels.
    pub feat_stride: usize,
}

impl ProposalConfig {
    /// `_filter_boxes`' threshold in network-input pixels: `min_size · f32(s)`, in f32 (§3 step 4).
    pub fn min_size_threshold(&self, im_scale: f32) -> f32 {
        self.min_size * im_scale
    }
}

/// `cfg.TEST.RPN_PRE_NMS_TOP_N` of the BUTD test config (§8.1).
pub const RPN_PRE_NMS_TOP_N: usize = 6000;
/// `cfg.TEST.RPN_POST_NMS_TOP_N`.
pub const RPN_POST_NMS_TOP_N: usize = 300;
/// `cfg.TEST.RPN_NMS_THRESH`.
pub const RPN_NMS_THRESH: f64 = 0.7;
/// `cfg.TEST.RPN_MIN_SIZE` (original-image pixels).
pub const RPN_MIN_SIZE: f32 = 16.0;
/// The proposal layer's `feat_stride` (`param_str`).
pub const FEAT_STRIDE: usize = 16;

impl Default for ProposalConfig {
    fn default() -> Self {
        ProposalConfig {
            pre_nms_top_n: RPN_PRE_NMS_TOP_N,
            post_nms_top_n: RPN_POST_NMS_TOP_N,
            nms_thresh: RPN_NMS_THRESH,
            min_size: RPN_MIN_SIZE,
            feat_stride: FEAT_STRIDE,
        }
    }
}

/// Figures about one run, named after the golden `stats` keys where they have one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProposalStats {
    /// h·w·A.
    pub num_anchors: usize,
    /// The min-size threshold `min_size · f32(s)` in input pixels (`rpn_min_size`).
    pub min_size_threshold: f32,
    /// Proposals left by the min-size filter.
    pub num_after_min_size: usize,
    /// Proposals handed to the NMS (after the pre-NMS cut).
    pub num_pre_nms: usize,
    /// Of those, how many scores share their exact value with another (`rpn_top6000_tied`).
    pub pre_nms_tied: usize,
    /// Distinct values among those tied scores (`rpn_top6000_tie_values`).
    pub pre_nms_tie_values: usize,
    /// The last score inside the pre-NMS cut equals the first one outside it
    /// (`rpn_tie_at_6000_cut`): the introsort then decides which proposals exist at all.
    pub tie_at_pre_nms_cut: bool,
}

/// The proposal layer's output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposals {
    /// `[x1, y1, x2, y2]` in network-input pixels, in output order (Caffe's `rois[:, 1:5]`).
    pub rois: Vec<BoxF32>,
    pub stats: ProposalStats,
}

/// `bbox_transform_inv` for one box (§3 step 2): f32 operations in NumPy's order, no delta
/// clamp, NumPy's SIMD `exp`, no −1 on the far corner.
pub fn decode_box(anchor: &BoxF32, d: [f32; 4]) -> BoxF32 {
    let w = (anchor[2] - anchor[0]) + 1.0;
    let h = (anchor[3] - anchor[1]) + 1.0;
    let cx = anchor[0] + 0.5 * w;
    let cy = anchor[1] + 0.5 * h;
    let pcx = d[0] * w + cx;
    let pcy = d[1] * h + cy;
    let pw = numpy_exp_f32(d[2]) * w;
    let ph = numpy_exp_f32(d[3]) * h;
    [
        pcx - 0.5 * pw,
        pcy - 0.5 * ph,
        pcx + 0.5 * pw,
        pcy + 0.5 * ph,
    ]
}

/// `np.minimum` / `np.maximum` propagate NaN, unlike `f32::min` / `f32::max`.
fn np_minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

fn np_maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// `clip_boxes` to the network input (§3 step 3): x to `[0, W′−1]`, y to `[0, H′−1]`, in f32 from
/// `im_info`, minimum first. ±inf from an overflowing `exp` lands on the bounds.
pub fn clip_box(b: BoxF32, input_h: f32, input_w: f32) -> BoxF32 {
    let (xmax, ymax) = (input_w - 1.0, input_h - 1.0);
    [
        np_maximum(np_minimum(b[0], xmax), 0.0),
        np_maximum(np_minimum(b[1], ymax), 0.0),
        np_maximum(np_minimum(b[2], xmax), 0.0),
        np_maximum(np_minimum(b[3], ymax), 0.0),
    ]
}

/// `_filter_boxes` (§3 step 4): both sides, +1 convention, at least `threshold` (`>=`, although
/// the config comment says "greater than").
pub fn passes_min_size(b: &BoxF32, threshold: f32) -> bool {
    ((b[2] - b[0]) + 1.0) >= threshold && ((b[3] - b[1]) + 1.0) >= threshold
}

/// Steps 1–3 of the proposal layer for every anchor: the Caffe anchors (§2.4) shifted by
/// `feat_stride` over the `feat_h`×`feat_w` map, decoded with `deltas` ((48, h, w) as
/// `rpn_bbox_pred`) and clipped to `im_info`'s `[H′, W′]`. Flat order i = (y·w + x)·A + a, the
/// order in which the proposal layer's `scores.reshape((-1, 1))` lists the foreground scores.
///
/// # Panics
/// If `deltas` does not hold exactly 48·h·w values.
pub fn decode_anchors(
    deltas: &[f32],
    feat_h: usize,
    feat_w: usize,
    im_info: [f32; 3],
    feat_stride: usize,
) -> Vec<BoxF32> {
    let plane = feat_h * feat_w;
    assert_eq!(
        deltas.len(),
        4 * NUM_ANCHORS * plane,
        "decode_anchors: deltas must be (48, h, w)"
    );
    let [input_h, input_w, _] = im_info;
    let base_anchors = caffe_anchors();
    let stride = feat_stride as f64;
    let mut boxes = Vec::with_capacity(NUM_ANCHORS * plane);
    for y in 0..feat_h {
        for x in 0..feat_w {
            let cell = y * feat_w + x;
            let (sx, sy) = (x as f64 * stride, y as f64 * stride);
            for (a, base) in base_anchors.iter().enumerate() {
                let anchor = [
                    (base[0] + sx) as f32,
                    (base[1] + sy) as f32,
                    (base[2] + sx) as f32,
                    (base[3] + sy) as f32,
                ];
                let d = std::array::from_fn(|j| deltas[(4 * a + j) * plane + cell]);
                boxes.push(clip_box(decode_box(&anchor, d), input_h, input_w));
            }
        }
    }
    boxes
}

/// Caffe's `proposal` layer (§3).
///
/// `fg`: foreground probabilities laid out (A=12, h, w), i.e. channels 12..23 of
/// `rpn_cls_prob_reshape`; `deltas`: (4·A=48, h, w) as `rpn_bbox_pred` (anchor a at channels
/// 4a..4a+3 = dx, dy, dw, dh); `im_info` = `[H′, W′, f32(s)]`. Anchors in Caffe's order (§2.4).
///
/// # Panics
/// If `fg` or `deltas` does not hold exactly 12·h·w or 48·h·w values (a caller bug: the shapes
/// come from the network).
pub fn proposal_layer(
    fg: &[f32],
    deltas: &[f32],
    feat_h: usize,
    feat_w: usize,
    im_info: [f32; 3],
    cfg: &ProposalConfig,
) -> Proposals {
    let plane = feat_h * feat_w;
    assert_eq!(
        fg.len(),
        NUM_ANCHORS * plane,
        "proposal_layer: fg must be (12, h, w)"
    );
    assert_eq!(
        deltas.len(),
        4 * NUM_ANCHORS * plane,
        "proposal_layer: deltas must be (48, h, w)"
    );
    let min_size_threshold = cfg.min_size_threshold(im_info[2]);

    // Steps 1–4 in the flat order i = (y·w + x)·A + a, keeping the survivors in ascending i.
    let decoded = decode_anchors(deltas, feat_h, feat_w, im_info, cfg.feat_stride);
    let mut boxes: Vec<BoxF32> = Vec::new();
    let mut scores: Vec<f32> = Vec::new();
    for (i, clipped) in decoded.into_iter().enumerate() {
        if passes_min_size(&clipped, min_size_threshold) {
            boxes.push(clipped);
            let (cell, a) = (i / NUM_ANCHORS, i % NUM_ANCHORS);
            scores.push(fg[a * plane + cell]);
        }
    }
    let num_after_min_size = boxes.len();

    // Steps 5–6: reversed introsort, pre-NMS cut.
    let mut order = argsort_numpy_desc(&scores);
    let cut = top_n(cfg.pre_nms_top_n, order.len());
    let tie_at_pre_nms_cut = cut < order.len() && scores[order[cut - 1]] == scores[order[cut]];
    order.truncate(cut);
    let pre_boxes: Vec<BoxF32> = order.iter().map(|&k| boxes[k]).collect();
    let pre_scores: Vec<f32> = order.iter().map(|&k| scores[k]).collect();
    let ties = tie_counts(&pre_scores);

    // Steps 7–8: `cpu_nms` re-sorts `pre_scores` itself; only the first post-NMS-top-N survivors
    // are needed, so the loop stops there.
    let keep = cpu_nms(
        &pre_boxes,
        &pre_scores,
        cfg.nms_thresh,
        top_n(cfg.post_nms_top_n, pre_boxes.len()),
    );
    Proposals {
        rois: keep.iter().map(|&k| pre_boxes[k]).collect(),
        stats: ProposalStats {
            num_anchors: NUM_ANCHORS * plane,
            min_size_threshold,
            num_after_min_size,
            num_pre_nms: pre_boxes.len(),
            pre_nms_tied: ties.tied,
            pre_nms_tie_values: ties.tie_values,
            tie_at_pre_nms_cut,
        },
    }
}

/// `x[:n] if n > 0 else x` as a length.
fn top_n(n: usize, len: usize) -> usize {
    if n == 0 {
        len
    } else {
        n.min(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_deltas_decode_to_the_anchor_plus_one() {
        let anchor = [-38.0, -16.0, 53.0, 31.0];
        // w = 92 → centre −38 + 46 = 8, half width 46 → [−38, 54]: one pixel wider, as §3 says.
        assert_eq!(decode_box(&anchor, [0.0; 4]), [-38.0, -16.0, 54.0, 32.0]);
    }

    #[test]
    fn overflowing_exp_is_clipped_to_the_input() {
        let b = decode_box(&[0.0, 0.0, 15.0, 15.0], [0.0, 0.0, 100.0, 100.0]);
        assert_eq!(
            b,
            [
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::INFINITY,
                f32::INFINITY
            ]
        );
        assert_eq!(clip_box(b, 600.0, 900.0), [0.0, 0.0, 899.0, 599.0]);
    }

    #[test]
    fn min_size_is_inclusive() {
        assert!(passes_min_size(&[0.0, 0.0, 15.0, 15.0], 16.0));
        assert!(!passes_min_size(&[0.0, 0.0, 15.0, 14.5], 16.0));
    }

    #[test]
    fn top_n_zero_means_all() {
        assert_eq!(top_n(0, 7), 7);
        assert_eq!(top_n(6000, 7), 7);
        assert_eq!(top_n(3, 7), 3);
    }
}
