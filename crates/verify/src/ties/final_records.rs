//! The final records: generate_tsv's selection (the 0.2 threshold, the MIN/MAX_BOXES cut) and
//! per-class NMS as roots, cascades of tie-explained rois, and `[ties] nms_swaps`.
use super::{cls_boxes, golden_rois_of, same_box, Evidence, RoisDivergence, Selection, Verdict};
use super::{CLASS_NMS_THRESH, CONF_THRESH};
use crate::boxes::{iou_plus1, Box4};
use crate::regions::Matching;

/// `[ties] nms_swaps` (the `fast` profile): an unexplained unmatched final region that overlaps
/// an unmatched region of the other side by at least the per-class NMS threshold is a swap
/// inside one NMS cluster: a slightly different score (bf16) made the per-class NMS keep a
/// neighbour instead. A region with no such neighbour (a dropped box) stays unexplained.
pub fn explain_nms_swaps(gb: &[Box4], cb: &[Box4], m: &Matching, verdict: &mut Verdict) {
    let swap = |b: &Box4, others: &[usize], boxes: &[Box4], side: &str| {
        others.iter().find_map(|&o| {
            let iou = iou_plus1(b, &boxes[o]);
            (iou >= CLASS_NMS_THRESH).then(|| {
                format!(
                    "nms_swap: overlaps unmatched {side} region #{o} (IoU {iou:.3} ≥ \
                     {CLASS_NMS_THRESH}): the per-class NMS kept the other box of the cluster"
                )
            })
        })
    };
    for (k, &j) in m.unmatched_golden.iter().enumerate() {
        if verdict.golden[k].is_none() {
            verdict.golden[k] = swap(&gb[j], &m.unmatched_candidate, cb, "candidate");
        }
    }
    for (k, &j) in m.unmatched_candidate.iter().enumerate() {
        if verdict.candidate[k].is_none() {
            verdict.candidate[k] = swap(&cb[j], &m.unmatched_golden, gb, "golden");
        }
    }
}

/// Explains differences between golden and candidate final records (boxes in image pixels).
pub fn explain_final(
    ev: &Evidence,
    gb: &[Box4],
    cb: &[Box4],
    m: &Matching,
    inversions: &[(usize, usize)],
    rois: &RoisDivergence,
) -> Verdict {
    let f = FinalRegions::new(ev, gb, cb, rois);
    // The golden rois of the unmatched regions on each side: a per-class NMS tie needs the
    // other run to have kept the twin instead.
    let unmatched_rois = |idx: &[usize], rois: &[Option<usize>]| -> Vec<usize> {
        idx.iter().filter_map(|&j| rois[j]).collect()
    };
    let g_unmatched_rois = unmatched_rois(&m.unmatched_golden, &f.g_roi);
    let c_unmatched_rois = unmatched_rois(&m.unmatched_candidate, &f.c_roi);
    let golden = m
        .unmatched_golden
        .iter()
        .map(|&j| f.explain(&gb[j], f.g_roi[j], None, &c_unmatched_rois))
        .collect();
    let candidate = m
        .unmatched_candidate
        .iter()
        .map(|&j| f.explain(&cb[j], f.c_roi[j], f.c_own_roi[j], &g_unmatched_rois))
        .collect();
    let inversions = inversions
        .iter()
        .map(|&(p, q)| f.explain_inversion(m.pairs[p].g, m.pairs[q].g))
        .collect();
    Verdict {
        golden,
        candidate,
        inversions,
    }
}

/// What the final-record attribution reads about the regions of both sides.
struct FinalRegions<'e, 'a> {
    ev: &'e Evidence<'a>,
    rois: &'e RoisDivergence,
    /// The golden roi behind each golden / candidate final region.
    g_roi: Vec<Option<usize>>,
    c_roi: Vec<Option<usize>>,
    /// The candidate's own roi behind a candidate final box, to recognise candidate-only rois.
    c_own_roi: Vec<Option<usize>>,
    g_cls: Option<Vec<Box4>>,
    selection: Option<Selection>,
    /// Argsort selection: the lowest golden `max_conf` kept (the MIN/MAX_BOXES cut).
    cut: Option<f64>,
}

impl<'e, 'a> FinalRegions<'e, 'a> {
    fn new(ev: &'e Evidence<'a>, gb: &[Box4], cb: &[Box4], rois: &'e RoisDivergence) -> Self {
        let g_roi = golden_rois_of(ev, gb, ev.golden.get("keep"));
        let c_roi = golden_rois_of(ev, cb, None);
        let c_own_roi = match (ev.candidate.get("keep"), cls_boxes(ev.candidate)) {
            (Some(k), _) if k.values.len() == cb.len() => {
                k.values.iter().map(|&v| Some(v as usize)).collect()
            }
            (_, Some(cls)) => cb.iter().map(|b| same_box(b, &cls)).collect(),
            _ => vec![None; cb.len()],
        };
        let selection = ev.selection();
        let cut = selection.and_then(|s| {
            (s == Selection::Argsort).then(|| {
                g_roi
                    .iter()
                    .filter_map(|r| r.and_then(|r| ev.golden_max_conf(r)))
                    .fold(f64::INFINITY, f64::min)
            })
        });
        FinalRegions {
            ev,
            rois,
            g_roi,
            c_roi,
            c_own_roi,
            g_cls: ev.golden_cls_boxes(),
            selection,
            cut,
        }
    }

