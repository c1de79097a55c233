//! Downstream accuracy parity: Winoground scores of a model run on two feature sets, paired
//! differences and an exact McNemar test (`butd verify scores`, JSONL schema in docs/verify.md).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::VerifyError;

/// One Winoground example: the model's image–caption scores s(caption, image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WinogroundScores {
    pub id: String,
    pub c0_i0: f64,
    pub c0_i1: f64,
    pub c1_i0: f64,
    pub c1_i1: f64,
}

/// Per-example correctness (Thrush et al. 2022).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Each image prefers its own caption: s(c0,i0) > s(c1,i0) and s(c1,i1) > s(c0,i1).
    pub text: bool,
    /// Each caption prefers its own image: s(c0,i0) > s(c0,i1) and s(c1,i1) > s(c1,i0).
    pub image: bool,
    /// Both.
    pub group: bool,
}

impl WinogroundScores {
    pub fn outcome(&self) -> Outcome {
        let text = self.c0_i0 > self.c1_i0 && self.c1_i1 > self.c0_i1;
        let image = self.c0_i0 > self.c0_i1 && self.c1_i1 > self.c1_i0;
        Outcome {
            text,
            image,
            group: text && image,
        }
    }
}

#[derive(Deserialize)]
struct Line {
    id: serde_json::Value,
    c0_i0: f64,
    c0_i1: f64,
    c1_i0: f64,
    c1_i1: f64,
}

/// Reads a JSONL file of [`WinogroundScores`] (blank lines skipped, other keys ignored).
pub fn read_winoground_jsonl(path: &Path) -> Result<Vec<WinogroundScores>, VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|e| VerifyError::io(path, e))?;
    let err = |line: usize, message: String| VerifyError::Scores {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (k, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(raw).map_err(|e| {
            err(
                k + 1,
                format!("{e}; expected {{\"id\": …, \"c0_i0\": f, \"c0_i1\": f, \"c1_i0\": f, \"c1_i1\": f}}"),
            )
        })?;
        let id = match l.id {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(err(
                    k + 1,
                    format!("id {other} is neither a string nor a number"),
                ))
            }
        };
        for (name, v) in [
            ("c0_i0", l.c0_i0),
            ("c0_i1", l.c0_i1),
            ("c1_i0", l.c1_i0),
            ("c1_i1", l.c1_i1),
        ] {
            if !v.is_finite() {
                return Err(err(k + 1, format!("{name} = {v} is not a finite number")));
            }
        }
        if !seen.insert(id.clone()) {
            return Err(err(k + 1, format!("id {id} appears twice")));
        }
        out.push(WinogroundScores {
            id,
            c0_i0: l.c0_i0,
            c0_i1: l.c0_i1,
            c1_i0: l.c1_i0,
            c1_i1: l.c1_i1,
        });
    }
    Ok(out)
}

