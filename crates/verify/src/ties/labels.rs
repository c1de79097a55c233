//! Labels that differ on a matched pair: a near-tied argmax in the golden run, or 16-bit scores
//! that cannot order the two labels.
use super::Evidence;

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
