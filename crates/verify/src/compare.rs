//! Comparing one golden record with one candidate record.
use std::collections::BTreeSet;

use butd_host::select::argmax_skipping_background;

use crate::boxes::{format_box, Box4};
use crate::regions::{
    best_iou, inversions, match_boxes, role_of, Matching, FINAL_TENSORS, ROIS_TENSORS,
};
use crate::report::{
    cosine_histogram, Finding, HalfPrecision, ImageReport, Inversion, Kind, LabelDisagreement,
    RegionReport, RegionSet, Role, Severity, Status, TensorInfo, TensorReport, UnmatchedRegion,
};
use crate::resolution::within_resolution;
use crate::stats::{Accumulator, Stats};
use crate::thresholds::Thresholds;
use crate::ties::{self, Evidence, RoisDivergence, Verdict};
use butd_formats::tensors::{dtype_name, Record, Tensor};

/// How many regions / inversions a finding's message lists before "…".
const LIST_IN_MESSAGE: usize = 5;
/// How many inversions a region report keeps as examples.
const INVERSION_EXAMPLES: usize = 20;

struct Findings {
    image: String,
    list: Vec<Finding>,
}

impl Findings {
    fn push(&mut self, severity: Severity, kind: Kind, subject: &str, message: String) {
        self.push_cause(severity, kind, subject, message, None);
    }

    fn push_cause(
        &mut self,
        severity: Severity,
        kind: Kind,
        subject: &str,
        message: String,
        cause: Option<String>,
    ) {
        self.list.push(Finding {
            image: self.image.clone(),
            severity,
            kind,
            subject: subject.to_string(),
            message,
            cause,
        });
    }
}

fn info(t: &Tensor) -> TensorInfo {
    TensorInfo {
        dtype: dtype_name(t.dtype),
        shape: t.shape.clone(),
    }
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|x| x.to_string()).collect();
    if v.len() > LIST_IN_MESSAGE {
        format!(
            "{}, … ({} in all)",
            v[..LIST_IN_MESSAGE].join(", "),
            v.len()
        )
    } else {
        v.join(", ")
    }
}

/// Row tensors are comparable when everything but the row count agrees.
fn comparable(role: Role, g: &Tensor, c: &Tensor) -> bool {
    match role {
        Role::Dense => g.shape == c.shape,
        Role::Rois | Role::Final => {
            !g.shape.is_empty() && g.shape.len() == c.shape.len() && g.shape[1..] == c.shape[1..]
        }
    }
}

/// What a comparison leaves out because one side's format cannot hold it.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Tensors present on one side only because the other side's format has no place for them:
    /// neither compared nor reported missing (they stay available as tie evidence).
    pub not_carried: BTreeSet<String>,
}

/// Compares two records of the same image.
pub fn compare_records(image: &str, g: &Record, c: &Record, th: &Thresholds) -> ImageReport {
    compare_scoped(image, g, c, th, &Scope::default())
}

/// The image size a record states (`orig_h`, `orig_w` metadata), if it does.
pub(crate) fn image_size(rec: &Record) -> Option<(usize, usize)> {
    let dim = |k: &str| rec.metadata.get(k)?.parse().ok();
    Some((dim("orig_h")?, dim("orig_w")?))
}

