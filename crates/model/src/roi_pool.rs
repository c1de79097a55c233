//! Caffe's `ROIPooling` (`roi_pool5`: 14×14, spatial scale 1/16) exactly (§4.1).
//!
//! The bins are integer windows decided by a few f32 operations; they are computed on the host
//! per roi ([`roi_bins`]). The max over each window runs on the device as gathers from a 2-D
//! sparse table: `table[i][j](y, x) = max of the 2^i × 2^j block at (y, x)`. A window of
//! `h × w` cells is covered by four (overlapping) blocks of `2^⌊log₂h⌋ × 2^⌊log₂w⌋` cells,
//! and since `max` is exact, the max of those four entries equals the max over the window bit
//! for bit, on the CPU and on CUDA alike. Empty bins read a row of zeros.

use std::ops::Range;

use tch::Tensor;

/// `pooled_h = pooled_w = 14`.
pub const POOLED_SIZE: usize = 14;
/// `spatial_scale = 0.0625` (1/16, exact in f32).
pub const SPATIAL_SCALE: f32 = 0.0625;

/// C's `round()`: half away from zero (§4.1, `x1 = 8.0 → 0.5 → 1`).
pub fn round_half_away(x: f32) -> i64 {
    x.round() as i64
}

/// The 14 half-open windows `[start, end)` of one roi along one axis (§4.1): the roi's first and
/// last cell by [`round_half_away`] of the f32 product with 1/16, an inclusive length of at least
/// 1, the f32 bin size `len ⊘ 14`, `floor(p ⊗ bin)` / `ceil((p+1) ⊗ bin)` in f32, shifted and
/// clamped to `[0, feat_len]`. Empty windows (`end <= start`) pool to 0.
pub fn bin_edges(roi_start: f32, roi_end: f32, feat_len: i64) -> [(i64, i64); POOLED_SIZE] {
    let first = round_half_away(roi_start * SPATIAL_SCALE);
    let last = round_half_away(roi_end * SPATIAL_SCALE);
    let len = (last - first + 1).max(1);
    let bin = len as f32 / POOLED_SIZE as f32;
    std::array::from_fn(|p| {
        let start = (p as f32 * bin).floor() as i64;
        let end = ((p + 1) as f32 * bin).ceil() as i64;
        (
            (start + first).clamp(0, feat_len),
            (end + first).clamp(0, feat_len),
        )
    })
}

/// The bins of one roi `[x1, y1, x2, y2]` (network-input pixels) on an `h × w` feature map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoiBins {
    pub rows: [(i64, i64); POOLED_SIZE],
    pub cols: [(i64, i64); POOLED_SIZE],
}

pub fn roi_bins(roi: &[f32; 4], feat_h: i64, feat_w: i64) -> RoiBins {
    RoiBins {
        rows: bin_edges(roi[1], roi[3], feat_h),
        cols: bin_edges(roi[0], roi[2], feat_w),
    }
}

/// `⌊log₂ n⌋` for n ≥ 1: the sparse-table level whose blocks fit a window of n cells.
fn level_of(n: i64) -> i64 {
    63 - i64::from(n.leading_zeros())
}

/// Pools rois from one feature map; build once per image, then pool chunks of rois.
pub struct RoiPooler {
    /// (levels² · h · w + 1, C): block maxima, then one row of zeros for empty bins.
    table: Tensor,
    levels: i64,
    feat_h: i64,
    feat_w: i64,
    channels: i64,
    bins: Vec<RoiBins>,
}

impl RoiPooler {
    /// `features`: (1, C, h, w) on any device (`res4b22`, after its ReLU), in any kind: the
    /// pooled rois come out in it (bf16 in `--precision bf16`: half the bytes to gather, and
    /// the same bits as rounding float32 pooling, since rounding is monotonic).
    pub fn new(features: &Tensor, bins: Vec<RoiBins>) -> RoiPooler {
        let (channels, feat_h, feat_w) = match features.size()[..] {
            [1, c, h, w] => (c, h, w),
            ref s => panic!("RoiPooler: features must be (1, C, h, w), got {s:?}"),
        };
        let longest = bins
            .iter()
            .flat_map(|b| b.rows.iter().chain(&b.cols))
            .map(|&(s, e)| e - s)
            .max()
            .unwrap_or(1)
            .max(1);
        let levels = level_of(longest) + 1;
        // (h, w, C): one contiguous row of channels per cell, the unit the gathers copy.
        let base = features.get(0).permute([1, 2, 0]).contiguous();
        let row_levels = block_maxima(&base, 0, levels);
        let mut blocks = Vec::with_capacity((levels * levels) as usize);
        for rows in &row_levels {
            blocks.extend(block_maxima(rows, 1, levels));
        }
        let zeros = Tensor::zeros([1, channels], (features.kind(), features.device()));
        let flat: Vec<Tensor> = blocks.iter().map(|b| b.reshape([-1, channels])).collect();
        let table = Tensor::cat(&[Tensor::cat(&flat, 0), zeros], 0);
        RoiPooler {
            table,
            levels,
            feat_h,
            feat_w,
            channels,
            bins,
        }
    }

