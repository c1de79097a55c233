//! The golden set against itself, and perturbed copies of golden files: each perturbation is
//! caught and named.
mod common;

use std::collections::BTreeMap;

use butd_verify::{compare_dirs_with, RegionSet, Status, Thresholds};
use common::*;

/// Tier 1: every tensor, 300 rois, 14 kept boxes.
const TIER1: &str = "rocket_strip";

#[test]
fn golden_against_itself_is_exact_and_passes() {
    let g = golden_dir();
    let r = compare_dirs_with(&g, &g, &Thresholds::default(), 2).unwrap();
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    assert_eq!(r.summary.compared, 9);
    assert_eq!(r.summary.passed, 9);
    for img in &r.images {
        assert_eq!(img.status, Status::Pass, "{}", img.image);
        assert!(img.findings.is_empty(), "{}: {:?}", img.image, img.findings);
        for t in &img.tensors {
            let s = t.by_index.as_ref().expect("every tensor is on both sides");
            assert_eq!(
                (s.max_abs_diff, s.mean_abs_diff, s.mismatches, s.nonfinite),
                (0.0, 0.0, 0, 0),
                "{} {}",
                img.image,
                t.name
            );
            assert_eq!(s.cosine, 1.0, "{} {}", img.image, t.name);
            if let Some(m) = &t.matched {
                assert_eq!((m.max_abs_diff, m.cosine), (0.0, 1.0));
            }
        }
        for reg in &img.regions {
            assert!(reg.same_indexing && reg.matched == reg.golden_count);
            assert_eq!(reg.inversions, 0);
            assert!(reg.label_disagreements.is_empty());
        }
    }
    // chelsea_micro is the crash record (0 rois): it passes against itself.
    let micro = r
        .images
        .iter()
        .find(|i| i.image == "chelsea_micro")
        .unwrap();
    assert_eq!(micro.regions[0].golden_count, 0);
    assert!(r.layers.iter().all(|l| l.max == 0.0));
}

#[test]
fn permuted_final_rows_pass_as_a_set_and_are_flagged_by_index() {
    let k = golden_record(TIER1).get("keep").unwrap().rows();
    let reversed: Vec<usize> = (0..k).rev().collect();
    let r = perturbed(TIER1, |rec| take_set_rows(rec, RegionSet::Final, &reversed));
    let img = &r.images[0];
    let fin = img
        .regions
        .iter()
        .find(|x| x.set == RegionSet::Final)
        .unwrap();
    // As a set: every region matched, identical values.
    assert_eq!((fin.matched, fin.unmatched_golden.len()), (k, 0));
    assert!(fin.label_disagreements.is_empty());
    let features = img.tensors.iter().find(|t| t.name == "features").unwrap();
    assert_eq!(features.matched.as_ref().unwrap().max_abs_diff, 0.0);
    // By index: the rows differ, and the order is what fails.
    assert!(features.by_index.as_ref().unwrap().max_abs_diff > 0.1);
    assert!(!fin.same_indexing && fin.inversions > 0);
    assert!(!r.summary.gate_passed);
    assert!(
        failures(&r)
            .iter()
            .all(|f| f == &("order".into(), "final".into())),
        "{:?}",
        failures(&r)
    );
    assert!(has(&r, "fail", "order", "final"));
}

#[test]
fn permuted_rois_with_keep_remapped_are_an_order_failure() {
    let golden = golden_record(TIER1);
    let n = golden.get("rois").unwrap().rows();
    // Rotate the rois by 7: new row i holds old row (i + 7) % n.
    let order: Vec<usize> = (0..n).map(|i| (i + 7) % n).collect();
    let r = perturbed(TIER1, |rec| {
        take_set_rows(rec, RegionSet::Rois, &order);
        let keep = rec.tensors.get_mut("keep").unwrap();
        for v in keep.values.iter_mut() {
            *v = ((*v as usize + n - 7) % n) as f64;
        }
    });
    let img = &r.images[0];
    let rois = img
        .regions
        .iter()
        .find(|x| x.set == RegionSet::Rois)
        .unwrap();
    assert_eq!(rois.matched, n);
    assert!(rois.inversions > 0);
    assert!(has(&r, "fail", "order", "rois"));
    // The final records are the same regions, but they come from other roi indices.
    assert!(has(&r, "fail", "keep", "keep"));
    let cls = img.tensors.iter().find(|t| t.name == "cls_prob").unwrap();
    assert_eq!(cls.matched.as_ref().unwrap().max_abs_diff, 0.0);
}

