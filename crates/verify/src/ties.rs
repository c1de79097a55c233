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
use std::cell::OnceCell;

use crate::boxes::{iou_plus1, Box4};
use crate::regions::Matching;
use crate::rpn::{passes_min_size, RpnDecode, ANCHOR_MATCH_TOL_PX};
use butd_formats::tensors::{Record, Tensor};

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

/// Unpairs matched rois that are different proposals: boxes further apart than
/// [`ANCHOR_MATCH_TOL_PX`] that decode from different anchors (two anchors can decode to boxes
/// with IoU above the matching threshold, e.g. where both are clipped at the image border).
pub fn split_distinct_proposals(ev: &Evidence, gb: &[Box4], cb: &[Box4], m: &mut Matching) {
    let (golden, candidate) = (ev.golden_rpn(), ev.candidate_rpn().or(ev.golden_rpn()));
    let (Some(golden), Some(candidate)) = (golden, candidate) else {
        return;
    };
    let mut split = false;
    m.pairs.retain(|p| {
        let far = gb[p.g]
            .iter()
            .zip(&cb[p.c])
            .any(|(a, b)| (a - b).abs() > ANCHOR_MATCH_TOL_PX);
        let distinct = far && {
            let (ag, ac) = (golden.anchor_of(&gb[p.g]), candidate.anchor_of(&cb[p.c]));
            ag.is_some() && ac.is_some() && ag != ac
        };
        if distinct {
            m.unmatched_golden.push(p.g);
            m.unmatched_candidate.push(p.c);
            split = true;
        }
        !distinct
    });
    if split {
        m.unmatched_golden.sort_unstable();
        m.unmatched_candidate.sort_unstable();
    }
}

/// Explains differences between golden and candidate rois (boxes in network pixels): first the
/// roots (near-tied decisions of the golden run), then what they set off.
pub fn explain_rois(
    ev: &Evidence,
    gb: &[Box4],
    cb: &[Box4],
    m: &Matching,
    inversions: &[(usize, usize)],
) -> Verdict {
    let mut v = Verdict {
        golden: vec![None; m.unmatched_golden.len()],
        candidate: vec![None; m.unmatched_candidate.len()],
        inversions: Vec::new(),
    };
    let candidate_scores: Vec<Option<f64>> = m
        .unmatched_candidate
        .iter()
        .map(|&ci| ev.rpn_score(&cb[ci], true))
        .collect();
    rpn_nms_roots(ev, gb, cb, m, &candidate_scores, &mut v);
    for (a, &gi) in m.unmatched_golden.iter().enumerate() {
        if v.golden[a].is_none() {
            v.golden[a] = rpn_edge_root(ev, &gb[gi], ev.golden_roi_score(gi));
        }
    }
    for (b, &ci) in m.unmatched_candidate.iter().enumerate() {
        if v.candidate[b].is_none() {
            v.candidate[b] = rpn_edge_root(ev, &cb[ci], candidate_scores[b]);
        }
    }
    if v.golden.iter().chain(&v.candidate).any(Option::is_some) {
        rpn_nms_cascades(gb, cb, m, &mut v);
        post_nms_cut_cascades(gb.len(), cb.len(), m, &mut v);
    }
    v.inversions = inversions
        .iter()
        .map(|&(p, q)| {
            let (gp, gq) = (m.pairs[p].g, m.pairs[q].g);
            let (sp, sq) = (ev.golden_roi_score(gp)?, ev.golden_roi_score(gq)?);
            ev.tie(sp, sq).then(|| {
                format!(
                    "rpn_order: rois #{gp} and #{gq} have near-tied RPN scores {sp:.9} / {sq:.9}"
                )
            })
        })
        .collect();
    v
}