/// Exact two-sided McNemar test: the binomial test of `a_only` successes among the
/// `a_only + b_only` discordant pairs at p = ½, i.e. `min(1, 2 · P[X ≤ min(a_only, b_only)])`.
pub fn mcnemar_exact(a_only: usize, b_only: usize) -> f64 {
    let n = a_only + b_only;
    if n == 0 {
        return 1.0;
    }
    let k = a_only.min(b_only);
    // ln C(n, i) for i = 0..=k, summed in log space so large n neither overflows nor underflows.
    let mut ln_c = 0.0f64;
    let mut terms = Vec::with_capacity(k + 1);
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_c);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ln_sum = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (2.0 * (ln_sum - n as f64 * std::f64::consts::LN_2).exp()).min(1.0)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricComparison {
    /// `text`, `image` or `group`.
    pub metric: String,
    /// Fraction of examples correct with feature set A / B.
    pub a: f64,
    pub b: f64,
    /// `b − a`.
    pub diff: f64,
    /// Examples correct under A only / under B only (the discordant pairs).
    pub a_only: usize,
    pub b_only: usize,
    pub mcnemar_p: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoresReport {
    pub task: String,
    pub examples: usize,
    pub metrics: Vec<MetricComparison>,
    /// Ids whose (text, image, group) outcome differs between A and B.
    pub differing: Vec<String>,
}

impl ScoresReport {
    pub fn identical(&self) -> bool {
        self.differing.is_empty()
    }
}

/// Pairs the examples of A and B by id (both files must hold the same ids) and compares them.
pub fn compare_winoground(
    a: &[WinogroundScores],
    b: &[WinogroundScores],
    path_a: &Path,
    path_b: &Path,
) -> Result<ScoresReport, VerifyError> {
    let bmap: BTreeMap<&str, &WinogroundScores> = b.iter().map(|x| (x.id.as_str(), x)).collect();
    let amap: BTreeSet<&str> = a.iter().map(|x| x.id.as_str()).collect();
    let only = |ids: Vec<&str>, path: &Path, other: &Path| VerifyError::Scores {
        path: path.to_path_buf(),
        line: 0,
        message: format!(
            "{} id(s) missing from {}: {}",
            ids.len(),
            other.display(),
            ids.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        ),
    };
    let a_only_ids: Vec<&str> = amap
        .iter()
        .filter(|id| !bmap.contains_key(*id))
        .copied()
        .collect();
    if !a_only_ids.is_empty() {
        return Err(only(a_only_ids, path_a, path_b));
    }
    let b_only_ids: Vec<&str> = bmap
        .keys()
        .filter(|id| !amap.contains(*id))
        .copied()
        .collect();
    if !b_only_ids.is_empty() {
        return Err(only(b_only_ids, path_b, path_a));
    }
    let pairs: Vec<(&str, Outcome, Outcome)> = a
        .iter()
        .map(|x| (x.id.as_str(), x.outcome(), bmap[x.id.as_str()].outcome()))
        .collect();
    let n = pairs.len();
    let metric = |name: &str, get: fn(&Outcome) -> bool| {
        let ca = pairs.iter().filter(|p| get(&p.1)).count();
        let cb = pairs.iter().filter(|p| get(&p.2)).count();
        let a_only = pairs.iter().filter(|p| get(&p.1) && !get(&p.2)).count();
        let b_only = pairs.iter().filter(|p| !get(&p.1) && get(&p.2)).count();
        let frac = |c: usize| if n == 0 { 0.0 } else { c as f64 / n as f64 };
        MetricComparison {
            metric: name.to_string(),
            a: frac(ca),
            b: frac(cb),
            diff: frac(cb) - frac(ca),
            a_only,
            b_only,
            mcnemar_p: mcnemar_exact(a_only, b_only),
        }
    };
    Ok(ScoresReport {
        task: "winoground".into(),
        examples: n,
        metrics: vec![
            metric("text", |o| o.text),
            metric("image", |o| o.image),
            metric("group", |o| o.group),
        ],
        differing: pairs
            .iter()
            .filter(|p| p.1 != p.2)
            .map(|p| p.0.to_string())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_hand_computed() {
        // n = 6, k = 1: 2 · (1 + 6) / 64.
        assert!((mcnemar_exact(1, 5) - 14.0 / 64.0).abs() < 1e-15);
        assert!((mcnemar_exact(5, 1) - 14.0 / 64.0).abs() < 1e-15);
        // n = 3, k = 0: 2 / 8.
        assert!((mcnemar_exact(0, 3) - 0.25).abs() < 1e-15);
        // n = 10, k = 0: 2 / 1024.
        assert!((mcnemar_exact(10, 0) - 2.0 / 1024.0).abs() < 1e-17);
        // Balanced discordance caps at 1.
        assert_eq!(mcnemar_exact(2, 2), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large n stays finite: 2 · Σ_{i≤400} C(1000, i) / 2^1000, summed exactly with Python
        // integers (fractions.Fraction): 2.7284641560660184e-10.
        let p = mcnemar_exact(400, 600);
        assert!((p / 2.728_464_156_066_018_4e-10 - 1.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn outcome_rules() {
        let s = |a, b, c, d| WinogroundScores {
            id: "x".into(),
            c0_i0: a,
            c0_i1: b,
            c1_i0: c,
            c1_i1: d,
        };
        // Diagonal wins everywhere.
        assert_eq!(
            s(0.9, 0.1, 0.2, 0.8).outcome(),
            Outcome {
                text: true,
                image: true,
                group: true
            }
        );
        // Image i0 prefers c0 and i1 prefers c1 (text), but caption c1 prefers i0 (image fails).
        assert_eq!(
            s(0.9, 0.1, 0.85, 0.8).outcome(),
            Outcome {
                text: true,
                image: false,
                group: false
            }
        );
        // Ties are not wins.
        assert_eq!(
            s(0.5, 0.5, 0.5, 0.5).outcome(),
            Outcome {
                text: false,
                image: false,
                group: false
            }
        );
    }
}