#[test]
fn dropped_box_is_an_unmatched_golden_region() {
    let k = golden_record(TIER1).get("keep").unwrap().rows();
    let without_5: Vec<usize> = (0..k).filter(|&i| i != 5).collect();
    let r = perturbed(TIER1, |rec| {
        take_set_rows(rec, RegionSet::Final, &without_5)
    });
    let fin = r.images[0]
        .regions
        .iter()
        .find(|x| x.set == RegionSet::Final)
        .unwrap();
    assert_eq!(fin.unmatched_golden.len(), 1);
    assert_eq!(fin.unmatched_golden[0].index, 5);
    assert!(fin.unmatched_golden[0].cause.is_none());
    assert!(fin.unmatched_candidate.is_empty());
    assert_eq!(
        failures(&r),
        [("unmatched".to_string(), "final".to_string())]
    );
}

#[test]
fn feature_changed_by_1e_3_breaches_the_features_tolerance() {
    let r = perturbed(TIER1, |rec| {
        let f = rec.tensors.get_mut("features").unwrap();
        f.values[2 * 2048 + 100] += 1e-3;
    });
    assert_eq!(
        failures(&r),
        [("tolerance".to_string(), "features".to_string())]
    );
    let line = &r.summary.breaches[0];
    assert!(
        line.contains("features") && line.contains("row 2 column 100"),
        "{line}"
    );
    let t = r.images[0]
        .tensors
        .iter()
        .find(|t| t.name == "features")
        .unwrap();
    let s = t.matched.as_ref().unwrap();
    assert!((s.max_abs_diff - 1e-3).abs() < 1e-6);
    assert_eq!(s.mismatches, 1);
}

#[test]
fn two_swapped_labels_are_label_disagreements() {
    let golden = golden_record(TIER1);
    let ids = &golden.get("objects_id").unwrap().values;
    let j = (1..ids.len())
        .find(|&j| ids[j] != ids[0])
        .expect("two different labels");
    let r = perturbed(TIER1, |rec| {
        rec.tensors.get_mut("objects_id").unwrap().values.swap(0, j);
    });
    assert_eq!(
        failures(&r),
        [("label".to_string(), "objects_id".to_string())]
    );
    let fin = r.images[0]
        .regions
        .iter()
        .find(|x| x.set == RegionSet::Final)
        .unwrap();
    let d: Vec<(usize, i64, i64)> = fin
        .label_disagreements
        .iter()
        .map(|d| (d.golden_index, d.golden, d.candidate))
        .collect();
    assert_eq!(
        d,
        [
            (0, ids[0] as i64, ids[j] as i64),
            (j, ids[j] as i64, ids[0] as i64)
        ]
    );
    assert!(fin.label_disagreements.iter().all(|d| d.cause.is_none()));
    // The reports name the classes by their Visual Genome words (vocab/objects_vocab.txt).
    let vocab = butd_vocab::Vocab::builtin();
    let (a, b) = (ids[0] as i64, ids[j] as i64);
    let html = r.to_html();
    for (id, word) in [(a, vocab.object(a)), (b, vocab.object(b))] {
        assert!(
            html.contains(&format!("{id} {word}")),
            "{id} {word} not in the HTML report"
        );
    }
}

#[test]
fn tensor_with_the_wrong_shape_is_a_shape_failure() {
    let r = perturbed(TIER1, |rec| {
        let t = rec.tensors.get("cls_prob").unwrap().clone();
        // Drop the last column: R × 1600.
        let values: Vec<f64> = (0..t.rows())
            .flat_map(|i| t.row(i)[..1600].to_vec())
            .collect();
        rec.tensors.insert(
            "cls_prob".into(),
            f32_tensor("cls_prob", vec![t.rows(), 1600], values),
        );
    });
    assert_eq!(
        failures(&r),
        [("shape".to_string(), "cls_prob".to_string())]
    );
    assert!(
        r.summary.breaches[0].contains("[300, 1600]"),
        "{}",
        r.summary.breaches[0]
    );
}

