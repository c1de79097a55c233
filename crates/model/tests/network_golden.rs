//! The reference network against the real Caffe's outputs (`golden/`, README there), on
//! every golden image, on the CPU, with the synthetic weights converted by butd-mapping's
//! built-in Hugging Face mapping (so a pass proves mapping + model together).
//!
//! Tolerances (the issue's): activations max|Δ|/max|golden| ≤ 1e-4; rois in the same order
//! within 1e-3 px; final `keep` identical, `boxes` within 1e-3 px, `features` within 1e-4
//! relative, identical `objects_id` / `attrs_id`. Where rois differ, the test requires the
//! reordering to come from near-tied RPN scores (see `reorder_explained_by_ties`).
//!
//! Run with `-- --nocapture` for the per-image figures; `BUTD_GOLDEN_ONLY=<part of a name>`
//! restricts the run to matching images while working on one; `BUTD_TEST_DEVICE=cuda` runs the
//! network on a GPU (same tolerances; the default is the CPU).

use butd_testkit as support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use butd_model::detector::{
    parse_device, Activations, DetectError, DetectOptions, Detection, Detector,
};
use butd_model::proposals::proposal_layer;
use butd_model::roi_pool::roi_bins;
use safetensors::tensor::{Dtype, SafeTensors};
use tch::{Device, Tensor};

const ACTIVATION_TOL: f64 = 1e-4;
const BOX_TOL_PX: f64 = 1e-3;
const FEATURE_TOL: f64 = 1e-4;

fn detector() -> &'static Mutex<Detector> {
    static DETECTOR: OnceLock<Mutex<Detector>> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let weights = support::synthetic_hf_weights();
        let device = std::env::var("BUTD_TEST_DEVICE")
            .map_or(Ok(Device::Cpu), |d| parse_device(&d))
            .unwrap();
        Mutex::new(Detector::load(&weights, device).expect("the converted weights load"))
    })
}

/// One golden file's tensors (host values) and metadata.
struct Golden {
    tensors: HashMap<String, (Vec<usize>, Dtype, Vec<u8>)>,
    meta: HashMap<String, String>,
}