/// [`compare_records`] leaving out what `scope` names.
pub fn compare_scoped(
    image: &str,
    g: &Record,
    c: &Record,
    th: &Thresholds,
    scope: &Scope,
) -> ImageReport {
    let mut f = Findings {
        image: image.to_string(),
        list: Vec::new(),
    };
    if let (Some(a), Some(b)) = (
        g.metadata.get("image_sha256"),
        c.metadata.get("image_sha256"),
    ) {
        if a != b {
            f.push(
                Severity::Fail,
                Kind::ImageMismatch,
                "",
                format!("image_sha256 differs: golden {a}, candidate {b} (not the same image)"),
            );
        }
    }
    if let (Some((gh, gw)), Some((ch, cw))) = (image_size(g), image_size(c)) {
        if (gh, gw) != (ch, cw) {
            f.push(
                Severity::Fail,
                Kind::ImageMismatch,
                "",
                format!(
                    "image size differs: golden {gw}×{gh}, candidate {cw}×{ch} (width × height; \
                     not the same image, or width and height swapped)"
                ),
            );
        }
    }
    let mut tensors = inventory(g, c, th, scope, &mut f);
    let golden_crash = g.get("rois").is_some_and(|t| t.rows() == 0);
    if golden_crash {
        check_crash_record(g, c, &mut f);
    }

    let ev = Evidence::new(g, c, th.ties.rel_eps);
    let mut regions = Vec::new();
    let mut rois_outcome: Option<(RoisDivergence, Verdict)> = None;
    for set in [RegionSet::Rois, RegionSet::Final] {
        let (Some(gb), Some(cb)) = (set.boxes(g), set.boxes(c)) else {
            continue;
        };
        let (report, outcome) = compare_set(
            set,
            &gb,
            &cb,
            &ev,
            th,
            rois_outcome.as_ref(),
            &mut tensors,
            &mut f,
        );
        regions.push(report);
        if let Some(o) = outcome {
            rois_outcome = Some(o);
        }
    }
    gate_tensors(&mut tensors, th, &mut f);

    let status = match f.list.iter().map(|x| x.severity).max() {
        Some(Severity::Fail) => Status::Fail,
        Some(Severity::Tie) => Status::Tie,
        _ => Status::Pass,
    };
    ImageReport {
        image: image.to_string(),
        status,
        tensors,
        regions,
        findings: f.list,
    }
}

/// Golden vs candidate values at flat positions `g_at..` / `c_at..`, candidate values moved
/// into the golden's rounding intervals where a side holds 16-bit values
/// ([`within_resolution`]); feeds `acc` and returns how the half precision was applied.
fn accumulate(
    acc: &mut Accumulator,
    (gt, g_at): (&Tensor, usize),
    (ct, c_at): (&Tensor, usize),
    n: usize,
) -> Option<HalfPrecision> {
    let (gv, cv) = (&gt.values[g_at..g_at + n], &ct.values[c_at..c_at + n]);
    let (gr, cr) = (gt.resolution.as_ref(), ct.resolution.as_ref());
    match within_resolution(gv, gr, g_at, cv, cr, c_at, gt.row_len()) {
        None => {
            acc.add(gv, cv, g_at);
            None
        }
        Some((adjusted, max_allowance)) => {
            acc.add(gv, &adjusted, g_at);
            let sides = match (gr, cr) {
                (Some(_), Some(_)) => "both",
                (Some(_), None) => "golden",
                _ => "candidate",
            };
            let format = gr.or(cr).map(|r| r.half)?;
            Some(HalfPrecision {
                sides: sides.into(),
                format,
                max_allowance,
            })
        }
    }
}

/// Tensors on one side only, and dtypes that differ, gathered over the inventory and reported
/// as one finding each.
#[derive(Default)]
struct Unpaired<'a> {
    missing_required: Vec<&'a str>,
    missing_optional: Vec<&'a str>,
    extra: Vec<&'a str>,
    dtypes: Vec<String>,
}

impl Unpaired<'_> {
    fn report(self, th: &Thresholds, f: &mut Findings) {
        if !self.missing_required.is_empty() {
            f.push(
                Severity::Fail,
                Kind::MissingTensor,
                "",
                format!(
                    "required tensor(s) missing in the candidate: {}",
                    list(self.missing_required)
                ),
            );
        }
        if !self.missing_optional.is_empty() {
            let (severity, why) = if th.required.all {
                (Severity::Fail, "--require-all / [required] all = true")
            } else {
                (Severity::Warn, "compared only when present")
            };
            f.push(
                severity,
                Kind::MissingTensor,
                "",
                format!(
                    "not in the candidate ({why}): {}",
                    list(self.missing_optional)
                ),
            );
        }
        if !self.extra.is_empty() {
            f.push(
                Severity::Info,
                Kind::ExtraTensor,
                "",
                format!("only in the candidate, not compared: {}", list(self.extra)),
            );
        }
        if !self.dtypes.is_empty() {
            f.push(
                Severity::Warn,
                Kind::Dtype,
                "",
                format!(
                    "dtype differs (values compared as f64): {}",
                    list(self.dtypes)
                ),
            );
        }
    }
}

