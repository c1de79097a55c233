//! Comparing values that went through a 16-bit float ([`Half`], [`Resolution`]: what such a
//! value stands for, `butd_formats::resolution`): two values agree when their rounding
//! intervals overlap, and a difference counts only by how far it goes beyond them
//! (docs/verify.md, "Half-precision sources").
pub use butd_formats::resolution::{Half, Resolution};

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
