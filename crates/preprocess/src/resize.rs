//! `cv2.resize(im, None, fx=s, fy=s, interpolation=INTER_LINEAR)` on a 3-channel float32 image,
//! OpenCV's own (non-IPP) code path, bit for bit (§1.4, §1.5):
//! - same output size: a plain copy;
//! - `1/s == 2` exactly: OpenCV silently runs INTER_AREA's fast 2×2 path ([`resize_area_half`]);
//! - otherwise the two-pass bilinear of `resizeGeneric_` ([`resize_linear_f32`]): a horizontal pass
//!   per source row, then a vertical pass per output row, every product and sum one f32 operation,
//!   no FMA (Rust never contracts `a * b + c`).
//!
//! The source is read row by row through [`Rows`], so the network input path can feed
//! mean-subtracted rows straight from the uint8 image without a full float32 copy.

use crate::scale::{cv_round, resized_size};
use crate::Error;

/// Channels per pixel: the blob is BGR. OpenCV's 1- and 4-channel paths use other SIMD kernels
/// (a different summation order in the area path), so only 3 is claimed bit-exact.
const CN: usize = 3;

/// A float32 image, HWC with 3 channels: pixel (y, x) channel c at `(y * width + x) * 3 + c`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageF32 {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// A source of image rows (3 channels, f32) for the resize.
pub(crate) trait Rows {
    fn height(&self) -> usize;
    fn width(&self) -> usize;
    /// Writes row `y` (`width * 3` values) into `out`.
    fn read_row(&self, y: usize, out: &mut [f32]);
}

impl Rows for ImageF32 {
    fn height(&self) -> usize {
        self.height
    }
    fn width(&self) -> usize {
        self.width
    }
    fn read_row(&self, y: usize, out: &mut [f32]) {
        let len = self.width * CN;
        out.copy_from_slice(&self.data[y * len..(y + 1) * len]);
    }
}

/// Where output rows go, so that callers can lay them out as they need (HWC or CHW) without an
/// intermediate copy of the whole image.
pub(crate) trait RowSink {
    /// Called once per output row, in order, with `width * 3` values (HWC).
    fn put_row(&mut self, y: usize, row: &[f32]);
}

/// Collects rows into an HWC [`ImageF32`].
struct HwcSink(ImageF32);

impl RowSink for HwcSink {
    fn put_row(&mut self, y: usize, row: &[f32]) {
        let len = row.len();
        self.0.data[y * len..(y + 1) * len].copy_from_slice(row);
    }
}

/// `cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)` with IPP off.
pub fn cv2_resize_f32(src: &ImageF32, scale: f64) -> Result<ImageF32, Error> {
    let expected = src.height * src.width * CN;
    if src.data.len() != expected {
        return Err(Error::InconsistentImage {
            height: src.height,
            width: src.width,
            len: src.data.len(),
            expected,
        });
    }
    resize(src, scale, |height, width| {
        HwcSink(ImageF32 {
            height,
            width,
            data: vec![0.0; height * width * CN],
        })
    })
    .map(|sink| sink.0)
}

/// The dispatch of `cv::resize` for our case (§1.4, §1.5); `sink(H′, W′)` makes the receiver of
/// the output rows.
pub(crate) fn resize<S: RowSink>(
    src: &impl Rows,
    scale: f64,
    sink: impl FnOnce(usize, usize) -> S,
) -> Result<S, Error> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::InvalidScale { scale });
    }
    let (height, width) = (src.height(), src.width());
    let (out_h, out_w) = resized_size(height, width, scale);
    if out_h == 0 || out_w == 0 {
        return Err(Error::EmptyResize {
            height,
            width,
            scale,
            out_height: out_h,
            out_width: out_w,
        });
    }
    let mut sink = sink(out_h, out_w);
    if (out_h, out_w) == (height, width) {
        copy_rows(src, &mut sink);
    } else if linear_becomes_area_half(scale) {
        resize_area_half(src, out_h, out_w, &mut sink);
    } else {
        resize_linear_f32(src, out_h, out_w, scale, &mut sink);
    }
    Ok(sink)
}

fn copy_rows(src: &impl Rows, sink: &mut impl RowSink) {
    let mut row = vec![0.0; src.width() * CN];
    for y in 0..src.height() {
        src.read_row(y, &mut row);
        sink.put_row(y, &row);
    }
}

