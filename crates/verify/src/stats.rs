//! Element-wise error statistics between a golden and a candidate tensor (or the rows of matched
//! regions).
use serde::{Deserialize, Serialize};

/// Errors of a candidate against a golden tensor, over the positions where both are finite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Positions compared (both values finite).
    pub n: usize,
    pub max_abs_diff: f64,
    pub max_abs_golden: f64,
    /// `max_abs_diff / max_abs_golden`; 0 when both are 0, infinite (JSON `null`) when only
    /// the golden is all zero.
    #[serde(with = "finite_or_null")]
    pub max_rel: f64,
    pub mean_abs_diff: f64,
    /// Cosine of the two tensors as flat vectors (1 when both are all zero, 0 when one is).
    pub cosine: f64,
    /// Positions whose values are not equal, non-finite ones included.
    pub mismatches: usize,
    /// Positions where the candidate is NaN/±inf and the golden is not that same value.
    pub nonfinite: usize,
    /// Flat position of `max_abs_diff` (in the golden's indexing), if any value differs.
    pub worst_index: Option<usize>,
}

/// Running sums behind [`Stats`]; feed it slices, possibly several (matched rows).
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    n: usize,
    max_abs_diff: f64,
    max_abs_golden: f64,
    sum_abs_diff: f64,
    dot: f64,
    norm_g: f64,
    norm_c: f64,
    mismatches: usize,
    nonfinite: usize,
    worst_index: Option<usize>,
}

impl Accumulator {
    /// Adds `golden[k]` vs `candidate[k]`; `offset + k` is the position reported as worst.
    pub fn add(&mut self, golden: &[f64], candidate: &[f64], offset: usize) {
        let n = golden.len().min(candidate.len());
        let (golden, candidate) = (&golden[..n], &candidate[..n]);
        if !self.add_finite(golden, candidate, offset) {
            self.add_checked(golden, candidate, offset);
        }
    }

    /// Fast path for slices without NaN/inf: independent lanes keep the loop pipelined and
    /// branch-free. Returns false, having changed nothing, when a value is not finite.
    fn add_finite(&mut self, golden: &[f64], candidate: &[f64], offset: usize) -> bool {
        const L: usize = 4;
        let (mut sum, mut dot, mut ng, mut nc) =
            ([0.0f64; L], [0.0f64; L], [0.0f64; L], [0.0f64; L]);
        let (mut max_d, mut max_g) = ([0.0f64; L], [0.0f64; L]);
        let mut mismatches = [0usize; L];
        let mut finite = true;
        let tail = golden.len() - golden.len() % L;
        for (gc, cc) in golden[..tail]
            .chunks_exact(L)
            .zip(candidate[..tail].chunks_exact(L))
        {
            for k in 0..L {
                let (g, c) = (gc[k], cc[k]);
                finite &= g.is_finite() & c.is_finite();
                let d = (g - c).abs();
                sum[k] += d;
                max_d[k] = max_d[k].max(d);
                max_g[k] = max_g[k].max(g.abs());
                dot[k] += g * c;
                ng[k] += g * g;
                nc[k] += c * c;
                mismatches[k] += usize::from(g != c);
            }
        }
        for (&g, &c) in golden[tail..].iter().zip(&candidate[tail..]) {
            finite &= g.is_finite() & c.is_finite();
            let d = (g - c).abs();
            sum[0] += d;
            max_d[0] = max_d[0].max(d);
            max_g[0] = max_g[0].max(g.abs());
            dot[0] += g * c;
            ng[0] += g * g;
            nc[0] += c * c;
            mismatches[0] += usize::from(g != c);
        }
        if !finite {
            return false;
        }
        let total = |v: [f64; L]| v.iter().sum::<f64>();
        let top = |v: [f64; L]| v.iter().copied().fold(0.0, f64::max);
        self.n += golden.len();
        self.sum_abs_diff += total(sum);
        self.dot += total(dot);
        self.norm_g += total(ng);
        self.norm_c += total(nc);
        self.mismatches += mismatches.iter().sum::<usize>();
        self.max_abs_golden = self.max_abs_golden.max(top(max_g));
        let m = top(max_d);
        if m > self.max_abs_diff {
            self.max_abs_diff = m;
            self.worst_index = golden
                .iter()
                .zip(candidate)
                .position(|(g, c)| (g - c).abs() == m)
                .map(|k| offset + k);
        }
        true
    }

    fn add_checked(&mut self, golden: &[f64], candidate: &[f64], offset: usize) {
        for (k, (&g, &c)) in golden.iter().zip(candidate).enumerate() {
            let same = g == c || (g.is_nan() && c.is_nan());
            if !same {
                self.mismatches += 1;
            }
            if !(g.is_finite() && c.is_finite()) {
                if !same && !c.is_finite() {
                    self.nonfinite += 1;
                }
                continue;
            }
            let d = (g - c).abs();
            self.n += 1;
            self.sum_abs_diff += d;
            if d > self.max_abs_diff {
                self.max_abs_diff = d;
                self.worst_index = Some(offset + k);
            }
            self.max_abs_golden = self.max_abs_golden.max(g.abs());
            self.dot += g * c;
            self.norm_g += g * g;
            self.norm_c += c * c;
        }
    }

    /// Cosine of everything added so far.
    pub fn cosine(&self) -> f64 {
        cosine_from_sums(self.dot, self.norm_g, self.norm_c)
    }