    pub fn num_rois(&self) -> usize {
        self.bins.len()
    }

    /// `roipool5` rows `range`: (n, C, 14, 14), with channels-last strides (each cell's C values
    /// contiguous); `.contiguous()` gives the NCHW layout.
    pub fn pool(&self, range: Range<usize>) -> Tensor {
        let n = range.len() as i64;
        let zero_row = self.levels * self.levels * self.feat_h * self.feat_w;
        let mut index = Vec::with_capacity(range.len() * POOLED_SIZE * POOLED_SIZE * 4);
        for bins in &self.bins[range] {
            for &(hs, he) in &bins.rows {
                for &(ws, we) in &bins.cols {
                    if he <= hs || we <= ws {
                        index.extend([zero_row; 4]);
                        continue;
                    }
                    let (lh, lw) = (level_of(he - hs), level_of(we - ws));
                    let level_base = (lh * self.levels + lw) * self.feat_h;
                    for y in [hs, he - (1 << lh)] {
                        for x in [ws, we - (1 << lw)] {
                            index.push((level_base + y) * self.feat_w + x);
                        }
                    }
                }
            }
        }
        let index = Tensor::from_slice(&index).to_device(self.table.device());
        let p = POOLED_SIZE as i64;
        self.table
            .index_select(0, &index)
            .view([n, p, p, 4, self.channels])
            .amax([3], false)
            .permute([0, 3, 1, 2])
    }
}