impl Golden {
    fn load(path: &Path) -> Golden {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                (
                    name,
                    (view.shape().to_vec(), view.dtype(), view.data().to_vec()),
                )
            })
            .collect();
        Golden {
            tensors,
            meta: metadata.metadata().clone().unwrap_or_default(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn shape(&self, name: &str) -> &[usize] {
        &self.tensors[name].0
    }

    fn f32(&self, name: &str) -> Vec<f32> {
        let (_, dtype, data) = &self.tensors[name];
        assert_eq!(*dtype, Dtype::F32, "{name}");
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn f64(&self, name: &str) -> Vec<f64> {
        let (_, dtype, data) = &self.tensors[name];
        assert_eq!(*dtype, Dtype::F64, "{name}");
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn i64(&self, name: &str) -> Vec<i64> {
        let (_, dtype, data) = &self.tensors[name];
        assert_eq!(*dtype, Dtype::I64, "{name}");
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

fn host(t: &Tensor) -> Vec<f32> {
    Vec::try_from(t.to_kind(tch::Kind::Float).contiguous().flatten(0, -1)).unwrap()
}

/// max|a − g| / max|g|.
fn rel_err(ours: &[f32], golden: &[f32]) -> f64 {
    assert_eq!(ours.len(), golden.len());
    let diff = ours
        .iter()
        .zip(golden)
        .map(|(a, g)| f64::from((a - g).abs()))
        .fold(0.0, f64::max);
    let scale = golden
        .iter()
        .map(|g| f64::from(g.abs()))
        .fold(0.0, f64::max);
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// Rows `rows` of an `n`-column matrix.
fn take_rows(m: &[f32], n: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| m[r * n..(r + 1) * n].iter().copied())
        .collect()
}

fn golden_roi(golden_rois: &[f32], j: usize) -> &[f32] {
    &golden_rois[j * 5 + 1..j * 5 + 5]
}

/// For each of our rois, the Caffe roi at the same place (within 1e-3 px): the one at the same
/// index if it matches, else the first unclaimed match anywhere.
fn match_rois(ours: &[[f32; 4]], golden_rois: &[f32]) -> Vec<Option<usize>> {
    let r = golden_rois.len() / 5;
    let same =
        |i: usize, j: usize| max_abs_diff(&ours[i], golden_roi(golden_rois, j)) <= BOX_TOL_PX;
    let mut claimed = vec![false; r];
    let mut matched: Vec<Option<usize>> = (0..ours.len())
        .map(|i| (i < r && same(i, i)).then_some(i))
        .collect();
    matched.iter().flatten().for_each(|&j| claimed[j] = true);
    for (i, m) in matched.iter_mut().enumerate() {
        if m.is_none() {
            *m = (0..r).find(|&j| !claimed[j] && same(i, j));
            if let Some(j) = *m {
                claimed[j] = true;
            }
        }
    }
    matched
}

/// The proposal layer on our rois' inputs.
fn replay_proposals(
    fg: &[f32],
    deltas: &[f32],
    shape: &[usize],
    im_info: [f32; 3],
) -> Vec<[f32; 4]> {
    proposal_layer(fg, deltas, shape[2], shape[3], im_info, &Default::default()).rois
}

/// When our rois are Caffe's in another order, this shows that a near-tie of RPN scores made
/// the difference: (1) the proposal layer on Caffe's own blobs gives Caffe's rois bit for bit
/// (so the layer is not the cause); (2) on our scores with Caffe's deltas it gives our order
/// (so the scores alone reorder); (3) every anchor pair that our scores order differently from
/// Caffe's is near-tied in Caffe's (gap ≤ the activation tolerance), and the widest such gap is
/// reported.
fn reorder_explained_by_ties(
    golden: &Golden,
    ours: &[[f32; 4]],
    ours_fg: &[f32],
    im_info: [f32; 3],
    report: &mut Vec<String>,
) -> bool {
    let shape = golden.shape("rpn_cls_prob_reshape").to_vec();
    let prob = golden.f32("rpn_cls_prob_reshape");
    let golden_fg = &prob[prob.len() / 2..];
    let golden_deltas = golden.f32("rpn_bbox_pred");
    let golden_rois = golden.f32("rois");

    let replay = replay_proposals(golden_fg, &golden_deltas, &shape, im_info);
    let replay_exact = replay.len() * 5 == golden_rois.len()
        && replay
            .iter()
            .enumerate()
            .all(|(j, b)| b[..] == *golden_roi(&golden_rois, j));
    let hybrid = replay_proposals(ours_fg, &golden_deltas, &shape, im_info);
    let scores_reorder = hybrid.len() == ours.len()
        && hybrid
            .iter()
            .zip(ours)
            .all(|(a, b)| max_abs_diff(a, b) <= BOX_TOL_PX);

    let mut order: Vec<usize> = (0..golden_fg.len()).collect();
    order.sort_by(|&a, &b| golden_fg[b].total_cmp(&golden_fg[a]));
    let (mut flips, mut widest_gap) = (0usize, 0f64);
    for (pos, &i) in order.iter().enumerate() {
        for &j in &order[pos + 1..] {
            let (gi, gj, oi, oj) = (golden_fg[i], golden_fg[j], ours_fg[i], ours_fg[j]);
            let gap = f64::from(gi - gj);
            if gap > 10.0 * ACTIVATION_TOL {
                break; // sorted: the rest are farther apart still
            }
            // Caffe ranks i at or above j; ours ranks j above, or ties/unties the pair.
            if (gi > gj && oi <= oj) || (gi == gj && oi != oj) {
                flips += 1;
                widest_gap = widest_gap.max(gap);
            }
        }
    }
    report.push(format!(
        "    reordered rois: proposal layer on Caffe's blobs = Caffe's rois: {replay_exact}; \
         on our scores + Caffe's deltas = our order: {scores_reorder}; \
         {flips} anchor pairs ordered differently, widest Caffe score gap {widest_gap:.2e}"
    ));
    replay_exact && scores_reorder && widest_gap <= ACTIVATION_TOL
}

struct Check<'a> {
    image: &'a str,
    report: Vec<String>,
    failures: Vec<String>,
}

impl Check<'_> {
    fn activation(&mut self, name: &str, ours: &[f32], golden: &[f32]) {
        let rel = rel_err(ours, golden);
        self.report
            .push(format!("    {name:<22} max rel err {rel:.2e}"));
        if rel > ACTIVATION_TOL {
            self.failures.push(format!(
                "{}: {name} rel err {rel:.2e} > {ACTIVATION_TOL:e}",
                self.image
            ));
        }
    }

    fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures
                .push(format!("{}: {}", self.image, what.into()));
        }
    }
}

fn check_image(det: &Detection, golden: &Golden, check: &mut Check) {
    let a = det
        .activations
        .as_ref()
        .expect("activations were asked for");
    let ours_prob = check_early(det, a, golden, check);
    let matched = check_rois(det, golden, &ours_prob, check);
    // Our row i ↔ Caffe's row matched[i], for every roi comparison below.
    let rows: RowPairs = matched
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.map(|j| (i, j)))
        .unzip();
    check_roi_heads(a, golden, &rows, check);
    let pairs: RowPairs = check_keep(det, golden, &matched, check).into_iter().unzip();
    check_max_conf(det, golden, &rows, check);
    check_final(det, golden, &pairs, check);
}

