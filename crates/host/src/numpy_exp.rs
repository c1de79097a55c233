//! NumPy 1.26's SIMD float32 `exp` (the AVX2/FMA3 and AVX-512F kernel `simd_exp_FLOAT`), which
//! decoded the golden proposals (§3 step 2, "Which expf").
//!
//! It is not correctly rounded: it differs from the exact value by up to 2 ulp on 39 % of the
//! golden dw/dh inputs, and libm's `expf` would leave 1-ulp errors in dozens of `rois` rows per
//! image. This transcription uses one rounding per operation and `f32::mul_add` where the kernel
//! uses a fused multiply-add, so it reproduces the kernel's bits.

// The kernel's constants as f32 bit patterns (§3 step 2), converted where used.

/// At or above this (88.72283935546875), the kernel returns +inf (`x ≥ xmax`).
const XMAX: u32 = 0x42B1_7218;
/// At or below this (−103.97208404541015625), the kernel returns 0 (`x ≤ xmin`).
const XMIN: u32 = 0xC2CF_F1B5;
/// `log2(e)`.
const LOG2E: u32 = 0x3FB8_AA3B;
/// `1.5 · 2^23`: adding and subtracting it rounds to an integer, half to even.
const CVT_MAGIC: u32 = 0x4B40_0000;
/// Cody–Waite split of `−ln 2`, high and low part.
const LN2_NEG: [u32; 2] = [0xBF31_7200, 0xB5BF_BE8E];
/// Numerator coefficients of the rational approximation, highest degree first (P5..P0).
const P: [u32; 6] = [
    0x3A05_3DD8,
    0x3BDD_7159,
    0x3D51_7D8C,
    0x3E7D_4C58,
    0x3F39_CBD5,
    0x3F80_0000,
];
/// Denominator coefficients, highest degree first (Q2..Q0).
const Q: [u32; 3] = [0x3CB0_E832, 0xBE8C_6857, 0x3F80_0000];
/// Below this exponent the result is subnormal and the kernel scales in two steps.
const MIN_NORMAL_QUADRANT: i32 = -125;

fn f(bits: u32) -> f32 {
    f32::from_bits(bits)
}

/// Horner's scheme with one fused multiply-add per coefficient, as the kernel evaluates both
/// polynomials.
fn horner_fma(coefficients: &[u32], r: f32) -> f32 {
    coefficients[1..]
        .iter()
        .fold(f(coefficients[0]), |acc, &c| acc.mul_add(r, f(c)))
}

/// `np.exp` on a float32 value, bit for bit as NumPy 1.26's SIMD kernel (§3 step 2).
///
/// NaN in gives NaN out (the kernel computes on 0 in NaN lanes, then writes NaN back).
pub fn numpy_exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x >= f(XMAX) {
        return f32::INFINITY;
    }
    if x <= f(XMIN) {
        return 0.0;
    }
    let quadrant = ((x * f(LOG2E)) + f(CVT_MAGIC)) - f(CVT_MAGIC);
    let r = quadrant.mul_add(f(LN2_NEG[0]), x);
    let r = quadrant.mul_add(f(LN2_NEG[1]), r);
    scale_by_power_of_two(horner_fma(&P, r) / horner_fma(&Q, r), quadrant as i32)
}

/// `poly · 2^q` as the kernel's `scalef` does it: for a normal result, adding q to the exponent
/// field (exact); for a subnormal one, scaling to `2^−125` first and then dividing by the rest, so
/// that the only rounding is the final one.
fn scale_by_power_of_two(poly: f32, q: i32) -> f32 {
    let add_exponent = |v: f32, e: i32| f32::from_bits(v.to_bits().wrapping_add((e << 23) as u32));
    if q > MIN_NORMAL_QUADRANT {
        add_exponent(poly, q)
    } else {
        let divisor = f32::from_bits(((127 + (MIN_NORMAL_QUADRANT - q)) as u32) << 23);
        add_exponent(poly, MIN_NORMAL_QUADRANT) / divisor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite, same-signed, non-negative floats.
    fn ulp_distance(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn special_values() {
        assert!(numpy_exp_f32(f32::NAN).is_nan());
        assert_eq!(numpy_exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(numpy_exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(numpy_exp_f32(0.0), 1.0);
        assert_eq!(numpy_exp_f32(-0.0), 1.0);
        assert_eq!(numpy_exp_f32(f(XMAX)), f32::INFINITY);
        assert_eq!(numpy_exp_f32(1000.0), f32::INFINITY);
        assert_eq!(numpy_exp_f32(f(XMIN)), 0.0);
        assert_eq!(numpy_exp_f32(-1000.0), 0.0);
        // Just below xmax the result is the largest finite region, not inf.
        let below_max = numpy_exp_f32(f32::from_bits(XMAX - 1));
        assert!(below_max.is_finite() && below_max > 3.4e38);
        // Just above xmin the result is a tiny subnormal, not 0.
        let above_min = numpy_exp_f32(f32::from_bits(XMIN - 1));
        assert!(above_min > 0.0 && above_min < f32::MIN_POSITIVE);
    }

    /// Within 2 ulp of the exact value everywhere the result is normal (the kernel's documented
    /// accuracy), and within 1 subnormal step of it below.
    #[test]
    fn sweep_is_within_two_ulp_of_f64_exp() {
        let mut worst = 0;
        let mut x = -103.9f32;
        while x < 88.7 {
            let got = numpy_exp_f32(x);
            let exact = (x as f64).exp();
            let rounded = exact as f32;
            let d = ulp_distance(got, rounded);
            if rounded >= f32::MIN_POSITIVE {
                assert!(d <= 2, "exp({x:e}) = {got:e}, exact {exact:e}: {d} ulp");
                worst = worst.max(d);
            } else {
                assert!(
                    d <= 1,
                    "subnormal exp({x:e}) = {got:e}, exact {exact:e}: {d} steps"
                );
            }
            x += 0.000_731;
        }
        assert!(
            worst >= 1,
            "a sweep with no error at all means the kernel is not emulated"
        );
    }

    /// The range that matters for box decoding (dw, dh of a few units) is dense-checked.
    #[test]
    fn decode_range_is_within_two_ulp() {
        for k in -400_000..=400_000 {
            let x = k as f32 * 1.0e-5;
            let d = ulp_distance(numpy_exp_f32(x), (x as f64).exp() as f32);
            assert!(d <= 2, "exp({x:e}): {d} ulp");
        }
    }
}