/// Presence, dtype, shape, non-finite values and element-wise stats of every tensor.
fn inventory(
    g: &Record,
    c: &Record,
    th: &Thresholds,
    scope: &Scope,
    f: &mut Findings,
) -> Vec<TensorReport> {
    let names: BTreeSet<&str> = g
        .tensors
        .keys()
        .chain(c.tensors.keys())
        .map(String::as_str)
        .filter(|n| !scope.not_carried.contains(*n))
        .collect();
    let mut unpaired = Unpaired::default();
    let mut out = Vec::new();
    for name in names {
        let role = role_of(name);
        let (gt, ct) = (g.get(name), c.get(name));
        let (mut by_index, mut half_precision) = (None, None);
        match (gt, ct) {
            (Some(_), None) if th.required.tensors.iter().any(|r| r == name) => {
                unpaired.missing_required.push(name)
            }
            (Some(_), None) => unpaired.missing_optional.push(name),
            (None, _) => unpaired.extra.push(name),
            (Some(gt), Some(ct)) => {
                if gt.dtype != ct.dtype {
                    unpaired.dtypes.push(format!(
                        "{name} {} vs golden {}",
                        dtype_name(ct.dtype),
                        dtype_name(gt.dtype)
                    ));
                }
                (by_index, half_precision) = compare_by_index(name, role, gt, ct, f);
            }
        }
        out.push(TensorReport {
            name: name.to_string(),
            role,
            golden: gt.map(info),
            candidate: ct.map(info),
            by_index,
            matched: None,
            gate: None,
            half_precision,
        });
    }
    unpaired.report(th, f);
    out
}

/// Element-wise stats of a tensor both sides have (its shape permitting), with the findings on
/// shape and non-finite candidate values.
fn compare_by_index(
    name: &str,
    role: Role,
    gt: &Tensor,
    ct: &Tensor,
    f: &mut Findings,
) -> (Option<Stats>, Option<HalfPrecision>) {
    let mut by_index = None;
    let mut half_precision = None;
    if comparable(role, gt, ct) {
        let n = if role == Role::Dense {
            gt.values.len()
        } else {
            gt.rows().min(ct.rows()) * gt.row_len()
        };
        let mut acc = Accumulator::default();
        half_precision = accumulate(&mut acc, (gt, 0), (ct, 0), n);
        by_index = Some(acc.finish());
    } else {
        f.push(
            Severity::Fail,
            Kind::Shape,
            name,
            format!("shape {:?}, golden {:?}", ct.shape, gt.shape),
        );
    }
    let whole = gt.shape == ct.shape;
    let nonfinite = match &by_index {
        Some(s) if whole => s.nonfinite,
        _ => ct.nonfinite(),
    };
    if nonfinite > 0 {
        let first = ct.values.iter().position(|v| !v.is_finite()).unwrap_or(0);
        f.push(
            Severity::Fail,
            Kind::Nonfinite,
            name,
            format!("{nonfinite} NaN/inf value(s) in the candidate, first at flat index {first}"),
        );
    }
    (by_index, half_precision)
}