/// Rows of ours and the Caffe rows they stand for, pairwise.
type RowPairs = (Vec<usize>, Vec<usize>);

/// The network input (im_info, im_scale) and the dense activations up to the RPN; returns our
/// RPN scores, which the roi check needs.
fn check_early(det: &Detection, a: &Activations, golden: &Golden, check: &mut Check) -> Vec<f32> {
    let g_info = golden.f32("im_info");
    check.expect(
        det.input.im_info[..] == g_info[..],
        format!("im_info {:?} vs {g_info:?}", det.input.im_info),
    );
    check.expect(
        golden.meta.get("im_scale") == Some(&butd_formats::python_float_str(det.input.im_scale)),
        "im_scale metadata",
    );
    if golden.has("data") {
        check.activation("data", &host(&a.early.data), &golden.f32("data"));
    }
    if golden.has("res4b22") {
        check.activation("res4b22", &host(&a.early.res4b22), &golden.f32("res4b22"));
    }
    let ours_prob = host(&a.early.rpn_cls_prob_reshape);
    check.activation(
        "rpn_cls_prob_reshape",
        &ours_prob,
        &golden.f32("rpn_cls_prob_reshape"),
    );
    check.activation(
        "rpn_bbox_pred",
        &host(&a.early.rpn_bbox_pred),
        &golden.f32("rpn_bbox_pred"),
    );
    ours_prob
}

/// Our rois against Caffe's: each of ours found among Caffe's, any reordering explained by
/// near-tied RPN scores. Returns, for each of our rois, the Caffe roi it matches.
fn check_rois(
    det: &Detection,
    golden: &Golden,
    ours_prob: &[f32],
    check: &mut Check,
) -> Vec<Option<usize>> {
    let golden_rois = golden.f32("rois");
    let r = golden_rois.len() / 5;
    check.expect(
        det.rois.len() == r,
        format!("{} rois, Caffe {r}", det.rois.len()),
    );
    let matched = match_rois(&det.rois, &golden_rois);
    let in_place = matched
        .iter()
        .enumerate()
        .filter(|&(i, m)| *m == Some(i))
        .count();
    let unmatched = matched.iter().filter(|m| m.is_none()).count();
    let bitwise = det.rois.len() == r
        && det
            .rois
            .iter()
            .enumerate()
            .all(|(i, b)| b[..] == *golden_roi(&golden_rois, i));
    let roi_diff = (0..det.rois.len())
        .filter_map(|i| matched[i].map(|j| max_abs_diff(&det.rois[i], golden_roi(&golden_rois, j))))
        .fold(0.0, f64::max);
    check.report.push(format!(
        "    rois: {} ours vs {r} Caffe; same place within {BOX_TOL_PX} px: {in_place} in order, \
         {} elsewhere, {unmatched} not found; max |Δ| {roi_diff:.1e} px; bit for bit: {bitwise}",
        det.rois.len(),
        det.rois.len() - in_place - unmatched,
    ));
    check.expect(
        unmatched == 0,
        format!("{unmatched} of our rois are not among Caffe's"),
    );
    if in_place < det.rois.len() {
        let plane = ours_prob.len() / 24;
        let explained = reorder_explained_by_ties(
            golden,
            &det.rois,
            &ours_prob[12 * plane..],
            det.input.im_info,
            &mut check.report,
        );
        check.expect(
            explained,
            "rois are reordered and the reordering is not explained by near-tied RPN scores",
        );
    }
    matched
}

/// The per-roi heads (pool5_flat, cls_prob, attr_prob, predicted_cls) on matched rows.
fn check_roi_heads(a: &Activations, golden: &Golden, rows: &RowPairs, check: &mut Check) {
    let (ours_rows, golden_rows) = rows;
    if golden.has("pool5_flat") {
        check.activation(
            "pool5_flat",
            &take_rows(&host(&a.pool5_flat), 2048, ours_rows),
            &take_rows(&golden.f32("pool5_flat"), 2048, golden_rows),
        );
    }
    check.activation(
        "cls_prob",
        &take_rows(&host(&a.cls_prob), 1601, ours_rows),
        &take_rows(&golden.f32("cls_prob"), 1601, golden_rows),
    );
    check.activation(
        "attr_prob",
        &take_rows(&host(&a.attr_prob), 401, ours_rows),
        &take_rows(&golden.f32("attr_prob"), 401, golden_rows),
    );
    let ours_pc = host(&a.predicted_cls);
    let golden_pc = golden.f32("predicted_cls");
    let pc_same = ours_rows
        .iter()
        .zip(golden_rows)
        .filter(|&(&i, &j)| ours_pc[i] == golden_pc[j])
        .count();
    check.report.push(format!(
        "    predicted_cls equal on {pc_same}/{} rows",
        ours_rows.len()
    ));
    check.expect(pc_same == ours_rows.len(), "predicted_cls differs");
}

