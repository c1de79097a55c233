//! Divergences that a near-tie in the golden run explains are reported as ties, not failures.
//! Each test stages a real tie of the golden data (or, where the golden set has none of that
//! kind, edits a golden copy to create one).
//! Section numbers (§) are those of `docs/semantics.md`.
mod common;

use std::collections::BTreeMap;

use butd_verify::rpn::RpnDecode;
use butd_verify::{RegionSet, Status, Thresholds};
use common::*;

const TIER1: &str = "rocket_strip";

/// RPN score (golden) of every golden roi.
fn roi_scores(rec: &butd_verify::Record) -> Vec<f64> {
    let rpn = RpnDecode::from_record(rec).expect("rpn tensors");
    let rois = RegionSet::Rois.boxes(rec).unwrap();
    rois.iter()
        .map(|b| rpn.scores[rpn.anchor_of(b).expect("every roi is a decoded anchor")])
        .collect()
}

#[test]
fn every_golden_roi_is_a_decoded_anchor_in_descending_score_order() {
    let dir = golden_dir();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let rec = butd_verify::Record::open(&path).unwrap();
        let scores = roi_scores(&rec);
        // The proposal layer outputs rois in NMS keep order, i.e. descending score (§3 step 8).
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "{}: rois scores not descending",
            path.display()
        );
        checked += scores.len();
    }
    assert!(checked > 2000, "{checked}");
}

/// The golden `keep`: the rois of the final regions.
fn kept_rois(rec: &butd_verify::Record) -> Vec<usize> {
    rec.get("keep")
        .unwrap()
        .values
        .iter()
        .map(|&v| v as usize)
        .collect()
}

/// Two rois with the same RPN score (and so adjacent in rois order), neither kept.
fn tied_unkept_rois(rec: &butd_verify::Record) -> (usize, usize) {
    let scores = roi_scores(rec);
    let keep = kept_rois(rec);
    (0..scores.len() - 1)
        .map(|i| (i, i + 1))
        .find(|&(i, j)| scores[i] == scores[j] && !keep.contains(&i) && !keep.contains(&j))
        .expect("the golden rois hold an RPN score tie")
}

fn swapped_rois(i: usize, j: usize) -> butd_verify::Record {
    let mut rec = golden_record(TIER1);
    let n = rec.get("rois").unwrap().rows();
    let mut order: Vec<usize> = (0..n).collect();
    order.swap(i, j);
    take_set_rows(&mut rec, RegionSet::Rois, &order);
    rec
}

#[test]
fn rois_swapped_at_an_rpn_score_tie_are_tie_explained() {
    let (i, j) = tied_unkept_rois(&golden_record(TIER1));
    let case = Case::single(TIER1, swapped_rois(i, j));
    let r = case.run(&Thresholds::default());
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    assert_eq!(r.images[0].status, Status::Tie);
    assert!(has(&r, "tie", "order", "rois"));
    let rois = r.images[0]
        .regions
        .iter()
        .find(|x| x.set == RegionSet::Rois)
        .unwrap();
    assert_eq!((rois.inversions, rois.inversions_tie_explained), (1, 1));
    let cause = rois.inversion_examples[0].cause.as_deref().unwrap();
    assert!(cause.starts_with("rpn_order"), "{cause}");

    // The same swap of two rois whose scores are 1e-3 apart fails.
    let scores = roi_scores(&golden_record(TIER1));
    let keep = kept_rois(&golden_record(TIER1));
    let k = (0..scores.len() - 1)
        .find(|&k| {
            scores[k] - scores[k + 1] > 1e-3 * scores[k]
                && !keep.contains(&k)
                && !keep.contains(&(k + 1))
        })
        .unwrap();
    let case = Case::single(TIER1, swapped_rois(k, k + 1));
    let r = case.run(&Thresholds::default());
    assert_eq!(failures(&r), [("order".to_string(), "rois".to_string())]);

    // With [ties] allow = false the tie itself breaches the gate.
    let case = Case::single(TIER1, swapped_rois(i, j));
    let mut th = Thresholds::default();
    th.ties.allow = false;
    let r = case.run(&th);
    assert!(!r.summary.gate_passed);
    assert!(
        r.summary.breaches[0].contains("[tie: rpn_order"),
        "{}",
        r.summary.breaches[0]
    );
}

/// `(rois[r, 1:5] / im_scale)` in float32, as generate_tsv computes the output boxes (§6.1).
fn box_of_roi(golden: &butd_verify::Record, r: usize) -> Vec<f64> {
    let scale = golden.get("im_info").unwrap().values[2] as f32;
    let row = golden.get("rois").unwrap().row(r);
    row[1..5]
        .iter()
        .map(|&v| (v as f32 / scale) as f64)
        .collect()
}