/// The golden run died after a proposal layer that returned no rois (README "Crash record"):
/// a candidate passes by reporting no proposals either (no region rows, or no region tensors).
fn check_crash_record(g: &Record, c: &Record, f: &mut Findings) {
    let rows: Vec<String> = ROIS_TENSORS
        .iter()
        .chain(FINAL_TENSORS.iter())
        .filter_map(|&n| {
            c.get(n)
                .filter(|t| t.rows() > 0)
                .map(|t| format!("{n} ({} rows)", t.rows()))
        })
        .collect();
    if !rows.is_empty() {
        let why = g
            .metadata
            .get("caffe_result")
            .map_or(String::new(), |r| format!(" ({r})"));
        f.push(
            Severity::Fail,
            Kind::CrashRecord,
            "",
            format!(
                "the golden run has no proposals{why}; a candidate must report none, but has {}",
                list(rows)
            ),
        );
    }
}

/// Region tensors usable for matched comparison: on both sides, comparable shapes, and as many
/// rows as the set has regions on each side (a mismatch there is a shape failure).
fn usable_set_tensors(
    set: RegionSet,
    g: &Record,
    c: &Record,
    counts: (usize, usize),
    f: &mut Findings,
) -> Vec<&'static str> {
    let anchor = set.box_source().0;
    let mut out = Vec::new();
    for &name in set.tensors() {
        let mut consistent = true;
        for (side, rec, count) in [("golden", g, counts.0), ("candidate", c, counts.1)] {
            if let Some(t) = rec
                .get(name)
                .filter(|t| !t.shape.is_empty() && t.rows() != count)
            {
                f.push(
                    Severity::Fail,
                    Kind::Shape,
                    name,
                    format!(
                        "{side} has {} rows but its `{anchor}` has {count}",
                        t.rows()
                    ),
                );
                consistent = false;
            }
        }
        if let (Some(gt), Some(ct)) = (g.get(name), c.get(name)) {
            if consistent && comparable(set.role(), gt, ct) {
                out.push(name);
            }
        }
    }
    out
}

/// LXMERT's label of a roi's probability row (`butd_host`'s argmax without background).
fn argmax_from_1(row: &[f64]) -> i64 {
    argmax_skipping_background(row).map_or(-1, |(c, _)| c as i64)
}

/// One region set's comparison: what every step reads.
struct SetCx<'a> {
    set: RegionSet,
    gb: &'a [Box4],
    cb: &'a [Box4],
    ev: &'a Evidence<'a>,
    m: &'a Matching,
    rules: &'a crate::thresholds::SetRules,
}

