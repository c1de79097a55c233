//! The proposal layer against the real Caffe fork: on every golden image, the stored RPN outputs
//! and `im_info` must give the stored `rois` bit for bit, same count, same order (golden README:
//! under classic introsort every stored `rois` is reproduced exactly), with the proposal counts
//! and tie figures of `index.json`.

mod host_golden;

use butd_host::anchors::NUM_ANCHORS;
use butd_host::proposals::{proposal_layer, ProposalConfig, Proposals};
use host_golden::{all_golden, assert_no_mismatch, Golden};

fn run_golden(g: &Golden) -> Proposals {
    let (shape, prob) = g.f32("rpn_cls_prob_reshape");
    assert_eq!(
        &shape[..2],
        &[1, 2 * NUM_ANCHORS],
        "{}: rpn_cls_prob_reshape shape",
        g.name
    );
    let (h, w) = (shape[2], shape[3]);
    let (dshape, deltas) = g.f32("rpn_bbox_pred");
    assert_eq!(
        dshape,
        vec![1, 4 * NUM_ANCHORS, h, w],
        "{}: rpn_bbox_pred shape",
        g.name
    );
    let (_, info) = g.f32("im_info");
    let fg = &prob[NUM_ANCHORS * h * w..];
    proposal_layer(
        fg,
        &deltas,
        h,
        w,
        [info[0], info[1], info[2]],
        &ProposalConfig::default(),
    )
}

fn index_usize(g: &Golden, key: &str) -> Option<usize> {
    g.index
        .get(key)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
}

/// Compares one image; returns the list of mismatches (empty when equal).
fn check(g: &Golden) -> Vec<String> {
    let mut errors = Vec::new();
    let got = run_golden(g);
    let want = g.rois();
    if got.rois.len() != want.len() {
        errors.push(format!("{} rois, golden {}", got.rois.len(), want.len()));
    }
    let differing: Vec<usize> = (0..got.rois.len().min(want.len()))
        .filter(|&r| got.rois[r].map(f32::to_bits) != want[r].map(f32::to_bits))
        .collect();
    if let Some(&first) = differing.first() {
        errors.push(format!(
            "{} rows differ, first row {first}: {:?} vs golden {:?}",
            differing.len(),
            got.rois[first],
            want[first]
        ));
    }
    let s = &got.stats;
    let expected_counts = [
        ("num_anchors", s.num_anchors),
        ("num_after_min_size", s.num_after_min_size),
        ("num_pre_nms", s.num_pre_nms),
        ("rpn_top6000_tied", s.pre_nms_tied),
        ("rpn_top6000_tie_values", s.pre_nms_tie_values),
    ];
    for (key, ours) in expected_counts {
        if let Some(theirs) = index_usize(g, key) {
            if theirs != ours {
                errors.push(format!("{key}: {ours}, golden {theirs}"));
            }
        }
    }
    if let Some(cut) = g.index.get("rpn_tie_at_6000_cut").and_then(|v| v.as_bool()) {
        if cut != s.tie_at_pre_nms_cut {
            errors.push(format!(
                "rpn_tie_at_6000_cut: {}, golden {cut}",
                s.tie_at_pre_nms_cut
            ));
        }
    }
    // An f32 written as a Python float; serde_json's default parser may be 1 f64-ulp off, so the
    // comparison is on the f32.
    let min_size = g.index["rpn_min_size"]
        .as_f64()
        .expect("index.json: rpn_min_size") as f32;
    if s.min_size_threshold.to_bits() != min_size.to_bits() {
        errors.push(format!(
            "rpn_min_size: {}, golden {min_size}",
            s.min_size_threshold
        ));
    }
    errors
}

#[test]
fn rois_equal_golden_bit_for_bit_on_every_image() {
    let goldens = all_golden();
    assert_no_mismatch(&goldens, "proposal layer differs from Caffe", check);
    // The stats keys the comparison relies on are really there (a renamed key must not pass
    // silently).
    let with_rois = goldens
        .iter()
        .filter(|g| index_usize(g, "num_rois") > Some(0))
        .count();
    assert!(
        with_rois >= 8,
        "expected at least 8 golden images with rois, found {with_rois}"
    );
    for g in goldens
        .iter()
        .filter(|g| index_usize(g, "num_rois") > Some(0))
    {
        for key in ["num_after_min_size", "num_pre_nms", "rpn_top6000_tied"] {
            assert!(
                index_usize(g, key).is_some(),
                "{}: index.json lacks {key}",
                g.name
            );
        }
    }
}

/// `chelsea_micro` (20×30 at ×30): the min-size filter leaves nothing, the layer returns no rois
/// (where Caffe's next layer dies with SIGFPE), and the port must simply return an empty list.
#[test]
fn chelsea_micro_has_no_proposals() {
    let goldens = all_golden();
    let g = goldens
        .iter()
        .find(|g| g.name == "chelsea_micro")
        .expect("golden chelsea_micro");
    assert!(g.meta("caffe_result").contains("SIGFPE"));
    assert!(g.rois().is_empty());
    let got = run_golden(g);
    assert!(got.rois.is_empty(), "{} rois", got.rois.len());
    assert_eq!(got.stats.num_after_min_size, 0);
    assert_eq!(got.stats.num_pre_nms, 0);
    assert_eq!(
        got.stats.num_anchors,
        index_usize(g, "num_anchors").unwrap()
    );
}