#[test]
fn missing_image_is_named() {
    let rec = golden_record("chelsea_tiny");
    let case = Case::new(
        &["chelsea_tiny", "chelsea_micro"],
        &BTreeMap::from([("chelsea_tiny".to_string(), rec)]),
    );
    let r = case.run(&Thresholds::default());
    assert_eq!(r.summary.missing_images, 1);
    assert_eq!(failures(&r), [("missing_image".to_string(), String::new())]);
    assert!(r.summary.breaches[0].starts_with("chelsea_micro:"));
}

#[test]
fn nan_is_a_nonfinite_failure_not_a_tolerance_one() {
    let r = perturbed(TIER1, |rec| {
        rec.tensors.get_mut("features").unwrap().values[3] = f64::NAN;
    });
    assert_eq!(
        failures(&r),
        [("nonfinite".to_string(), "features".to_string())]
    );
    assert!(r.summary.breaches[0].contains("flat index 3"));
}

#[test]
fn nan_in_a_dense_activation_is_caught_too() {
    let r = perturbed(TIER1, |rec| {
        rec.tensors.get_mut("res4b22").unwrap().values[10] = f64::NAN;
    });
    assert_eq!(
        failures(&r),
        [("nonfinite".to_string(), "res4b22".to_string())]
    );
}

#[test]
fn crash_record_passes_with_no_proposals_and_fails_with_boxes() {
    // A candidate that stopped at the proposal layer, like the golden.
    let mut quiet = golden_record("chelsea_micro");
    quiet.tensors.retain(|n, _| n == "rois" || n == "im_info");
    let r = perturbed("chelsea_micro", |rec| *rec = quiet);
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    // A candidate that invents boxes for it.
    let r = perturbed("chelsea_micro", |rec| {
        rec.tensors.insert(
            "boxes".into(),
            f32_tensor("boxes", vec![1, 4], vec![0.0, 0.0, 10.0, 10.0]),
        );
    });
    assert_eq!(failures(&r), [("crash_record".to_string(), String::new())]);
}

#[test]
fn candidate_without_activations_passes_with_a_warning_unless_require_all() {
    let strip = |rec: &mut butd_verify::Record| {
        for n in [
            "data",
            "res4b22",
            "pool5_flat",
            "rpn_cls_prob_reshape",
            "rpn_bbox_pred",
        ] {
            rec.tensors.remove(n);
        }
    };
    let r = perturbed(TIER1, strip);
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    assert!(has(&r, "warn", "missing_tensor", ""));
    let mut rec = golden_record(TIER1);
    strip(&mut rec);
    let case = Case::single(TIER1, rec);
    let mut th = Thresholds::default();
    th.required.all = true;
    let r = case.run(&th);
    assert_eq!(
        failures(&r),
        [("missing_tensor".to_string(), String::new())]
    );
    // Final-record tensors are always required.
    let r = perturbed(TIER1, |rec| {
        rec.tensors.remove("features");
    });
    assert_eq!(
        failures(&r),
        [("missing_tensor".to_string(), String::new())]
    );
}

#[test]
fn report_round_trips_through_json_and_renders_html() {
    let golden = golden_record(TIER1);
    let ids = &golden.get("objects_id").unwrap().values;
    let j = (1..ids.len()).find(|&j| ids[j] != ids[0]).unwrap();
    let r = perturbed(TIER1, |rec| {
        rec.tensors.get_mut("objects_id").unwrap().values.swap(0, j);
        rec.tensors.get_mut("features").unwrap().values[0] += 1e-2;
    });
    let json = r.to_json();
    let back = butd_verify::Report::from_json(&json).unwrap();
    assert!(back.to_json() == json, "JSON does not round-trip");
    assert_eq!(back.schema, "butd-parity-v1");
    let html = r.to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("Label disagreements (2)"));
    assert!(
        !html.contains("http")
            || html
                .matches("http")
                .all(|_| html.contains("http://www.w3.org/2000/svg"))
    );
    let text = r.to_terminal();
    assert!(
        text.contains("GATE FAILED") && text.contains("objects_id"),
        "{text}"
    );
}