/// §1.5: `cv::resize` turns INTER_LINEAR into INTER_AREA when the inverse scale is an integer
/// (within DBL_EPSILON, after `cvRound`) equal to 2 on both axes, i.e. for s = 0.5.
pub fn linear_becomes_area_half(scale: f64) -> bool {
    let inv = 1.0 / scale;
    let rounded = cv_round(inv);
    (inv - rounded as f64).abs() < f64::EPSILON && rounded == 2
}

/// §1.5: the source coordinate of output pixel `d` for INTER_LINEAR, as OpenCV computes it:
/// `fx = (float)((d + 0.5) * inv_scale - 0.5)` in f64 rounded to f32, `sx = cvFloor(fx)`,
/// `fx -= sx` in f32. Returns `(sx, fx)` before any border rule.
pub fn linear_source_coord(d: usize, inv_scale: f64) -> (i64, f32) {
    let fx = ((d as f64 + 0.5) * inv_scale - 0.5) as f32;
    let sx = fx.floor();
    (sx as i64, fx - sx)
}

/// Per output column: the left source column and the f32 weights, plus the first column from
/// which on OpenCV copies the last source column (`xmax`).
struct ColumnTable {
    left: Vec<usize>,
    a0: Vec<f32>,
    a1: Vec<f32>,
    copy_from: usize,
}

/// §1.5 horizontal border rules: `sx < 0` → `sx = 0, fx = 0`; `sx + 1 ≥ W` → `sx = W − 1, fx = 0`
/// and that column (and all after it) is an exact copy of the last source column.
fn column_table(out_w: usize, in_w: usize, inv_scale: f64) -> ColumnTable {
    let mut table = ColumnTable {
        left: Vec::with_capacity(out_w),
        a0: Vec::with_capacity(out_w),
        a1: Vec::with_capacity(out_w),
        copy_from: out_w,
    };
    let last = in_w as i64 - 1;
    for dx in 0..out_w {
        let (mut sx, mut fx) = linear_source_coord(dx, inv_scale);
        if sx < 0 {
            (sx, fx) = (0, 0.0);
        }
        if sx + 1 > last {
            table.copy_from = table.copy_from.min(dx);
            (sx, fx) = (last, 0.0);
        }
        table.left.push(sx as usize);
        table.a0.push(1.0 - fx);
        table.a1.push(fx);
    }
    table
}

/// The horizontal pass over one source row: `S[sx]·a0 + S[sx+1]·a1` per channel, or a copy of
/// `S[W−1]` from `copy_from` on.
fn horizontal_pass(row: &[f32], table: &ColumnTable, out: &mut [f32]) {
    for (dx, o) in out.chunks_exact_mut(CN).enumerate() {
        let at = table.left[dx] * CN;
        if dx < table.copy_from {
            let (a0, a1) = (table.a0[dx], table.a1[dx]);
            for c in 0..CN {
                o[c] = row[at + c] * a0 + row[at + CN + c] * a1;
            }
        } else {
            o.copy_from_slice(&row[at..at + CN]);
        }
    }
}

/// INTER_LINEAR of OpenCV's `resizeGeneric_` on float32 (§1.5). Rows: `sy = floor(fy)` with no
/// border rule in the weights (`b0 = 1 − fy`, `b1 = fy`), the two source rows clamped into the
/// image, `out = H[y0]·b0 + H[y1]·b1` (not an exact copy at the top and bottom borders).
pub(crate) fn resize_linear_f32(
    src: &impl Rows,
    out_h: usize,
    out_w: usize,
    scale: f64,
    sink: &mut impl RowSink,
) {
    let (in_h, in_w) = (src.height(), src.width());
    let inv_scale = 1.0 / scale;
    let columns = column_table(out_w, in_w, inv_scale);
    let mut source_row = vec![0.0f32; in_w * CN];
    // Horizontal-pass results of the (at most) two source rows in use; rows only move forward.
    let mut cached: [(Option<usize>, Vec<f32>); 2] =
        [(None, vec![0.0; out_w * CN]), (None, vec![0.0; out_w * CN])];
    let mut out_row = vec![0.0f32; out_w * CN];
    let last = in_h as i64 - 1;
    for dy in 0..out_h {
        let (sy, fy) = linear_source_coord(dy, inv_scale);
        let (b0, b1) = (1.0 - fy, fy);
        let y0 = sy.clamp(0, last) as usize;
        let y1 = (sy + 1).clamp(0, last) as usize;
        let mut slot_of = |y: usize, keep: usize| -> usize {
            if let Some(slot) = cached.iter().position(|(row, _)| *row == Some(y)) {
                return slot;
            }
            let slot = usize::from(cached[0].0 == Some(keep));
            src.read_row(y, &mut source_row);
            horizontal_pass(&source_row, &columns, &mut cached[slot].1);
            cached[slot].0 = Some(y);
            slot
        };
        let s0 = slot_of(y0, y1);
        let s1 = slot_of(y1, y0);
        let (h0, h1) = (&cached[s0].1, &cached[s1].1);
        for ((o, &t0), &t1) in out_row.iter_mut().zip(h0).zip(h1) {
            *o = t0 * b0 + t1 * b1;
        }
        sink.put_row(dy, &out_row);
    }
}