/// Roots (a): the RPN NMS chose differently between two overlapping, near-tied proposals.
fn rpn_nms_roots(
    ev: &Evidence,
    gb: &[Box4],
    cb: &[Box4],
    m: &Matching,
    candidate_scores: &[Option<f64>],
    v: &mut Verdict,
) {
    for (a, &gi) in m.unmatched_golden.iter().enumerate() {
        for (b, &ci) in m.unmatched_candidate.iter().enumerate() {
            let iou = iou_plus1(&gb[gi], &cb[ci]);
            if iou < RPN_NMS_THRESH {
                continue;
            }
            if let (Some(sg), Some(sc)) = (ev.golden_roi_score(gi), candidate_scores[b]) {
                if ev.tie(sg, sc) {
                    let cause = format!(
                        "rpn_nms: golden roi #{gi} and candidate roi #{ci} overlap (IoU {iou:.3}) \
                         with near-tied RPN scores {sg:.9} / {sc:.9}; each run kept the other"
                    );
                    v.golden[a].get_or_insert_with(|| cause.clone());
                    v.candidate[b].get_or_insert(cause);
                }
            }
        }
    }
}

/// Roots (b), (c): the min-size filter or the top-6000 cut was a near-tie for this box.
fn rpn_edge_root(ev: &Evidence, b: &Box4, score: Option<f64>) -> Option<String> {
    let rpn = ev.golden_rpn().or(ev.candidate_rpn())?;
    let side = (b[2] - b[0] + 1.0).min(b[3] - b[1] + 1.0);
    if (side - rpn.min_size).abs() <= ANCHOR_MATCH_TOL_PX {
        let verb = if passes_min_size(b, rpn.min_size) {
            "passes"
        } else {
            "fails"
        };
        return Some(format!(
            "min_size: side {side:.4} px is within {ANCHOR_MATCH_TOL_PX} px of the \
             RPN_MIN_SIZE threshold {:.4} ({verb} here)",
            rpn.min_size
        ));
    }
    let (s, cut) = (score?, rpn.pre_nms_cut?);
    ev.tie(s, cut).then(|| {
        format!("pre_nms_top_n: RPN score {s:.9} near-tied with the top-6000 cut {cut:.9}")
    })
}

/// Cascades: a differing proposal changes what it suppresses, to a fixed point (each newly
/// explained box can change the suppression of its own neighbours).
fn rpn_nms_cascades(gb: &[Box4], cb: &[Box4], m: &Matching, v: &mut Verdict) {
    let (ug, uc) = (&m.unmatched_golden, &m.unmatched_candidate);
    loop {
        let mut changed = false;
        let explained: Vec<(Box4, String)> = ug
            .iter()
            .zip(&v.golden)
            .filter_map(|(&gi, c)| c.as_ref().map(|_| (gb[gi], format!("golden roi #{gi}"))))
            .chain(uc.iter().zip(&v.candidate).filter_map(|(&ci, c)| {
                c.as_ref().map(|_| (cb[ci], format!("candidate roi #{ci}")))
            }))
            .collect();
        let mut cascade = |b: &Box4, slot: &mut Option<String>| {
            if slot.is_some() {
                return;
            }
            if let Some((_, who)) = explained
                .iter()
                .find(|(o, _)| o != b && iou_plus1(b, o) >= RPN_NMS_THRESH)
            {
                *slot = Some(format!(
                    "rpn_nms_cascade: overlaps the tie-explained {who} (IoU ≥ {RPN_NMS_THRESH}), \
                     so its suppression changed"
                ));
                changed = true;
            }
        };
        for (a, &gi) in ug.iter().enumerate() {
            cascade(&gb[gi], &mut v.golden[a]);
        }
        for (b, &ci) in uc.iter().enumerate() {
            cascade(&cb[ci], &mut v.candidate[b]);
        }
        if !changed {
            break;
        }
    }
}

