//! Attribution of divergences to near-ties (docs/verify.md, "Tie attribution").
//!
//! Where the candidate's rois or final records differ from the golden ones, each difference is
//! either traced to a decision whose inputs were within `rel_eps` of each other in the golden
//! run (a *root*: the RPN NMS between two overlapping proposals, the min-size filter, the
//! top-6000 cut, the per-class NMS between identical rows, the 0.2 threshold, the 10/100 cut,
//! an argmax), or to a consequence of such a root (a *cascade*: a box that the differing box
//! suppresses or that the top-300 cut pushes out). Anything else stays unexplained: a failure.
//! All evidence (scores, `max_conf`, probabilities) is read from the golden record, because the
//! question is whether the golden run itself was balanced on a knife's edge.
//!
//! One file per stage: `rois` (the proposal layer's decisions), `final_records`
//! (generate_tsv's selection and per-class NMS, and cascades from the rois), `labels` (argmax
//! on matched pairs); the evidence they read and the verdict they fill are here.
use std::cell::OnceCell;

use crate::boxes::{iou_plus1, Box4};
use crate::rpn::RpnDecode;
use butd_formats::tensors::{Record, Tensor};

mod final_records;
mod labels;
mod rois;

pub use final_records::{explain_final, explain_nms_swaps, golden_final_rois};
pub use labels::{explain_half_label, explain_label};
pub use rois::{explain_rois, rois_divergence, split_distinct_proposals};

// The thresholds of the decisions attributed here: the proposal layer's and generate_tsv's own
// defaults (`butd-host`), so that a change there cannot leave a stale copy here.
use butd_host::proposals::{RPN_NMS_THRESH, RPN_POST_NMS_TOP_N as POST_NMS_TOP_N};
use butd_host::select::{CLASS_NMS_THRESH, CONF_THRESH, MAX_BOXES, MIN_BOXES};

/// IoU at which a final box is taken to be a given roi (scaled to image pixels).
const SAME_BOX_IOU: f64 = 0.99;

/// `|a − b| ≤ eps · max(|a|, |b|)`: the two values could have come out in either order.
pub fn near_tie(a: f64, b: f64, eps: f64) -> bool {
    (a - b).abs() <= eps * a.abs().max(b.abs())
}

/// Which branch of generate_tsv's selection (§6.3) produced the golden `keep`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Selection {
    /// `max_conf ≥ 0.2`, ascending roi index.
    Threshold,
    /// The top MIN_BOXES / MAX_BOXES by descending `max_conf`.
    Argsort,
}

/// The golden (and, for locating candidate rois, candidate) data the attribution reads.
pub struct Evidence<'a> {
    golden: &'a Record,
    candidate: &'a Record,
    eps: f64,
    golden_rpn: OnceCell<Option<RpnDecode>>,
    candidate_rpn: OnceCell<Option<RpnDecode>>,
    golden_roi_scores: OnceCell<Vec<Option<f64>>>,
}

impl<'a> Evidence<'a> {
    pub fn new(golden: &'a Record, candidate: &'a Record, eps: f64) -> Self {
        Evidence {
            golden,
            candidate,
            eps,
            golden_rpn: OnceCell::new(),
            candidate_rpn: OnceCell::new(),
            golden_roi_scores: OnceCell::new(),
        }
    }