#[allow(clippy::too_many_arguments)]
fn compare_set(
    set: RegionSet,
    gb: &[Box4],
    cb: &[Box4],
    ev: &Evidence,
    th: &Thresholds,
    rois_outcome: Option<&(RoisDivergence, Verdict)>,
    tensors: &mut [TensorReport],
    f: &mut Findings,
) -> (RegionReport, Option<(RoisDivergence, Verdict)>) {
    let (g, c) = (ev.golden(), ev.candidate());
    let usable = usable_set_tensors(set, g, c, (gb.len(), cb.len()), f);
    let mut m = match_boxes(gb, cb, th.matching.min_iou);
    if set == RegionSet::Rois {
        ties::split_distinct_proposals(ev, gb, cb, &mut m);
    }
    let cosines = matched_row_stats(set, g, c, &m, &usable, tensors);
    let max_box_diff = m
        .pairs
        .iter()
        .flat_map(|p| gb[p.g].iter().zip(&cb[p.c]).map(|(a, b)| (a - b).abs()))
        .reduce(f64::max);

    let inv = inversions(&m.pairs);
    let mut verdict = match set {
        RegionSet::Rois => ties::explain_rois(ev, gb, cb, &m, &inv),
        RegionSet::Final => {
            let empty = RoisDivergence::default();
            let rois = rois_outcome.map_or(&empty, |o| &o.0);
            ties::explain_final(ev, gb, cb, &m, &inv, rois)
        }
    };
    if set == RegionSet::Final && th.ties.nms_swaps {
        ties::explain_nms_swaps(gb, cb, &m, &mut verdict);
    }
    let rules = match set {
        RegionSet::Rois => &th.rois,
        RegionSet::Final => &th.final_records,
    };
    if let Some(min) = rules.min_matched.filter(|_| !gb.is_empty()) {
        let share = m.pairs.len() as f64 / gb.len() as f64;
        if share < min {
            f.push(
                Severity::Fail,
                Kind::Unmatched,
                set.name(),
                format!(
                    "{} of {} golden regions matched ({:.1} %), below min_matched = {min}",
                    m.pairs.len(),
                    gb.len(),
                    100.0 * share
                ),
            );
        }
    }
    let cx = SetCx {
        set,
        gb,
        cb,
        ev,
        m: &m,
        rules,
    };
    let (unmatched_golden, unmatched_candidate) = report_unmatched(&cx, &verdict, f);
    let (examples, explained_inv) = report_order(&cx, &inv, &verdict, f);
    let (mut labels_compared, mut disagreements) = compare_labels(&cx, th, &usable, f);
    if set == RegionSet::Final && th.labels.keep && usable.contains(&"keep") {
        check_keep(
            ev,
            &m,
            gb,
            rois_outcome,
            &mut disagreements,
            &mut labels_compared,
            f,
        );
    }

    let report = RegionReport {
        set,
        golden_count: gb.len(),
        candidate_count: cb.len(),
        matched: m.pairs.len(),
        same_indexing: gb.len() == cb.len()
            && m.pairs.iter().all(|p| p.g == p.c)
            && m.pairs.len() == gb.len(),
        min_iou: m.pairs.iter().map(|p| p.iou).reduce(f64::min),
        max_box_diff,
        min_feature_cosine: cosines.iter().copied().reduce(f64::min),
        mean_feature_cosine: (!cosines.is_empty())
            .then(|| cosines.iter().sum::<f64>() / cosines.len() as f64),
        cosine_histogram: cosine_histogram(cosines),
        inversions: inv.len(),
        inversions_tie_explained: explained_inv,
        inversion_examples: examples,
        unmatched_golden,
        unmatched_candidate,
        labels_compared,
        label_disagreements: disagreements,
    };
    let outcome =
        (set == RegionSet::Rois).then(|| (ties::rois_divergence(ev, cb, &m, &verdict), verdict));
    (report, outcome)
}

/// Statistics of the matched rows of every usable per-region tensor (into `tensors`), and the
/// per-pair cosine of the set's feature tensor.
fn matched_row_stats(
    set: RegionSet,
    g: &Record,
    c: &Record,
    m: &Matching,
    usable: &[&str],
    tensors: &mut [TensorReport],
) -> Vec<f64> {
    let feature = set.feature_tensor();
    let mut cosines = Vec::new();
    for name in usable {
        let (gt, ct) = (&g.tensors[*name], &c.tensors[*name]);
        let n = gt.row_len();
        let mut acc = Accumulator::default();
        let mut half = None;
        for p in &m.pairs {
            let mut row = Accumulator::default();
            let h = accumulate(&mut row, (gt, p.g * n), (ct, p.c * n), n);
            half = HalfPrecision::merge(half, h);
            if *name == feature {
                cosines.push(row.cosine());
            }
            acc.merge(&row);
        }
        if let Some(t) = tensors.iter_mut().find(|t| t.name == *name) {
            t.matched = Some(acc.finish());
            t.half_precision = HalfPrecision::merge(t.half_precision.take(), half);
        }
    }
    cosines
}