    /// The cause of one unmatched final region, roots after cascades: `roi` is its golden roi,
    /// `own_candidate_roi` the candidate's roi behind a candidate region, `partners` the golden
    /// rois of the other side's unmatched regions.
    fn explain(
        &self,
        b: &Box4,
        roi: Option<usize>,
        own_candidate_roi: Option<usize>,
        partners: &[usize],
    ) -> Option<String> {
        if let Some(cause) = self.rois_cascade(b, roi, own_candidate_roi) {
            return Some(cause);
        }
        let r = roi?;
        self.selection_edge(r)
            .or_else(|| self.class_nms_twin(r, partners))
    }

    /// Cascade of a tie-explained rois divergence: the region's own roi is one, or it overlaps
    /// one enough to change its per-class NMS.
    fn rois_cascade(
        &self,
        b: &Box4,
        roi: Option<usize>,
        own_candidate_roi: Option<usize>,
    ) -> Option<String> {
        let rois = self.rois;
        if let Some(r) = roi.filter(|r| rois.golden.contains(r)) {
            return Some(format!(
                "rois: its roi #{r} is a tie-explained rois divergence"
            ));
        }
        if let Some(r) = own_candidate_roi.filter(|r| rois.candidate.contains(r)) {
            return Some(format!(
                "rois: its candidate roi #{r} is a tie-explained rois divergence"
            ));
        }
        let golden_div = self.g_cls.iter().flat_map(|cls| {
            rois.golden
                .iter()
                .map(|&r| (format!("golden roi #{r}"), cls[r]))
        });
        let candidate_div = rois
            .candidate
            .iter()
            .zip(&rois.candidate_boxes)
            .map(|(r, b)| (format!("candidate roi #{r}"), *b));
        for (who, o) in golden_div.chain(candidate_div) {
            if iou_plus1(b, &o) >= CLASS_NMS_THRESH {
                return Some(format!(
                    "class_nms_cascade: overlaps the tie-explained {who} (IoU ≥ {CLASS_NMS_THRESH}), \
                     which changes its per-class NMS and max_conf"
                ));
            }
        }
        None
    }

    /// Roots of the selection (§6.3): golden roi `r`'s `max_conf` near-tied with the 0.2
    /// threshold or with the MIN/MAX_BOXES cut, whichever branch the golden run took.
    fn selection_edge(&self, r: usize) -> Option<String> {
        let mc = self.ev.golden_max_conf(r)?;
        match self.selection? {
            Selection::Threshold if self.ev.tie(mc, CONF_THRESH) => Some(format!(
                "conf_thresh: golden max_conf of roi #{r} = {mc:.9}, near-tied with {CONF_THRESH}"
            )),
            Selection::Argsort if self.cut.is_some_and(|c| self.ev.tie(mc, c)) => Some(format!(
                "box_cut: golden max_conf of roi #{r} = {mc:.9}, near-tied with the \
                 MIN/MAX_BOXES cut {:.9}",
                self.cut.unwrap_or_default()
            )),
            _ => None,
        }
    }

    /// Per-class NMS between two overlapping rois with the same class scores (§6.2), where the
    /// other run kept the twin (one of `partners`).
    fn class_nms_twin(&self, r: usize, partners: &[usize]) -> Option<String> {
        let ev = self.ev;
        let cls = self.g_cls.as_ref()?;
        let row = ev.golden_row("cls_prob", r)?;
        let scale = row[1..].iter().fold(0.0f64, |a, v| a.max(v.abs()));
        partners.iter().find_map(|&t| {
            if t == r || t >= cls.len() || iou_plus1(&cls[r], &cls[t]) < CLASS_NMS_THRESH {
                return None;
            }
            let other = ev.golden_row("cls_prob", t)?;
            let same = row[1..]
                .iter()
                .zip(&other[1..])
                .all(|(a, b)| (a - b).abs() <= ev.eps * scale);
            same.then(|| {
                format!(
                    "class_nms: rois #{r} and #{t} overlap (IoU {:.3}) with near-identical cls_prob \
                     rows, so which survives the per-class NMS is a tie",
                    iou_plus1(&cls[r], &cls[t])
                )
            })
        })
    }

    /// Two matched golden final regions `jp` < `jq` in the other order: their order comes from
    /// the RPN scores (threshold selection, ascending roi index) or from `max_conf` (argsort).
    fn explain_inversion(&self, jp: usize, jq: usize) -> Option<String> {
        let ev = self.ev;
        let (rp, rq) = (self.g_roi[jp]?, self.g_roi[jq]?);
        match self.selection? {
            Selection::Threshold => {
                let sp = ev.golden_roi_score(rp)?;
                let sq = ev.golden_roi_score(rq)?;
                ev.tie(sp, sq).then(|| {
                    format!(
                        "rpn_order: their rois #{rp} and #{rq} have near-tied RPN scores \
                         {sp:.9} / {sq:.9}"
                    )
                })
            }
            Selection::Argsort => {
                let (a, b) = (ev.golden_max_conf(rp)?, ev.golden_max_conf(rq)?);
                ev.tie(a, b).then(|| {
                    format!("max_conf_order: rois #{rp} and #{rq} have near-tied max_conf {a:.9} / {b:.9}")
                })
            }
        }
    }
}

/// The golden roi of each golden final region (for label attribution).
pub fn golden_final_rois(ev: &Evidence, gb: &[Box4]) -> Vec<Option<usize>> {
    golden_rois_of(ev, gb, ev.golden.get("keep"))
}