/// The final record's `keep` against Caffe's: the same rois, in the same order but for rois
/// the RPN near-tie reordered; and the selection branch. Returns (row of ours, row of Caffe's)
/// for each final region found in both.
fn check_keep(
    det: &Detection,
    golden: &Golden,
    matched: &[Option<usize>],
    check: &mut Check,
) -> Vec<(usize, usize)> {
    // `keep` names rois by index, so compare the Caffe rois they stand for. Positions may
    // differ only between rois that the RPN near-tie reordered (checked in check_rois).
    let keep: Vec<Option<usize>> = det.selection.keep.iter().map(|&k| matched[k]).collect();
    let golden_keep: Vec<usize> = golden.i64("keep").into_iter().map(|k| k as usize).collect();
    let reordered: Vec<usize> = matched
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.filter(|&j| j != i))
        .collect();
    // Row p of our record ↔ row q of Caffe's.
    let pairs: Vec<(usize, usize)> = keep
        .iter()
        .enumerate()
        .filter_map(|(p, k)| {
            k.and_then(|j| golden_keep.iter().position(|&g| g == j))
                .map(|q| (p, q))
        })
        .collect();
    let same_set = pairs.len() == keep.len() && keep.len() == golden_keep.len();
    let in_order = pairs.iter().all(|&(p, q)| p == q);
    let moves_explained = pairs
        .iter()
        .filter(|&&(p, q)| p != q)
        .all(|&(p, q)| reordered.contains(&golden_keep[p]) && reordered.contains(&golden_keep[q]));
    check.report.push(format!(
        "    keep: {} boxes ({}); the same rois as Caffe's: {same_set}, in the same order: {in_order}",
        keep.len(),
        det.selection.branch.as_str(),
    ));
    check.expect(
        same_set,
        format!("keep (as Caffe roi indices) {keep:?} vs Caffe {golden_keep:?}"),
    );
    check.expect(
        in_order || moves_explained,
        format!("keep order {keep:?} vs Caffe {golden_keep:?} differs beyond the near-tied rois"),
    );
    check.expect(
        golden.meta.get("selection").map(String::as_str) == Some(det.selection.branch.as_str()),
        "selection branch",
    );
    pairs
}

/// max_conf on matched rois: twins (overlapping rois whose ROI-pool bins are identical, §4.1,
/// so their pooled inputs are identical) get equal or ulp-close scores in every class; the
/// per-class NMS keeps whichever twin NumPy's introsort puts first, decided by those last
/// bits, so twins may swap their max_conf (§6.2). Any larger difference must be on such a twin.
fn check_max_conf(det: &Detection, golden: &Golden, rows: &RowPairs, check: &mut Check) {
    let golden_rois = golden.f32("rois");
    let r = golden_rois.len() / 5;
    let golden_max_conf = golden.f64("max_conf");
    let feat = golden.shape("rpn_bbox_pred");
    let bins: Vec<_> = (0..r)
        .map(|i| {
            let roi: [f32; 4] = golden_rois[i * 5 + 1..i * 5 + 5].try_into().unwrap();
            roi_bins(&roi, feat[2] as i64, feat[3] as i64)
        })
        .collect();
    let has_twin = |i: usize| (0..r).any(|j| j != i && bins[j] == bins[i]);
    let mut max_conf_diff = 0f64;
    let mut twin_swaps = 0;
    for (&i, &j) in rows.0.iter().zip(&rows.1) {
        let (ours, caffe) = (det.selection.max_conf[i], golden_max_conf[j]);
        let d = (ours - caffe).abs();
        max_conf_diff = max_conf_diff.max(d);
        if d > ACTIVATION_TOL {
            twin_swaps += 1;
            check.expect(
                has_twin(j),
                format!("max_conf of Caffe roi {j}: {ours} vs Caffe {caffe}, and the roi has no tied twin"),
            );
        }
    }
    check.report.push(format!(
        "    max_conf max |Δ| {max_conf_diff:.2e}; entries differing by > {ACTIVATION_TOL:e}: {twin_swaps} (tied twins)"
    ));
}