/// The regions of either side without a match, and one finding for the unexplained ones and
/// one for the tie-explained ones.
fn report_unmatched(
    cx: &SetCx,
    verdict: &Verdict,
    f: &mut Findings,
) -> (Vec<UnmatchedRegion>, Vec<UnmatchedRegion>) {
    let (gb, cb, m) = (cx.gb, cx.cb, cx.m);
    let unmatched = |idx: &[usize], boxes: &[Box4], other: &[Box4], causes: &[Option<String>]| {
        idx.iter()
            .zip(causes)
            .map(|(&i, cause)| UnmatchedRegion {
                index: i,
                bbox: boxes[i],
                best_iou: best_iou(&boxes[i], other),
                cause: cause.clone(),
            })
            .collect::<Vec<_>>()
    };
    let unmatched_golden = unmatched(&m.unmatched_golden, gb, cb, &verdict.golden);
    let unmatched_candidate = unmatched(&m.unmatched_candidate, cb, gb, &verdict.candidate);
    for explained in [false, true] {
        let pick = |v: &[UnmatchedRegion]| -> Vec<String> {
            v.iter()
                .filter(|u| u.cause.is_some() == explained)
                .map(|u| format!("#{} {}", u.index, format_box(&u.bbox)))
                .collect()
        };
        let (ug, uc) = (pick(&unmatched_golden), pick(&unmatched_candidate));
        if ug.is_empty() && uc.is_empty() {
            continue;
        }
        let mut msg = format!(
            "{} golden vs {} candidate regions, {} matched",
            gb.len(),
            cb.len(),
            m.pairs.len()
        );
        if !ug.is_empty() {
            msg += &format!("; golden regions without a match: {}", list(&ug));
        }
        if !uc.is_empty() {
            msg += &format!("; candidate regions without a match: {}", list(&uc));
        }
        let first_cause = unmatched_golden
            .iter()
            .chain(&unmatched_candidate)
            .find_map(|u| u.cause.clone());
        let (severity, cause) = if explained {
            (Severity::Tie, first_cause)
        } else if cx.rules.same_set {
            (Severity::Fail, None)
        } else {
            (Severity::Warn, None)
        };
        f.push_cause(severity, Kind::Unmatched, cx.set.name(), msg, cause);
    }
    (unmatched_golden, unmatched_candidate)
}

/// Order inversions among matched pairs: examples (explained last) and the count explained by
/// near-ties; one finding each for the unexplained and the explained ones.
fn report_order(
    cx: &SetCx,
    inv: &[(usize, usize)],
    verdict: &Verdict,
    f: &mut Findings,
) -> (Vec<Inversion>, usize) {
    let (m, subject) = (cx.m, cx.set.name());
    let mut examples: Vec<Inversion> = inv
        .iter()
        .zip(&verdict.inversions)
        .map(|(&(p, q), cause)| Inversion {
            golden: [m.pairs[p].g, m.pairs[q].g],
            candidate: [m.pairs[p].c, m.pairs[q].c],
            cause: cause.clone(),
        })
        .collect();
    examples.sort_by_key(|e| (e.cause.is_some(), e.golden));
    let explained_inv = verdict.inversions.iter().filter(|c| c.is_some()).count();
    let unexplained_inv = inv.len() - explained_inv;
    if unexplained_inv > 0 {
        let e = &examples[0];
        f.push(
            if cx.rules.same_order {
                Severity::Fail
            } else {
                Severity::Warn
            },
            Kind::Order,
            subject,
            format!(
                "order differs: {unexplained_inv} swapped pair(s) not explained by a tie; first: \
                 golden #{} and #{} are candidate #{} and #{}",
                e.golden[0], e.golden[1], e.candidate[0], e.candidate[1]
            ),
        );
    }
    if explained_inv > 0 {
        let e = examples.iter().find(|e| e.cause.is_some());
        f.push_cause(
            Severity::Tie,
            Kind::Order,
            subject,
            format!("order differs: {explained_inv} swapped pair(s) explained by near-ties"),
            e.and_then(|e| e.cause.clone()),
        );
    }
    examples.truncate(INVERSION_EXAMPLES);
    (examples, explained_inv)
}