    /// Adds another accumulator's sums (positions in `other` keep their own offsets).
    pub fn merge(&mut self, other: &Accumulator) {
        self.n += other.n;
        self.sum_abs_diff += other.sum_abs_diff;
        self.dot += other.dot;
        self.norm_g += other.norm_g;
        self.norm_c += other.norm_c;
        self.mismatches += other.mismatches;
        self.nonfinite += other.nonfinite;
        self.max_abs_golden = self.max_abs_golden.max(other.max_abs_golden);
        if other.max_abs_diff > self.max_abs_diff {
            self.max_abs_diff = other.max_abs_diff;
            self.worst_index = other.worst_index;
        }
    }

    pub fn finish(&self) -> Stats {
        let max_rel = if self.max_abs_diff == 0.0 {
            0.0
        } else {
            self.max_abs_diff / self.max_abs_golden
        };
        Stats {
            n: self.n,
            max_abs_diff: self.max_abs_diff,
            max_abs_golden: self.max_abs_golden,
            max_rel,
            mean_abs_diff: if self.n == 0 {
                0.0
            } else {
                self.sum_abs_diff / self.n as f64
            },
            cosine: cosine_from_sums(self.dot, self.norm_g, self.norm_c),
            mismatches: self.mismatches,
            nonfinite: self.nonfinite,
            worst_index: self.worst_index,
        }
    }
}

/// `dot / sqrt(|g|² |c|²)`, so that identical vectors give exactly 1 (sqrt(x²) = x in IEEE).
fn cosine_from_sums(dot: f64, norm_g: f64, norm_c: f64) -> f64 {
    match (norm_g == 0.0, norm_c == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => (dot / (norm_g * norm_c).sqrt()).clamp(-1.0, 1.0),
    }
}

/// Stats of two whole equal-shape tensors.
#[cfg(test)]
pub fn compare(golden: &[f64], candidate: &[f64]) -> Stats {
    let mut acc = Accumulator::default();
    acc.add(golden, candidate, 0);
    acc.finish()
}

/// JSON has no infinity: +inf is written as `null` and read back as +inf.
pub(crate) mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_tensors_have_zero_error_and_cosine_exactly_one() {
        let g: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin() * 3.1).collect();
        let s = compare(&g, &g);
        assert_eq!(
            (s.max_abs_diff, s.max_rel, s.mean_abs_diff, s.cosine),
            (0.0, 0.0, 0.0, 1.0)
        );
        assert_eq!((s.mismatches, s.nonfinite, s.worst_index), (0, 0, None));
    }

    #[test]
    fn hand_computed_errors() {
        // |Δ| = 0, 0.5, 0, 2 ; max |golden| = 4.
        let g = [1.0, -2.0, 3.0, 4.0];
        let c = [1.0, -2.5, 3.0, 2.0];
        let s = compare(&g, &c);
        assert_eq!(s.max_abs_diff, 2.0);
        assert_eq!(s.max_rel, 0.5);
        assert_eq!(s.mean_abs_diff, 2.5 / 4.0);
        assert_eq!(s.worst_index, Some(3));
        assert_eq!(s.mismatches, 2);
        let dot = 1.0 + 5.0 + 9.0 + 8.0;
        let want = dot / ((1.0f64 + 4.0 + 9.0 + 16.0) * (1.0 + 6.25 + 9.0 + 4.0)).sqrt();
        assert!((s.cosine - want).abs() < 1e-15);
    }

    #[test]
    fn fast_and_checked_paths_agree() {
        let g: Vec<f64> = (0..1003)
            .map(|i| ((i * 7919) % 113) as f64 * 0.013 - 0.7)
            .collect();
        let c: Vec<f64> = g
            .iter()
            .enumerate()
            .map(|(i, v)| v + ((i * 31) % 17) as f64 * 1e-5)
            .collect();
        let mut fast = Accumulator::default();
        assert!(fast.add_finite(&g, &c, 5));
        let mut checked = Accumulator::default();
        checked.add_checked(&g, &c, 5);
        let (a, b) = (fast.finish(), checked.finish());
        assert_eq!(
            (a.n, a.mismatches, a.worst_index),
            (b.n, b.mismatches, b.worst_index)
        );
        assert_eq!(
            (a.max_abs_diff, a.max_abs_golden),
            (b.max_abs_diff, b.max_abs_golden)
        );
        for (x, y) in [(a.mean_abs_diff, b.mean_abs_diff), (a.cosine, b.cosine)] {
            assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
        }
    }

    #[test]
    fn merged_rows_equal_one_pass() {
        let g = [1.0, -2.0, 3.0, 4.0, 0.5, 0.25];
        let c = [1.0, -2.5, 3.0, 2.0, 0.5, 0.0];
        let mut whole = Accumulator::default();
        whole.add(&g, &c, 0);
        let mut rows = Accumulator::default();
        for r in 0..3 {
            let mut row = Accumulator::default();
            row.add(&g[2 * r..2 * r + 2], &c[2 * r..2 * r + 2], 2 * r);
            rows.merge(&row);
        }
        assert_eq!(whole.finish(), rows.finish());
    }

    #[test]
    fn nan_in_candidate_is_counted_not_averaged() {
        let s = compare(&[1.0, 2.0, f64::NAN], &[f64::NAN, 2.0, f64::NAN]);
        assert_eq!((s.n, s.nonfinite, s.mismatches), (1, 1, 1));
        assert_eq!(s.max_abs_diff, 0.0);
    }

    #[test]
    fn all_zero_golden_gives_infinite_relative_error_serialised_as_null() {
        let s = compare(&[0.0, 0.0], &[0.0, 1e-3]);
        assert!(s.max_rel.is_infinite());
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"max_rel\":null"), "{json}");
        let back: Stats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
