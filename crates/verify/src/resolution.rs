//! Values that went through a 16-bit float: UNITER's img_db stores float16 (`docs/formats.md`
//! (c)), and a record may hold F16/BF16 tensors. Such a value does not stand for
//! one real number but for every real that rounds to it, so two values agree when their rounding
//! intervals overlap, and a difference counts only by how far it goes beyond them
//! (docs/verify.md, "Half-precision sources").
use serde::{Deserialize, Serialize};

/// Which 16-bit format a value was stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Half {
    F16,
    BF16,
}

impl Half {
    pub fn name(self) -> &'static str {
        match self {
            Half::F16 => "float16",
            Half::BF16 => "bfloat16",
        }
    }

    /// Unit roundoff: the largest relative error of rounding to nearest in the normal range
    /// (2^-11 for float16, 2^-8 for bfloat16).
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Half::F16 => 2f64.powi(-11),
            Half::BF16 => 2f64.powi(-8),
        }
    }

    /// `(v, bits)` of the 16-bit value nearest to `x ≥ 0`.
    fn round(self, x: f64) -> (f64, u16) {
        match self {
            Half::F16 => {
                let h = half::f16::from_f64(x);
                (h.to_f64(), h.to_bits())
            }
            Half::BF16 => {
                let h = half::bf16::from_f64(x);
                (h.to_f64(), h.to_bits())
            }
        }
    }

    fn value_of_bits(self, bits: u16) -> f64 {
        match self {
            Half::F16 => half::f16::from_bits(bits).to_f64(),
            Half::BF16 => half::bf16::from_bits(bits).to_f64(),
        }
    }

    /// The closed interval of reals that round to nearest to the 16-bit value `q` (`q` itself
    /// when it is not representable is first rounded). Midpoints are included on both sides:
    /// ties-to-even decides them, and a tolerance should not hinge on it.
    pub fn interval(self, q: f64) -> (f64, f64) {
        if q.is_nan() {
            return (q, q);
        }
        if q < 0.0 {
            let (lo, hi) = self.interval(-q);
            return (-hi, -lo);
        }
        let (v, bits) = self.round(q);
        if v.is_infinite() {
            return (v, v);
        }
        // Positive 16-bit floats order like their bit patterns; below +0 comes −(smallest
        // subnormal).
        let down = if bits == 0 {
            -self.value_of_bits(1)
        } else {
            self.value_of_bits(bits - 1)
        };
        let up = self.value_of_bits(bits + 1);
        // Above the largest finite value, the gap continues as below it (values up to there
        // still round down to it, not to infinity).
        let up = if up.is_infinite() { v + (v - down) } else { up };
        ((down + v) / 2.0, (v + up) / 2.0)
    }
}

/// How a tensor's values relate to the 16-bit numbers they were stored as: value = stored ×
/// `scales[column]` (UNITER's boxes are normalised by the image size, so their pixel values are
/// the float16 numbers times the width or height), give or take `slack_rel` · |value| of
/// float32 arithmetic done before the rounding (the normalisation itself).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub half: Half,
    /// Per column (cycled over the row); `[1.0]` for values stored as they are.
    pub scales: Vec<f64>,
    pub slack_rel: f64,
}

impl Resolution {
    /// Values stored in `half` as they are.
    pub fn plain(half: Half) -> Resolution {
        Resolution {
            half,
            scales: vec![1.0],
            slack_rel: 0.0,
        }
    }

    /// The reals the stored value `v` of column `col` stands for.
    pub fn interval(&self, v: f64, col: usize) -> (f64, f64) {
        let s = self.scales[col % self.scales.len()];
        let (lo, hi) = self.half.interval(v / s);
        let slack = self.slack_rel * v.abs();
        (lo * s - slack, hi * s + slack)
    }
}

