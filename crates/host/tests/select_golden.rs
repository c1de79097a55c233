//! generate_tsv's selection against the real Caffe fork: on every golden image with `cls_prob`,
//! the stored `rois` un-scaled by the metadata `im_scale` and the stored `cls_prob` must give the
//! stored `max_conf` (f64, bit for bit), `keep` (same order), `boxes`, selection branch, and
//! LXMERT's `objects_*` / `attrs_*` fields.

mod host_golden;

use butd_host::numpy_sort::tie_counts;
use butd_host::select::{argmax_skip_first, select_boxes, unscale_boxes, SelectConfig};
use host_golden::{all_golden, assert_no_mismatch, Golden};

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check(g: &Golden) -> Vec<String> {
    let mut errors = Vec::new();
    let mut expect = |what: &str, equal: bool, detail: String| {
        if !equal {
            errors.push(format!("{what}: {detail}"));
        }
    };
    let im_scale: f64 = g.meta("im_scale").parse().expect("im_scale is a float");
    let boxes = unscale_boxes(&g.rois(), im_scale);
    let (shape, cls_prob) = g.f32("cls_prob");
    assert_eq!(shape[0], boxes.len(), "{}: cls_prob rows ≠ rois", g.name);
    let num_classes = shape[1];
    let sel = select_boxes(&boxes, &cls_prob, num_classes, &SelectConfig::default());

    let (_, max_conf) = g.f64("max_conf");
    let mc_diff = (0..max_conf.len().min(sel.max_conf.len()))
        .filter(|&i| max_conf[i].to_bits() != sel.max_conf[i].to_bits())
        .count();
    expect(
        "max_conf",
        max_conf.len() == sel.max_conf.len() && mc_diff == 0,
        format!(
            "{mc_diff} entries differ (lengths {} / {})",
            sel.max_conf.len(),
            max_conf.len()
        ),
    );
    let ties = tie_counts(&sel.max_conf);
    let golden_tied = g.index["max_conf_tied"]
        .as_u64()
        .expect("index.json: max_conf_tied");
    expect(
        "max_conf_tied",
        ties.tied as u64 == golden_tied,
        format!("{} vs {golden_tied}", ties.tied),
    );

    let (_, keep) = g.i64("keep");
    let ours: Vec<i64> = sel.keep.iter().map(|&k| k as i64).collect();
    expect("keep", ours == keep, format!("{ours:?} vs golden {keep:?}"));
    let branch = g.meta("selection");
    expect(
        "selection",
        sel.branch.as_str() == branch,
        format!("{} vs {branch}", sel.branch.as_str()),
    );

    let (_, golden_boxes) = g.f32("boxes");
    let kept_boxes: Vec<f32> = sel.keep.iter().flat_map(|&k| boxes[k]).collect();
    expect(
        "boxes",
        bits32(&kept_boxes) == bits32(&golden_boxes),
        format!("{kept_boxes:?}"),
    );

    for (prob, id, conf) in [
        ("cls_prob", "objects_id", "objects_conf"),
        ("attr_prob", "attrs_id", "attrs_conf"),
    ] {
        let (pshape, p) = g.f32(prob);
        let (ids, confs) = argmax_skip_first(&p, pshape[1], &sel.keep);
        let (_, want_ids) = g.i64(id);
        let (_, want_conf) = g.f32(conf);
        expect(
            id,
            ids == want_ids,
            format!("{ids:?} vs golden {want_ids:?}"),
        );
        expect(
            conf,
            bits32(&confs) == bits32(&want_conf),
            format!("{confs:?} vs {want_conf:?}"),
        );
    }
    errors
}

#[test]
fn selection_equals_golden_bit_for_bit_on_every_image() {
    let goldens: Vec<Golden> = all_golden()
        .into_iter()
        .filter(|g| g.has("cls_prob"))
        .collect();
    assert!(
        goldens.len() >= 8,
        "expected at least 8 golden images with cls_prob, found {}",
        goldens.len()
    );
    assert_no_mismatch(&goldens, "selection differs from generate_tsv", check);
    // Both branches of §6.3 are exercised by the golden set.
    let branches: std::collections::BTreeSet<&str> =
        goldens.iter().map(|g| g.meta("selection")).collect();
    assert!(
        branches.contains("threshold") && branches.contains("argsort_min_boxes"),
        "{branches:?}"
    );
}
