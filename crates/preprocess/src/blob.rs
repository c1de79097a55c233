//! The network input of `_get_image_blob` + `im_list_to_blob` (§1.2–§1.6): mean subtraction in
//! float64 → float32, `cv2.resize` by `im_scale`, HWC → CHW, and `im_info`.

use crate::decode::ImageBgr;
use crate::mean::{MeanTable, PIXEL_MEANS_BGR};
use crate::resize::{resize, RowSink, Rows};
use crate::scale::{im_scale_with, TEST_MAX_SIZE, TEST_SCALE};
use crate::Error;

/// The `data` blob (1 × 3 × H′ × W′, the leading 1 implied) and what `im_info` is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct NetInput {
    /// H′
    pub height: usize,
    /// W′
    pub width: usize,
    /// `im_scale` as float64: Caffe's `im_info` holds it rounded to f32, later steps use this.
    pub scale: f64,
    /// CHW, channels B, G, R (minus their means): channel c, row y, column x at
    /// `(c * height + y) * width + x`.
    pub data: Vec<f32>,
}

impl NetInput {
    /// `im_info = float32 [H′, W′, im_scale]` (§1.6): the scale rounded to f32.
    pub fn im_info(&self) -> [f32; 3] {
        [self.height as f32, self.width as f32, self.scale as f32]
    }
}

/// The network input with the test config (short side 600, long side at most 1000).
pub fn net_input(img: &ImageBgr) -> Result<NetInput, Error> {
    net_input_with(img, TEST_SCALE, TEST_MAX_SIZE)
}

/// The network input for another `(target_size, max_size)`.
pub fn net_input_with(
    img: &ImageBgr,
    target_size: usize,
    max_size: usize,
) -> Result<NetInput, Error> {
    let expected = img.height * img.width * 3;
    if img.data.len() != expected {
        return Err(Error::InconsistentImage {
            height: img.height,
            width: img.width,
            len: img.data.len(),
            expected,
        });
    }
    let scale = im_scale_with(img.height, img.width, target_size, max_size);
    let source = MeanSubtracted {
        image: img,
        table: MeanTable::new(PIXEL_MEANS_BGR),
    };
    let blob = resize(&source, scale, |height, width| ChwSink {
        height,
        width,
        data: vec![0.0; 3 * height * width],
    })?;
    Ok(NetInput {
        height: blob.height,
        width: blob.width,
        scale,
        data: blob.data,
    })
}

/// `im_list_to_blob` for one image (§1.6): (H′, W′, 3) → (3, H′, W′), no padding, filled one
/// resized row at a time.
struct ChwSink {
    height: usize,
    width: usize,
    data: Vec<f32>,
}

impl RowSink for ChwSink {
    fn put_row(&mut self, y: usize, row: &[f32]) {
        let plane = self.height * self.width;
        let start = y * self.width;
        let (b, rest) = self.data.split_at_mut(plane);
        let (g, r) = rest.split_at_mut(plane);
        let planes = [
            &mut b[start..start + self.width],
            &mut g[start..start + self.width],
            &mut r[start..start + self.width],
        ];
        for (x, px) in row.chunks_exact(3).enumerate() {
            planes[0][x] = px[0];
            planes[1][x] = px[1];
            planes[2][x] = px[2];
        }
    }
}

/// The uint8 image seen as its mean-subtracted float32 copy (§1.2), one row at a time.
struct MeanSubtracted<'a> {
    image: &'a ImageBgr,
    table: MeanTable,
}

impl Rows for MeanSubtracted<'_> {
    fn height(&self) -> usize {
        self.image.height
    }
    fn width(&self) -> usize {
        self.image.width
    }
    fn read_row(&self, y: usize, out: &mut [f32]) {
        let len = self.image.width * 3;
        self.table
            .apply_row(&self.image.data[y * len..(y + 1) * len], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_layout() {
        // §1.6: a 2×2 image, rows [1,2,3 | 4,5,6] and [7,8,9 | 10,11,12] → planes B [1,4,7,10],
        // G [2,5,8,11], R [3,6,9,12].
        let mut sink = ChwSink {
            height: 2,
            width: 2,
            data: vec![0.0; 12],
        };
        sink.put_row(0, &[1., 2., 3., 4., 5., 6.]);
        sink.put_row(1, &[7., 8., 9., 10., 11., 12.]);
        assert_eq!(
            sink.data,
            vec![1., 4., 7., 10., 2., 5., 8., 11., 3., 6., 9., 12.]
        );
    }

    #[test]
    #[allow(clippy::excessive_precision)] // exact f32 values, written out in full
    fn im_info_rounds_the_scale_to_f32() {
        // §1.6: 1.6 → 1.600000023841858.
        let input = NetInput {
            height: 600,
            width: 800,
            scale: 1.6,
            data: vec![],
        };
        assert_eq!(input.im_info(), [600.0, 800.0, 1.600_000_023_841_858]);
    }
}