/// The labels compared on the set's matched pairs: (label, golden probability tensor that
/// explains a disagreement, gated). Final regions: the gated exact labels; rois: the argmax of
/// `cls_prob` / `attr_prob` (reported, not gated).
fn label_sources(
    set: RegionSet,
    th: &Thresholds,
    usable: &[&str],
) -> Vec<(String, &'static str, bool)> {
    match set {
        RegionSet::Final => th
            .labels
            .exact
            .iter()
            .chain(th.labels.min_agreement.keys())
            .filter(|n| usable.contains(&n.as_str()))
            .map(|n| {
                let prob = match n.as_str() {
                    "objects_id" => "cls_prob",
                    "attrs_id" => "attr_prob",
                    _ => "",
                };
                (n.clone(), prob, true)
            })
            .collect(),
        RegionSet::Rois => ["cls_prob", "attr_prob"]
            .into_iter()
            .filter(|n| usable.contains(n))
            .map(|n| (format!("{n}.argmax"), n, false))
            .collect(),
    }
}

/// Compares the labels of matched pairs ([`label_sources`]); returns how many were compared
/// and the disagreements, with a finding per gated label that has any.
fn compare_labels(
    cx: &SetCx,
    th: &Thresholds,
    usable: &[&str],
    f: &mut Findings,
) -> (usize, Vec<LabelDisagreement>) {
    let (ev, m, set) = (cx.ev, cx.m, cx.set);
    let (g, c) = (ev.golden(), ev.candidate());
    let mut labels_compared = 0;
    let mut disagreements = Vec::new();
    let golden_rois: Vec<Option<usize>> = match set {
        RegionSet::Rois => (0..cx.gb.len()).map(Some).collect(),
        RegionSet::Final => ties::golden_final_rois(ev, cx.gb),
    };
    for (label, prob, gated) in &label_sources(set, th, usable) {
        let values = |rec: &Record, row: usize| -> i64 {
            match set {
                RegionSet::Final => rec.tensors[label.as_str()].values[row] as i64,
                RegionSet::Rois => argmax_from_1(rec.tensors[*prob].row(row)),
            }
        };
        let mut explained = Vec::new();
        let mut unexplained = Vec::new();
        for p in &m.pairs {
            labels_compared += 1;
            let (a, b) = (values(g, p.g), values(c, p.c));
            if a == b {
                continue;
            }
            let cause = ties::explain_label(ev, prob, golden_rois[p.g], b)
                .or_else(|| ties::explain_half_label(ev, label, (p.g, p.c), (a, b)));
            let line = format!(
                "#{}→#{} {}→{}",
                p.g,
                p.c,
                crate::names::named(label, a),
                crate::names::named(label, b)
            );
            if cause.is_some() {
                explained.push(line);
            } else {
                unexplained.push(line);
            }
            disagreements.push(LabelDisagreement {
                label: label.clone(),
                golden_index: p.g,
                candidate_index: p.c,
                bbox: cx.gb[p.g],
                golden: a,
                candidate: b,
                cause,
            });
        }
        let min_agreement = th.labels.min_agreement.get(label.as_str());
        if let (Some(&min), true) = (min_agreement, *gated && !th.labels.exact.contains(label)) {
            let agree = 1.0 - unexplained.len() as f64 / m.pairs.len().max(1) as f64;
            if agree < min || !unexplained.is_empty() {
                f.push(
                    if agree < min {
                        Severity::Fail
                    } else {
                        Severity::Warn
                    },
                    Kind::Label,
                    label,
                    format!(
                        "{} of {} matched regions disagree ({:.1} % agree, min_agreement = \
                         {min}): {}",
                        unexplained.len(),
                        m.pairs.len(),
                        100.0 * agree,
                        list(&unexplained)
                    ),
                );
            }
        } else if *gated && !unexplained.is_empty() {
            f.push(
                Severity::Fail,
                Kind::Label,
                label,
                format!(
                    "{} of {} matched regions disagree (golden→candidate index, label): {}",
                    unexplained.len(),
                    m.pairs.len(),
                    list(&unexplained)
                ),
            );
        }
        if *gated && !explained.is_empty() {
            let cause = disagreements.iter().rev().find_map(|d| d.cause.clone());
            f.push_cause(
                Severity::Tie,
                Kind::Label,
                label,
                format!(
                    "{} label(s) differ at an argmax near-tie: {}",
                    explained.len(),
                    list(&explained)
                ),
                cause,
            );
        }
    }
    (labels_compared, disagreements)
}

