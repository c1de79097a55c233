//! The rois: the RPN NMS, the min-size filter and the top-6000 cut as roots, and what a
//! differing proposal sets off (its NMS neighbours, the top-300 cut).
use super::{scale_of, POST_NMS_TOP_N, RPN_NMS_THRESH};
use super::{Evidence, RoisDivergence, Verdict};
use crate::boxes::{iou_plus1, Box4};
use crate::regions::Matching;
use crate::rpn::{passes_min_size, ANCHOR_MATCH_TOL_PX};

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