    pub fn golden(&self) -> &'a Record {
        self.golden
    }

    pub fn candidate(&self) -> &'a Record {
        self.candidate
    }

    fn tie(&self, a: f64, b: f64) -> bool {
        near_tie(a, b, self.eps)
    }

    fn golden_rpn(&self) -> Option<&RpnDecode> {
        self.golden_rpn
            .get_or_init(|| RpnDecode::from_record(self.golden))
            .as_ref()
    }

    fn candidate_rpn(&self) -> Option<&RpnDecode> {
        self.candidate_rpn
            .get_or_init(|| RpnDecode::from_record(self.candidate))
            .as_ref()
    }

    /// RPN score of a roi, as the golden run scored its anchor. A candidate roi is located
    /// among the candidate's own decoded anchors when it has them (its boxes come from its
    /// own deltas), else among the golden's.
    fn rpn_score(&self, roi: &Box4, candidate_side: bool) -> Option<f64> {
        let golden = self.golden_rpn();
        let locate = if candidate_side {
            self.candidate_rpn().or(golden)
        } else {
            golden
        }?;
        let anchor = locate.anchor_of(roi)?;
        let scores = &golden.or(self.candidate_rpn())?.scores;
        scores.get(anchor).copied()
    }

    /// RPN score of golden roi `r`, looked up once for all golden rois.
    fn golden_roi_score(&self, r: usize) -> Option<f64> {
        self.golden_roi_scores
            .get_or_init(|| {
                let rois = crate::report::RegionSet::Rois
                    .boxes(self.golden)
                    .unwrap_or_default();
                rois.iter().map(|b| self.rpn_score(b, false)).collect()
            })
            .get(r)
            .copied()
            .flatten()
    }

    fn golden_scale(&self) -> Option<f64> {
        scale_of(self.golden)
    }

    /// Golden rois divided by the golden scale: the boxes generate_tsv's NMS and output use.
    fn golden_cls_boxes(&self) -> Option<Vec<Box4>> {
        cls_boxes(self.golden)
    }

    fn golden_row(&self, tensor: &str, roi: usize) -> Option<&[f64]> {
        let t = self.golden.get(tensor)?;
        (t.shape.len() == 2 && roi < t.rows()).then(|| t.row(roi))
    }

    fn golden_max_conf(&self, roi: usize) -> Option<f64> {
        let t = self.golden.get("max_conf")?;
        t.values.get(roi).copied()
    }

    fn selection(&self) -> Option<Selection> {
        match self.golden.metadata.get("selection").map(String::as_str) {
            Some("threshold") => return Some(Selection::Threshold),
            Some(s) if s.starts_with("argsort") => return Some(Selection::Argsort),
            _ => {}
        }
        // Without the metadata, infer the branch as generate_tsv chose it (§6.3).
        let above = self
            .golden
            .get("max_conf")?
            .values
            .iter()
            .filter(|&&v| v >= CONF_THRESH)
            .count();
        Some(if (MIN_BOXES..=MAX_BOXES).contains(&above) {
            Selection::Threshold
        } else {
            Selection::Argsort
        })
    }
}

fn scale_of(rec: &Record) -> Option<f64> {
    let info = rec.get("im_info")?;
    (info.values.len() == 3 && info.values[2] > 0.0).then(|| info.values[2])
}

fn cls_boxes(rec: &Record) -> Option<Vec<Box4>> {
    let s = scale_of(rec)?;
    let rois = crate::report::RegionSet::Rois.boxes(rec)?;
    Some(rois.iter().map(|b| b.map(|v| v / s)).collect())
}

/// Index of the box in `boxes` that is `b` (IoU ≥ 0.99), if any.
fn same_box(b: &Box4, boxes: &[Box4]) -> Option<usize> {
    let (k, iou) = boxes
        .iter()
        .enumerate()
        .map(|(k, o)| (k, iou_plus1(b, o)))
        .max_by(|x, y| x.1.total_cmp(&y.1))?;
    (iou >= SAME_BOX_IOU).then_some(k)
}

/// Causes for each divergence of one region set.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Aligned with `Matching::unmatched_golden`.
    pub golden: Vec<Option<String>>,
    /// Aligned with `Matching::unmatched_candidate`.
    pub candidate: Vec<Option<String>>,
    /// Aligned with the inversions passed in.
    pub inversions: Vec<Option<String>>,
}

impl Verdict {
    pub fn diverged(&self) -> bool {
        !(self.golden.is_empty() && self.candidate.is_empty() && self.inversions.is_empty())
    }

    pub fn all_explained(&self) -> bool {
        self.golden
            .iter()
            .chain(&self.candidate)
            .chain(&self.inversions)
            .all(Option::is_some)
    }
}

/// What the final-record attribution needs from the rois comparison.
#[derive(Clone, Debug, Default)]
pub struct RoisDivergence {
    /// Tie-explained golden rois missing from the candidate (golden roi index).
    pub golden: Vec<usize>,
    /// Tie-explained candidate rois missing from the golden, in image pixels.
    pub candidate_boxes: Vec<Box4>,
    /// Their candidate roi indices.
    pub candidate: Vec<usize>,
}

/// The golden roi behind each region of a final set: `keep[j]` for the golden side when it is
/// there, else the golden roi with the same box.
fn golden_rois_of(ev: &Evidence, boxes: &[Box4], keep: Option<&Tensor>) -> Vec<Option<usize>> {
    let n_rois = ev.golden.get("rois").map_or(0, Tensor::rows);
    if let Some(k) = keep.filter(|k| k.values.len() == boxes.len()) {
        return k
            .values
            .iter()
            .map(|&v| (v >= 0.0 && (v as usize) < n_rois).then_some(v as usize))
            .collect();
    }
    let Some(cls) = ev.golden_cls_boxes() else {
        return vec![None; boxes.len()];
    };
    boxes.iter().map(|b| same_box(b, &cls)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_tie_is_relative() {
        assert!(near_tie(1.0, 1.0 + 1e-6, 1e-5));
        assert!(!near_tie(1.0, 1.0 + 1e-4, 1e-5));
        assert!(near_tie(0.0, 0.0, 1e-5));
        assert!(!near_tie(0.0, 1e-30, 1e-5));
    }
}