/// `keep` holds roi indices: equal on matched final regions unless the rois themselves moved.
fn check_keep(
    ev: &Evidence,
    m: &Matching,
    gb: &[Box4],
    rois_outcome: Option<&(RoisDivergence, Verdict)>,
    disagreements: &mut Vec<LabelDisagreement>,
    labels_compared: &mut usize,
    f: &mut Findings,
) {
    let (gk, ck) = (
        &ev.golden().tensors["keep"],
        &ev.candidate().tensors["keep"],
    );
    let rois_verdict = rois_outcome.map(|o| &o.1).filter(|v| v.diverged());
    let cause = rois_verdict
        .filter(|v| v.all_explained())
        .map(|_| "rois: the roi indices moved with the tie-explained rois divergence".to_string());
    let mut lines = Vec::new();
    for p in &m.pairs {
        *labels_compared += 1;
        let (a, b) = (gk.values[p.g] as i64, ck.values[p.c] as i64);
        if a != b {
            lines.push(format!("#{}→#{} {a}→{b}", p.g, p.c));
            disagreements.push(LabelDisagreement {
                label: "keep".into(),
                golden_index: p.g,
                candidate_index: p.c,
                bbox: gb[p.g],
                golden: a,
                candidate: b,
                cause: cause.clone(),
            });
        }
    }
    if lines.is_empty() {
        return;
    }
    let mut msg = format!(
        "{} matched region(s) come from another roi index (golden→candidate index, keep): {}",
        lines.len(),
        list(&lines)
    );
    let severity = match (rois_verdict, &cause) {
        (_, Some(_)) => Severity::Tie,
        (Some(_), None) => {
            msg += "; follows the unexplained rois divergence";
            Severity::Fail
        }
        (None, None) => Severity::Fail,
    };
    f.push_cause(severity, Kind::Keep, "keep", msg, cause);
}

/// Checks each bounded tensor's gated figure against `parity.toml`.
fn gate_tensors(tensors: &mut [TensorReport], th: &Thresholds, f: &mut Findings) {
    for t in tensors.iter_mut() {
        let Some((metric, limit)) = th.limit(&t.name) else {
            continue;
        };
        let Some(stats) = t.gated_stats() else {
            continue;
        };
        let check = metric.check(stats, limit);
        if !check.passed {
            let row_len = t
                .golden
                .as_ref()
                .map_or(1, |g| g.shape.iter().skip(1).product::<usize>().max(1));
            let at = match (t.role, stats.worst_index) {
                (Role::Dense, Some(i)) => format!(", worst at flat index {i}"),
                (_, Some(i)) => format!(
                    ", worst at golden row {} column {}",
                    i / row_len,
                    i % row_len
                ),
                (_, None) => String::new(),
            };
            let over = if t.matched.is_some() {
                "matched rows"
            } else {
                "all elements"
            };
            f.push(
                Severity::Fail,
                Kind::Tolerance,
                &t.name,
                format!(
                    "{} = {:.3e} > {limit:e} over {over} (max|Δ| {:.3e}, max|golden| {:.3e}){at}",
                    metric.label(),
                    check.value,
                    stats.max_abs_diff,
                    stats.max_abs_golden
                ),
            );
        }
        t.gate = Some(check);
    }
}

/// The report of an image whose inputs could not be read: one `unreadable` failure per message.
pub(crate) fn unreadable(image: &str, messages: impl IntoIterator<Item = String>) -> ImageReport {
    let findings = messages
        .into_iter()
        .map(|message| Finding {
            image: image.to_string(),
            severity: Severity::Fail,
            kind: Kind::Unreadable,
            subject: String::new(),
            message,
            cause: None,
        })
        .collect();
    ImageReport {
        image: image.to_string(),
        status: Status::Fail,
        tensors: Vec::new(),
        regions: Vec::new(),
        findings,
    }
}