#[test]
fn keeping_the_twin_of_a_kept_roi_is_a_class_nms_tie() {
    // logo_rgba has rois pooled from identical inputs: identical cls_prob / attr_prob / pool5
    // rows, so which of two overlapping twins survives each class's NMS is a tie.
    const IMAGE: &str = "logo_rgba";
    let golden = golden_record(IMAGE);
    let keep = kept_rois(&golden);
    let boxes = golden.get("boxes").unwrap();
    for (j, &r) in keep.iter().enumerate() {
        assert_eq!(boxes.row(j), &box_of_roi(&golden, r)[..], "box {j}");
    }
    let (cls, attr) = (
        golden.get("cls_prob").unwrap(),
        golden.get("attr_prob").unwrap(),
    );
    let max_conf = &golden.get("max_conf").unwrap().values;
    let rois = RegionSet::Rois.boxes(&golden).unwrap();
    // A kept roi k whose twin t survives no class at all (max_conf 0).
    let (k, t) = keep
        .iter()
        .flat_map(|&k| (0..rois.len()).map(move |t| (k, t)))
        .find(|&(k, t)| {
            t != k
                && max_conf[t] == 0.0
                && cls.row(k) == cls.row(t)
                && attr.row(k) == attr.row(t)
                && butd_verify::boxes::iou_plus1(&rois[k], &rois[t]) >= 0.3
        })
        .expect("logo_rgba has a kept roi with a suppressed twin");

    // The candidate kept t instead of k: same features and labels, t's box, rows in
    // ascending roi order (the threshold branch of §6.3).
    let mut cand = golden.clone();
    let jk = keep.iter().position(|&r| r == k).unwrap();
    let b = box_of_roi(&golden, t);
    let bt = cand.tensors.get_mut("boxes").unwrap();
    bt.values[4 * jk..4 * jk + 4].copy_from_slice(&b);
    cand.tensors.get_mut("keep").unwrap().values[jk] = t as f64;
    cand.tensors.get_mut("max_conf").unwrap().values.swap(k, t);
    let new_keep: Vec<usize> = keep.iter().map(|&r| if r == k { t } else { r }).collect();
    let mut order: Vec<usize> = (0..keep.len()).collect();
    order.sort_by_key(|&j| new_keep[j]);
    take_set_rows(&mut cand, RegionSet::Final, &order);

    let case = Case::single(IMAGE, cand);
    let r = case.run(&Thresholds::default());
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    assert_eq!(r.images[0].status, Status::Tie);
    let fin = r.images[0]
        .regions
        .iter()
        .find(|x| x.set == RegionSet::Final)
        .unwrap();
    assert_eq!(
        (fin.unmatched_golden.len(), fin.unmatched_candidate.len()),
        (1, 1)
    );
    for u in fin.unmatched_golden.iter().chain(&fin.unmatched_candidate) {
        let cause = u.cause.as_deref().unwrap();
        assert!(cause.starts_with("class_nms:"), "{cause}");
    }
    assert!(has(&r, "tie", "unmatched", "final"));

    // Dropping k without keeping its twin is not a tie.
    let mut cand = golden.clone();
    let without: Vec<usize> = (0..keep.len()).filter(|&j| j != jk).collect();
    take_set_rows(&mut cand, RegionSet::Final, &without);
    let case = Case::single(IMAGE, cand);
    let r = case.run(&Thresholds::default());
    assert_eq!(
        failures(&r),
        [("unmatched".to_string(), "final".to_string())]
    );
}

#[test]
fn label_at_an_argmax_tie_is_tie_explained() {
    // The golden set has no exact top-2 tie in a kept row, so stage one in a golden copy.
    let mut golden = golden_record(TIER1);
    let r0 = golden.get("keep").unwrap().values[0] as usize;
    let a = golden.get("objects_id").unwrap().values[0] as usize;
    let b = if a == 0 { 1 } else { a - 1 };
    let cls = golden.tensors.get_mut("cls_prob").unwrap();
    let w = cls.row_len();
    cls.values[r0 * w + 1 + b] = cls.values[r0 * w + 1 + a];
    let mut cand = golden.clone();
    cand.tensors.get_mut("objects_id").unwrap().values[0] = b as f64;
    let case = Case::from_records(
        &BTreeMap::from([(TIER1.to_string(), golden.clone())]),
        &BTreeMap::from([(TIER1.to_string(), cand)]),
    );
    let r = case.run(&Thresholds::default());
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    assert!(has(&r, "tie", "label", "objects_id"));

    // One ulp-scale step further apart than rel_eps: a failure.
    let cls = golden.tensors.get_mut("cls_prob").unwrap();
    cls.values[r0 * w + 1 + b] *= 1.0 - 1e-4;
    let mut cand = golden.clone();
    cand.tensors.get_mut("objects_id").unwrap().values[0] = b as f64;
    let case = Case::from_records(
        &BTreeMap::from([(TIER1.to_string(), golden)]),
        &BTreeMap::from([(TIER1.to_string(), cand)]),
    );
    let r = case.run(&Thresholds::default());
    assert_eq!(
        failures(&r),
        [("label".to_string(), "objects_id".to_string())]
    );
}