/// Cascades through the top-300 cut: once a divergence is explained, the rois at the tail of a
/// full set are the ones it pushed out (or let in).
fn post_nms_cut_cascades(
    golden_count: usize,
    candidate_count: usize,
    m: &Matching,
    v: &mut Verdict,
) {
    let tail = |idx: usize, count: usize, unmatched: usize| {
        (count >= POST_NMS_TOP_N && idx + unmatched >= count).then(|| {
            format!(
                "post_nms_top_n: among the last {unmatched} of {count} rois, displaced \
                 through the top-{POST_NMS_TOP_N} cut by the tie-explained divergence"
            )
        })
    };
    let (ug, uc) = (&m.unmatched_golden, &m.unmatched_candidate);
    for (a, &gi) in ug.iter().enumerate() {
        if v.golden[a].is_none() {
            v.golden[a] = tail(gi, golden_count, ug.len());
        }
    }
    for (b, &ci) in uc.iter().enumerate() {
        if v.candidate[b].is_none() {
            v.candidate[b] = tail(ci, candidate_count, uc.len());
        }
    }
}

/// The tie-explained part of a rois verdict, in the form the final-record attribution uses.
pub fn rois_divergence(
    ev: &Evidence,
    cb: &[Box4],
    m: &Matching,
    verdict: &Verdict,
) -> RoisDivergence {
    let mut out = RoisDivergence::default();
    for (&gi, c) in m.unmatched_golden.iter().zip(&verdict.golden) {
        if c.is_some() {
            out.golden.push(gi);
        }
    }
    let scale = scale_of(ev.candidate).or(ev.golden_scale());
    for (&ci, c) in m.unmatched_candidate.iter().zip(&verdict.candidate) {
        if let (Some(_), Some(s)) = (c, scale) {
            out.candidate.push(ci);
            out.candidate_boxes.push(cb[ci].map(|v| v / s));
        }
    }
    out
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

/// A label that differs on a matched pair is tie-explained when the golden probability of the
/// candidate's label is near-tied with the golden maximum (np.argmax, §6.5): `prob` is the
/// golden probability tensor (`cls_prob` / `attr_prob`), labels are 0-based over columns 1….
pub fn explain_label(
    ev: &Evidence,
    prob: &str,
    roi: Option<usize>,
    candidate: i64,
) -> Option<String> {
    let r = roi?;
    let row = ev.golden_row(prob, r)?;
    let col = usize::try_from(candidate).ok()? + 1;
    let p = *row.get(col)?;
    let max = row[1..].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    ev.tie(p, max).then(|| {
        format!(
            "argmax: golden {prob}[{r}] gives label {candidate} {p:.9}, the maximum is {max:.9}"
        )
    })
}

/// A label that differs on a matched pair where one side's labels come from 16-bit scores
/// (UNITER's float16 `soft_labels`, `objects_id` = their argmax over columns 1…) is explained
/// when that side's scores of the two labels have overlapping rounding intervals: the 16-bit
/// values cannot order them, and `np.argmax` takes the first of equal values.
pub fn explain_half_label(
    ev: &Evidence,
    label: &str,
    (g_row, c_row): (usize, usize),
    (a, b): (i64, i64),
) -> Option<String> {
    if label != "objects_id" {
        return None;
    }
    let (ca, cb) = (usize::try_from(a).ok()? + 1, usize::try_from(b).ok()? + 1);
    [
        ("golden", ev.golden, g_row),
        ("candidate", ev.candidate, c_row),
    ]
    .into_iter()
    .find_map(|(side, rec, row)| {
        let t = rec.get("soft_labels")?;
        let res = t.resolution.as_ref()?;
        if t.shape.len() != 2 || row >= t.rows() {
            return None;
        }
        let r = t.row(row);
        let (pa, pb) = (*r.get(ca)?, *r.get(cb)?);
        let (alo, ahi) = res.interval(pa, ca);
        let (blo, bhi) = res.interval(pb, cb);
        (alo <= bhi && blo <= ahi).then(|| {
            format!(
                "half_argmax: the {side}'s {} soft_labels row #{row} scores labels {a} and {b} \
                     {pa:.6} / {pb:.6}, which that precision cannot order",
                res.half.name()
            )
        })
    })
}

/// The golden roi of each golden final region (for label attribution).
pub fn golden_final_rois(ev: &Evidence, gb: &[Box4]) -> Vec<Option<usize>> {
    golden_rois_of(ev, gb, ev.golden.get("keep"))
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