/// Levels 0..levels of block maxima along `axis` (0 = rows, 1 = columns) of an (h, w, C)
/// tensor: level l holds the max of 2^l consecutive cells starting at each position (positions
/// where the block would run past the end hold zeros and are never read).
fn block_maxima(t: &Tensor, axis: i64, levels: i64) -> Vec<Tensor> {
    let len = t.size()[axis as usize];
    let mut out = vec![t.shallow_clone()];
    for l in 1..levels {
        let prev = &out[(l - 1) as usize];
        let half = 1i64 << (l - 1);
        let valid = (len - 2 * half + 1).max(0);
        let next = prev.zeros_like();
        if valid > 0 {
            let m = prev
                .narrow(axis, 0, valid)
                .maximum(&prev.narrow(axis, half, valid));
            next.narrow(axis, 0, valid).copy_(&m);
        }
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// §4.1 written out: per roi, per channel, per bin, a max from −FLT_MAX with strict `>`.
    fn roi_pool_direct(feat: &[f32], c: usize, h: usize, w: usize, roi: &[f32; 4]) -> Vec<f32> {
        let sw = (roi[0] * 0.0625).round() as i64;
        let sh = (roi[1] * 0.0625).round() as i64;
        let ew = (roi[2] * 0.0625).round() as i64;
        let eh = (roi[3] * 0.0625).round() as i64;
        let roi_w = (ew - sw + 1).max(1);
        let roi_h = (eh - sh + 1).max(1);
        let bin_h = roi_h as f32 / 14.0f32;
        let bin_w = roi_w as f32 / 14.0f32;
        let mut out = vec![0.0f32; c * 196];
        for ch in 0..c {
            for ph in 0..14 {
                for pw in 0..14 {
                    let hs = ((ph as f32 * bin_h).floor() as i64 + sh).clamp(0, h as i64) as usize;
                    let he =
                        (((ph + 1) as f32 * bin_h).ceil() as i64 + sh).clamp(0, h as i64) as usize;
                    let ws = ((pw as f32 * bin_w).floor() as i64 + sw).clamp(0, w as i64) as usize;
                    let we =
                        (((pw + 1) as f32 * bin_w).ceil() as i64 + sw).clamp(0, w as i64) as usize;
                    if he <= hs || we <= ws {
                        continue;
                    }
                    let mut m = -f32::MAX;
                    for y in hs..he {
                        for x in ws..we {
                            let v = feat[(ch * h + y) * w + x];
                            if v > m {
                                m = v;
                            }
                        }
                    }
                    out[(ch * 14 + ph) * 14 + pw] = m;
                }
            }
        }
        out
    }

    /// A small deterministic generator (splitmix64), so the test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
        }
    }

    #[test]
    fn round_half_away_rounds_halves_up_for_rois() {
        assert_eq!(round_half_away(8.0 * SPATIAL_SCALE), 1);
        assert_eq!(round_half_away(7.99 * SPATIAL_SCALE), 0);
        assert_eq!(round_half_away(24.0 * SPATIAL_SCALE), 2); // 1.5 → 2 (half-even would agree)
        assert_eq!(round_half_away(40.0 * SPATIAL_SCALE), 3); // 2.5 → 3 (half-even: 2)
        assert_eq!(round_half_away(-8.0 * SPATIAL_SCALE), -1);
    }

    #[test]
    fn bin_edges_follow_f32_products() {
        // §4.1: roi_h = 57 → last bin ends at ceil(14 ⊗ f32(57/14)) = 58, one past the roi.
        let e = bin_edges(0.0, 56.0 * 16.0, 100);
        assert_eq!(e[13].1, 58);
        // roi_h = 62: bin 7 starts at floor(7 ⊗ f32(62/14)) = 30, not 31.
        let e = bin_edges(0.0, 61.0 * 16.0, 100);
        assert_eq!(e[7].0, 30);
        // Clamped to the feature map.
        let e = bin_edges(0.0, 61.0 * 16.0, 40);
        assert!(e.iter().all(|&(s, t)| s <= 40 && t <= 40));
    }

    #[test]
    fn sparse_table_pooling_is_bit_exact_against_direct_caffe_loop() {
        let mut rng = Rng(7);
        for &(c, h, w, n) in &[
            (5usize, 4usize, 63usize, 40usize),
            (3, 38, 57, 60),
            (2, 63, 4, 40),
            (4, 9, 7, 30),
        ] {
            let feat: Vec<f32> = (0..c * h * w)
                .map(|_| {
                    // ReLU outputs: many exact zeros and repeated values, as after res4b22.
                    let v = rng.uniform(-1.0, 2.0).max(0.0);
                    if rng.next() >> 61 == 0 {
                        0.5
                    } else {
                        v
                    }
                })
                .collect();
            let (hh, ww) = ((h * 16) as f32, (w * 16) as f32);
            let rois: Vec<[f32; 4]> = (0..n)
                .map(|i| {
                    let x1 = rng.uniform(-20.0, ww);
                    let y1 = rng.uniform(-20.0, hh);
                    // Some rois far past the map, some degenerate, some of integer/half coords.
                    let (x2, y2) = match i % 4 {
                        0 => (x1 + rng.uniform(0.0, ww), y1 + rng.uniform(0.0, hh)),
                        1 => (x1, y1),
                        2 => ((x1 / 8.0).round() * 8.0 + 8.0, (y1 / 8.0).round() * 8.0),
                        _ => (ww * 2.0, hh * 2.0),
                    };
                    [x1.max(0.0), y1.max(0.0), x2, y2]
                })
                .collect();
            let features = Tensor::from_slice(&feat).view([1, c as i64, h as i64, w as i64]);
            let bins = rois
                .iter()
                .map(|r| roi_bins(r, h as i64, w as i64))
                .collect();
            let pooler = RoiPooler::new(&features, bins);
            // --precision bf16 pools from a bf16 map: rounding is monotonic, so the max of the
            // rounded values is the rounded max, bit for bit.
            let bins_again = rois.iter().map(|r| roi_bins(r, h as i64, w as i64));
            let pooler_bf16 =
                RoiPooler::new(&features.to_kind(Kind::BFloat16), bins_again.collect());
            for (chunk_start, chunk_len) in [(0usize, n / 3), (n / 3, n - n / 3)] {
                let pooled = pooler
                    .pool(chunk_start..chunk_start + chunk_len)
                    .contiguous();
                assert_eq!(pooled.size(), [chunk_len as i64, c as i64, 14, 14]);
                let pooled_bf16 = pooler_bf16.pool(chunk_start..chunk_start + chunk_len);
                assert_eq!(pooled_bf16.kind(), Kind::BFloat16);
                assert!(
                    pooled_bf16.equal(&pooled.to_kind(Kind::BFloat16)),
                    "bf16 pooling differs from rounding f32 pooling on {c}×{h}×{w}"
                );
                let got: Vec<f32> = Vec::try_from(pooled.flatten(0, -1)).unwrap();
                for (i, roi) in rois[chunk_start..chunk_start + chunk_len]
                    .iter()
                    .enumerate()
                {
                    let expected = roi_pool_direct(&feat, c, h, w, roi);
                    let row = &got[i * c * 196..(i + 1) * c * 196];
                    assert!(
                        row.iter()
                            .zip(&expected)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "roi {roi:?} on {c}×{h}×{w} differs"
                    );
                }
            }
        }
    }
}