/// Candidate values `c` moved towards the golden values `g` by the width of their rounding
/// intervals (`None` for a side stored at full precision): an overlap leaves no difference, a
/// gap leaves the gap. `g_at` / `c_at` are the flat positions of the first values in their
/// tensors and `row_len` the row length, which give each value's column. Returns the adjusted
/// candidate values and the largest allowance (half-widths of the two intervals added) used;
/// `None` when neither side has a resolution. Non-finite values are left alone.
#[allow(clippy::too_many_arguments)]
pub fn within_resolution(
    g: &[f64],
    g_res: Option<&Resolution>,
    g_at: usize,
    c: &[f64],
    c_res: Option<&Resolution>,
    c_at: usize,
    row_len: usize,
) -> Option<(Vec<f64>, f64)> {
    if g_res.is_none() && c_res.is_none() {
        return None;
    }
    let row_len = row_len.max(1);
    let span = |res: Option<&Resolution>, v: f64, at: usize| {
        res.map_or((v, v), |r| r.interval(v, at % row_len))
    };
    let mut widest = 0.0f64;
    let adjusted = g
        .iter()
        .zip(c)
        .enumerate()
        .map(|(k, (&gv, &cv))| {
            if !(gv.is_finite() && cv.is_finite()) {
                return cv;
            }
            let (glo, ghi) = span(g_res, gv, g_at + k);
            let (clo, chi) = span(c_res, cv, c_at + k);
            widest = widest.max((ghi - glo + chi - clo) / 2.0);
            if clo > ghi {
                gv + (clo - ghi)
            } else if glo > chi {
                gv - (glo - chi)
            } else {
                gv
            }
        })
        .collect();
    Some((adjusted, widest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn f16_interval_is_half_an_ulp_each_side() {
        // 1.0: the spacing is 2^-10 above and 2^-11 below.
        let (lo, hi) = Half::F16.interval(1.0);
        assert_eq!((lo, hi), (1.0 - 2f64.powi(-12), 1.0 + 2f64.powi(-11)));
        // Every f32 that rounds to a given f16 lies inside its interval, the next ones outside.
        for bits in [0x0001u16, 0x03ff, 0x0400, 0x3555, 0x3c00, 0x5a3f, 0x7bfe] {
            let q = f16::from_bits(bits).to_f64();
            let (lo, hi) = Half::F16.interval(q);
            for x in [lo, (lo + q) / 2.0, q, (q + hi) / 2.0, hi] {
                let r = f16::from_f64(x).to_f64();
                assert!(r == q || x == lo || x == hi, "{bits:#x}: {x} rounds to {r}");
            }
            let out = [lo - (hi - lo) * 1e-3, hi + (hi - lo) * 1e-3];
            assert!(out.iter().all(|&x| f16::from_f64(x).to_f64() != q));
        }
    }

    #[test]
    fn intervals_are_symmetric_in_sign_and_cover_zero() {
        let (lo, hi) = Half::F16.interval(-3.5);
        let (plo, phi) = Half::F16.interval(3.5);
        assert_eq!((lo, hi), (-phi, -plo));
        let (lo, hi) = Half::F16.interval(0.0);
        let tiny = f16::from_bits(1).to_f64();
        assert_eq!((lo, hi), (-tiny / 2.0, tiny / 2.0));
        // The largest finite value keeps a finite interval.
        assert!(Half::F16.interval(65504.0).1.is_finite());
        let (lo, hi) = Half::BF16.interval(1.0);
        assert_eq!((lo, hi), (1.0 - 2f64.powi(-9), 1.0 + 2f64.powi(-8)));
    }

    #[test]
    fn differences_shrink_by_the_interval() {
        let res = Resolution::plain(Half::F16);
        let g = [1.0, 1.0, 1.0, f64::NAN];
        // Inside the interval, just outside it, far outside, NaN.
        let c = [1.0 + 4e-4, 1.0 + 2f64.powi(-11) + 1e-6, 0.9, 1.0];
        let (adj, widest) = within_resolution(&g, Some(&res), 0, &c, None, 0, 1).unwrap();
        assert_eq!(adj[0], 1.0);
        assert!((adj[1] - (1.0 + 1e-6)).abs() < 1e-15);
        assert!((adj[2] - (0.9 + 2f64.powi(-12))).abs() < 1e-15);
        assert_eq!(adj[3], 1.0);
        assert_eq!(widest, (2f64.powi(-11) + 2f64.powi(-12)) / 2.0);
        assert!(within_resolution(&g, None, 0, &c, None, 0, 1).is_none());
    }

    #[test]
    fn scaled_columns_use_their_own_scale() {
        // A box normalised by w = 640, h = 41: x columns scale by 640, y columns by 41.
        let res = Resolution {
            half: Half::F16,
            scales: vec![640.0, 41.0],
            slack_rel: 0.0,
        };
        let q = f16::from_f64(0.3).to_f64();
        let (lo, hi) = res.interval(q * 640.0, 0);
        let (ylo, yhi) = res.interval(q * 41.0, 1);
        assert!(((hi - lo) / (yhi - ylo) - 640.0 / 41.0).abs() < 1e-9);
        // Position 3 of a 2-column tensor is column 1.
        let (adj, _) =
            within_resolution(&[q * 41.0], Some(&res), 3, &[q * 41.0 + 0.001], None, 0, 2).unwrap();
        assert_eq!(adj[0], q * 41.0);
    }
}
