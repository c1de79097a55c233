//! Winoground (Thrush et al. 2022): a model's 2×2 image–caption scores per example (JSONL
//! schema in docs/verify.md), its text / image / group outcomes, and two runs compared.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{mcnemar_exact, ScoresError};

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
pub fn read_winoground_jsonl(path: &Path) -> Result<Vec<WinogroundScores>, ScoresError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScoresError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let err = |line: usize, message: String| ScoresError::Line {
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
) -> Result<ScoresReport, ScoresError> {
    let bmap: BTreeMap<&str, &WinogroundScores> = b.iter().map(|x| (x.id.as_str(), x)).collect();
    let amap: BTreeSet<&str> = a.iter().map(|x| x.id.as_str()).collect();
    let only = |ids: Vec<&str>, path: &Path, other: &Path| ScoresError::Ids {
        path: path.to_path_buf(),
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
    fn an_example_is_right_only_when_every_diagonal_score_wins() {
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
