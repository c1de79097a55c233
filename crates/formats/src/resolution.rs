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
}
