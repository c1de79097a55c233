//! The scale rule of `_get_image_blob` (§1.3) and the output size of `cv2.resize` (§1.4).

/// `cfg.TEST.SCALES[0]`: the target length of the short side.
pub const TEST_SCALE: usize = 600;
/// `cfg.TEST.MAX_SIZE`: the cap on the long side.
pub const TEST_MAX_SIZE: usize = 1000;

/// `numpy.round` on a float64 (§1.3): round half to even, so 1000.5 → 1000 and 1001.5 → 1002.
pub fn numpy_round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// OpenCV's `cvRound(double)` / `saturate_cast<int>(double)` (§1.4): round half to even (the SSE2
/// conversion in the default rounding mode), saturated to the `int` range.
pub fn cv_round(x: f64) -> i64 {
    // `as` saturates; NaN gives 0.
    (x.round_ties_even() as i64).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

/// `im_scale` of `_get_image_blob` with the test config (600, 1000), as float64 (§1.3).
pub fn im_scale(height: usize, width: usize) -> f64 {
    im_scale_with(height, width, TEST_SCALE, TEST_MAX_SIZE)
}

/// `im_scale` for another `(target_size, max_size)`: the short side goes to `target_size` unless
/// the long side would then round to more than `max_size`, in which case the long side goes to
/// `max_size`.
pub fn im_scale_with(height: usize, width: usize, target_size: usize, max_size: usize) -> f64 {
    let size_min = height.min(width) as f64;
    let size_max = height.max(width) as f64;
    let scale = target_size as f64 / size_min;
    if numpy_round_half_even(scale * size_max) > max_size as f64 {
        max_size as f64 / size_max
    } else {
        scale
    }
}

/// The size `cv2.resize(im, None, fx=scale, fy=scale)` produces: `(cvRound(H·s), cvRound(W·s))`
/// (§1.4), as (height, width). Negative results (impossible for a positive scale) clamp to 0.
pub fn resized_size(height: usize, width: usize, scale: f64) -> (usize, usize) {
    let side = |n: usize| cv_round(n as f64 * scale).max(0) as usize;
    (side(height), side(width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_round_is_half_to_even() {
        // §1.3: np.round(1000.5) == 1000.0, np.round(1001.5) == 1002.0, np.round(-2.5) == -2.0.
        assert_eq!(numpy_round_half_even(1000.5), 1000.0);
        assert_eq!(numpy_round_half_even(1001.5), 1002.0);
        assert_eq!(numpy_round_half_even(-2.5), -2.0);
        assert_eq!(numpy_round_half_even(2.5000001), 3.0);
    }

    #[test]
    fn cv_round_is_half_to_even_and_saturates() {
        // §1.4: rint(501.5) = 502, rint(500.5) = 500.
        assert_eq!(cv_round(501.5), 502);
        assert_eq!(cv_round(500.5), 500);
        assert_eq!(cv_round(0.5), 0);
        assert_eq!(cv_round(1e20), i64::from(i32::MAX));
    }

    #[test]
    fn scale_rule_examples_of_the_semantics() {
        // §1.4 examples, written as (W, H) → s → (W′, H′).
        let cases = [
            (640, 480, 1.25, 800, 600),
            (500, 375, 1.6, 800, 600),
            (640, 427, 600.0 / 427.0, 899, 600),
            (500, 333, 600.0 / 333.0, 901, 600),
            (2000, 1000, 0.5, 1000, 500),
            (300, 200, 3.0, 900, 600),
            (4000, 300, 0.25, 1000, 75),
            (1100, 400, 1000.0 / 1100.0, 1000, 364),
        ];
        for (w, h, s, ow, oh) in cases {
            assert_eq!(im_scale(h, w), s, "{w}×{h}");
            assert_eq!(resized_size(h, w, s), (oh, ow), "{w}×{h}");
        }
    }

    #[test]
    fn scale_rule_uses_half_even_on_the_max_size_check() {
        // §1.5: short side 1200, long side 2001: 0.5 · 2001 = 1000.5 rounds to 1000, not > 1000,
        // so s stays 0.5 and the long side becomes rint(1000.5) = 1000.
        assert_eq!(im_scale(1200, 2001), 0.5);
        assert_eq!(resized_size(1200, 2001, 0.5), (600, 1000));
        // 2003 → 1001.5 rounds to 1002 > 1000: clamp.
        assert_eq!(im_scale(1200, 2003), 1000.0 / 2003.0);
        // 100×50 with (300, 500): 300/50 = 6, 6·100 = 600 > 500 → 500/100.
        assert_eq!(im_scale_with(100, 50, 300, 500), 5.0);
    }
}