/// The final regions found in both records (`pairs`: our rows, Caffe's rows): boxes, features,
/// labels and their confidences.
fn check_final(det: &Detection, golden: &Golden, pairs: &RowPairs, check: &mut Check) {
    let (ours_p, golden_q) = pairs;
    let boxes: Vec<f32> = ours_p.iter().flat_map(|&p| det.boxes[p]).collect();
    let box_diff = max_abs_diff(&boxes, &take_rows(&golden.f32("boxes"), 4, golden_q));
    let feat_rel = rel_err(
        &take_rows(&det.features, 2048, ours_p),
        &take_rows(&golden.f32("features"), 2048, golden_q),
    );
    check.report.push(format!(
        "    boxes max |Δ| {box_diff:.2e} px, features max rel err {feat_rel:.2e}"
    ));
    check.expect(
        box_diff <= BOX_TOL_PX,
        format!("boxes differ by {box_diff} px"),
    );
    check.expect(
        feat_rel <= FEATURE_TOL,
        format!("features rel err {feat_rel:.2e}"),
    );
    let pick_i64 = |v: &[i64], rows: &[usize]| rows.iter().map(|&r| v[r]).collect::<Vec<_>>();
    let pick_f32 = |v: &[f32], rows: &[usize]| rows.iter().map(|&r| v[r]).collect::<Vec<_>>();
    let objects_same =
        pick_i64(&det.objects_id, ours_p) == pick_i64(&golden.i64("objects_id"), golden_q);
    let attrs_same = pick_i64(&det.attrs_id, ours_p) == pick_i64(&golden.i64("attrs_id"), golden_q);
    check.report.push(format!(
        "    objects_id identical: {objects_same}, attrs_id identical: {attrs_same}"
    ));
    check.expect(objects_same, "objects_id differ");
    check.expect(attrs_same, "attrs_id differ");
    let conf_rel = rel_err(
        &pick_f32(&det.objects_conf, ours_p),
        &pick_f32(&golden.f32("objects_conf"), golden_q),
    )
    .max(rel_err(
        &pick_f32(&det.attrs_conf, ours_p),
        &pick_f32(&golden.f32("attrs_conf"), golden_q),
    ));
    check.expect(
        conf_rel <= ACTIVATION_TOL,
        format!("objects/attrs conf rel err {conf_rel:.2e}"),
    );
}

#[test]
fn every_golden_image_matches_caffe() {
    let images: Vec<(String, u64)> = support::golden_images()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("chelsea_micro"))
        .filter(|(name, _)| {
            std::env::var("BUTD_GOLDEN_ONLY").map_or(true, |only| name.contains(&only))
        })
        .collect();
    let det = detector()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let opts = DetectOptions {
        dump_activations: true,
        ..DetectOptions::default()
    };
    let mut all_failures = Vec::new();
    for (name, tier) in &images {
        let stem = name.rsplit_once('.').unwrap().0;
        let golden = Golden::load(&support::golden_dir().join(format!("{stem}.safetensors")));
        let image =
            butd_preprocess::decode_file(&support::golden_dir().join("images").join(name)).unwrap();
        let start = std::time::Instant::now();
        let detection = det
            .detect(&image, &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut check = Check {
            image: name,
            report: Vec::new(),
            failures: Vec::new(),
        };
        check_image(&detection, &golden, &mut check);
        eprintln!(
            "{name} (tier {tier}, {:.1} s):",
            start.elapsed().as_secs_f64()
        );
        for line in &check.report {
            eprintln!("{line}");
        }
        all_failures.extend(check.failures);
    }
    assert!(
        all_failures.is_empty(),
        "golden mismatches:\n{}",
        all_failures.join("\n")
    );
}

#[test]
fn image_without_proposals_is_an_error_not_a_crash() {
    let image =
        butd_preprocess::decode_file(&support::golden_dir().join("images/chelsea_micro.png"))
            .unwrap();
    let golden = Golden::load(&support::golden_dir().join("chelsea_micro.safetensors"));
    assert_eq!(
        golden.shape("rois"),
        [0, 5],
        "Caffe's proposal layer returned no rois"
    );
    let det = detector()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match det.detect(&image, &DetectOptions::default()) {
        Err(e @ DetectError::NoProposals { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("no proposals") && message.contains("480"),
                "{message}"
            );
        }
        Err(e) => panic!("expected NoProposals, got {e}"),
        Ok(d) => panic!("expected NoProposals, got {} rois", d.rois.len()),
    }
}
