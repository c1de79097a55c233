//! Mean subtraction of `_get_image_blob` (§1.2), done before resizing.

/// `cfg.PIXEL_MEANS` in B, G, R order, float64 as in the config.
pub const PIXEL_MEANS_BGR: [f64; 3] = [102.9801, 115.9465, 122.7717];

/// `im.astype(float32) -= PIXEL_MEANS` for one value (§1.2): NumPy computes the in-place
/// subtraction with the float64 operand in float64 and rounds the result to float32 once, which is
/// not the same as a float32 subtraction of `f32(mean)`.
pub fn subtract_mean_f64(pixel: u8, mean: f64) -> f32 {
    (f64::from(pixel) - mean) as f32
}

/// Every possible result of [`subtract_mean_f64`]: a uint8 channel has only 256 values.
pub(crate) struct MeanTable([[f32; 256]; 3]);

impl MeanTable {
    pub(crate) fn new(means: [f64; 3]) -> Self {
        Self(means.map(|mean| std::array::from_fn(|p| subtract_mean_f64(p as u8, mean))))
    }

    /// One BGR row of uint8 pixels, mean-subtracted, into `out` (same length).
    pub(crate) fn apply_row(&self, row: &[u8], out: &mut [f32]) {
        for (o, px) in out.chunks_exact_mut(3).zip(row.chunks_exact(3)) {
            for c in 0..3 {
                o[c] = self.0[c][usize::from(px[c])];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_subtraction_rounds_once_from_f64() {
        // §1.2: NumPy's f64 difference rounded once to f32. Each result must be the nearest f32
        // to the f64 difference, and the f32-arithmetic formula must differ in 384 of the 768
        // values, as §1.2 measured with NumPy 1.26.
        let mut differ = 0;
        for mean in PIXEL_MEANS_BGR {
            for p in 0..=255u8 {
                let exact = f64::from(p) - mean;
                let ours = subtract_mean_f64(p, mean);
                // Correct rounding: no f32 is closer to the f64 difference than ours.
                let below = f32::from_bits(ours.to_bits().wrapping_sub(1));
                let above = f32::from_bits(ours.to_bits().wrapping_add(1));
                let err = (f64::from(ours) - exact).abs();
                assert!(err <= (f64::from(below) - exact).abs(), "p={p} mean={mean}");
                assert!(err <= (f64::from(above) - exact).abs(), "p={p} mean={mean}");
                if ours != f32::from(p) - mean as f32 {
                    differ += 1;
                }
            }
        }
        // §1.2 reports 384 of 768 values differing between the two formulas.
        assert_eq!(differ, 384);
    }

    #[test]
    fn table_matches_the_function() {
        let table = MeanTable::new(PIXEL_MEANS_BGR);
        let mut out = [0.0f32; 6];
        table.apply_row(&[0, 128, 255, 7, 8, 9], &mut out);
        let expect: Vec<f32> = [0u8, 128, 255, 7, 8, 9]
            .iter()
            .enumerate()
            .map(|(i, &p)| subtract_mean_f64(p, PIXEL_MEANS_BGR[i % 3]))
            .collect();
        assert_eq!(out.to_vec(), expect);
    }
}