/// INTER_AREA's fast 2×2 path for float32, 3 channels (OpenCV's scalar `ResizeAreaFast_Invoker`),
/// which `cv::resize` runs for INTER_LINEAR at s = 0.5 (§1.5):
/// - complete 2×2 blocks: `(((S00 + S01) + S10) + S11) · 0.25f`, added to a zero accumulator;
/// - the last column when W is odd and the output rounded up, and every pixel of the last row when
///   H is odd and the output rounded up: the available pixels summed row-major from 0, `/ count`.
pub(crate) fn resize_area_half(
    src: &impl Rows,
    out_h: usize,
    out_w: usize,
    sink: &mut impl RowSink,
) {
    let (in_h, in_w) = (src.height(), src.width());
    let mut top = vec![0.0f32; in_w * CN];
    let mut bottom = vec![0.0f32; in_w * CN];
    let mut out_row = vec![0.0f32; out_w * CN];
    for dy in 0..out_h {
        let sy = 2 * dy;
        src.read_row(sy, &mut top);
        let both_rows = sy + 1 < in_h;
        if both_rows {
            src.read_row(sy + 1, &mut bottom);
        }
        let full_columns = if both_rows { in_w / 2 } else { 0 };
        let rows: &[&[f32]] = if both_rows { &[&top, &bottom] } else { &[&top] };
        for (dx, o) in out_row.chunks_exact_mut(CN).enumerate() {
            let x = 2 * dx * CN;
            for c in 0..CN {
                o[c] = if dx < full_columns {
                    let block = top[x + c] + top[x + CN + c] + bottom[x + c] + bottom[x + CN + c];
                    (0.0 + block) * 0.25
                } else {
                    let mut sum = 0.0f32;
                    let mut count = 0u8;
                    for row in rows {
                        for sx in [2 * dx, 2 * dx + 1].into_iter().filter(|&sx| sx < in_w) {
                            sum += row[sx * CN + c];
                            count += 1;
                        }
                    }
                    sum / f32::from(count)
                };
            }
        }
        sink.put_row(dy, &out_row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exact_half_switches_to_area() {
        // §1.5: s == 0.5 ⇔ 1/s == 2.0 (within DBL_EPSILON).
        assert!(linear_becomes_area_half(0.5));
        assert!(!linear_becomes_area_half(0.25));
        assert!(!linear_becomes_area_half(0.5000001));
        assert!(!linear_becomes_area_half(1.0));
    }

    #[test]
    #[allow(clippy::excessive_precision)] // exact f32 values, written out in full
    fn source_coordinate_is_rounded_to_f32_before_the_split() {
        // §1.5, s = 1000/1100: inv = 1.1. d = 500: 500.5·1.1 − 0.5 = 550.05 (f64), whose nearest
        // f32 is 550.04998779296875; the f32 fraction is 0.04998779296875.
        let (sx, fx) = linear_source_coord(500, 1.0 / (1000.0 / 1100.0));
        assert_eq!(sx, 550);
        assert_eq!(fx, 0.049_987_793);
        assert_eq!(fx.to_bits(), (550.049_987_792_968_75f32 - 550.0).to_bits());
        // d = 0 at ×2: 0.5·0.5 − 0.5 = −0.25 → sx = −1, fx = 0.75.
        assert_eq!(linear_source_coord(0, 0.5), (-1, 0.75));
    }

    #[test]
    fn column_borders_follow_opencv() {
        // W = 3 → ×2 (inv 0.5): fx = (d + 0.5)·0.5 − 0.5 = −0.25, 0.25, 0.75, 1.25, 1.75, 2.25.
        let t = column_table(6, 3, 0.5);
        assert_eq!(t.left, vec![0, 0, 0, 1, 1, 2]);
        assert_eq!(t.a1, vec![0.0, 0.25, 0.75, 0.25, 0.75, 0.0]);
        assert_eq!(t.a0, vec![1.0, 0.75, 0.25, 0.75, 0.25, 1.0]);
        // sx + 1 ≥ W first at d = 5 (sx = 2).
        assert_eq!(t.copy_from, 5);
    }
}
