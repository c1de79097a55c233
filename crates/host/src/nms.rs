//! `cpu_nms` of py-faster-rcnn (Cython, `nms/cpu_nms.pyx`), as the fork runs it (§3 step 7).
//!
//! Three details decide bits: `cpu_nms` re-sorts its input with NumPy's introsort (so the
//! traversal order of tied scores is [`argsort_numpy_desc`]'s, even when the input is already
//! sorted); the overlap is computed in f32 with the +1 pixel convention and one fixed
//! association; and the threshold comparison promotes the f32 overlap to f64.

use crate::numpy_sort::argsort_numpy_desc;

/// A box `[x1, y1, x2, y2]` in pixels, inclusive corners.
pub type BoxF32 = [f32; 4];

/// `(x2 − x1 + 1) · (y2 − y1 + 1)` in f32 (`cpu_nms`'s `areas`).
#[inline]
pub fn box_area(b: &BoxF32) -> f32 {
    ((b[2] - b[0]) + 1.0) * ((b[3] - b[1]) + 1.0)
}

/// Cython's builtin `max(a, b)` on C floats: start from `a`, take `b` if `b > a`. Equal to
/// `f32::max` except with NaN, kept literal so that no input can make the two disagree.
#[inline]
fn cy_max(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// Cython's builtin `min(a, b)` on C floats: start from `a`, take `b` if `b < a`.
#[inline]
fn cy_min(a: f32, b: f32) -> f32 {
    if b < a {
        b
    } else {
        a
    }
}

/// The f32 intersection-over-union of `cpu_nms`, in its exact association:
/// `inter ⊘ ((area_a ⊕ area_b) ⊖ inter)`, `a` being the kept box. Symmetric in (a, b) bit for
/// bit for boxes without NaN.
#[inline]
pub fn overlap_f32(a: &BoxF32, area_a: f32, b: &BoxF32, area_b: f32) -> f32 {
    let iw = cy_max(0.0, (cy_min(a[2], b[2]) - cy_max(a[0], b[0])) + 1.0);
    let ih = cy_max(0.0, (cy_min(a[3], b[3]) - cy_max(a[1], b[1])) + 1.0);
    let inter = iw * ih;
    inter / ((area_a + area_b) - inter)
}

/// `ovr >= thresh` with the f32 overlap promoted to f64 (§3 step 7): at 0.7 an overlap of exactly
/// f32(0.7) does not suppress, at 0.3 an overlap of exactly f32(0.3) does.
#[inline]
pub fn suppresses(ovr: f32, thresh: f64) -> bool {
    f64::from(ovr) >= thresh
}

/// A fixed-size bit set over box indices.
#[derive(Debug, Clone)]
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    fn new(n: usize) -> Self {
        BitSet {
            words: vec![0; n.div_ceil(64)],
        }
    }
    #[inline]
    fn get(&self, k: usize) -> bool {
        self.words[k / 64] >> (k % 64) & 1 == 1
    }
    #[inline]
    fn set(&mut self, k: usize) {
        self.words[k / 64] |= 1 << (k % 64);
    }
    #[inline]
    fn union_with(&mut self, other: &[u64]) {
        for (w, o) in self.words.iter_mut().zip(other) {
            *w |= o;
        }
    }
}

/// How a kept box suppresses the boxes after it in traversal order.
trait Suppressor {
    fn suppress_after(&self, kept: usize, rest: &[usize], suppressed: &mut BitSet);
}

/// The greedy loop of `cpu_nms`, stopping once `limit` boxes are kept (a caller that truncates
/// the keep list gets the same prefix).
fn greedy_nms(n: usize, order: &[usize], limit: usize, s: &impl Suppressor) -> Vec<usize> {
    let mut suppressed = BitSet::new(n);
    let mut keep = Vec::new();
    for (t, &i) in order.iter().enumerate() {
        if keep.len() == limit {
            break;
        }
        if suppressed.get(i) {
            continue;
        }
        keep.push(i);
        if keep.len() < limit {
            s.suppress_after(i, &order[t + 1..], &mut suppressed);
        }
    }
    keep
}

/// Overlaps computed on demand (the RPN NMS: up to 6000 boxes, used once).
struct DirectOverlaps<'a> {
    boxes: &'a [BoxF32],
    areas: Vec<f32>,
    thresh: f64,
}

impl Suppressor for DirectOverlaps<'_> {
    fn suppress_after(&self, i: usize, rest: &[usize], suppressed: &mut BitSet) {
        let (bi, ai) = (&self.boxes[i], self.areas[i]);
        for &j in rest {
            if !suppressed.get(j)
                && suppresses(
                    overlap_f32(bi, ai, &self.boxes[j], self.areas[j]),
                    self.thresh,
                )
            {
                suppressed.set(j);
            }
        }
    }
}

/// `cpu_nms(np.hstack([boxes, scores]), thresh)[:limit]`: the indices kept, in traversal order
/// (descending score, ties in reversed-introsort order).
///
/// # Panics
/// If `boxes` and `scores` differ in length.
pub fn cpu_nms(boxes: &[BoxF32], scores: &[f32], thresh: f64, limit: usize) -> Vec<usize> {
    assert_eq!(boxes.len(), scores.len(), "cpu_nms: one score per box");
    let direct = DirectOverlaps {
        boxes,
        areas: boxes.iter().map(box_area).collect(),
        thresh,
    };
    greedy_nms(boxes.len(), &argsort_numpy_desc(scores), limit, &direct)
}

/// For NMS runs that share their boxes and differ only in scores (generate_tsv's per-class NMS,
/// §6.2: 1600 classes over the same rois): the relation "i suppresses j" computed once, with the
/// same f32 formula, so every run is bit-identical to [`cpu_nms`] at a fraction of the cost.
#[derive(Debug, Clone)]
pub struct SuppressionMatrix {
    n: usize,
    words_per_row: usize,
    rows: Vec<u64>,
}

impl SuppressionMatrix {
    pub fn new(boxes: &[BoxF32], thresh: f64) -> Self {
        let n = boxes.len();
        let words_per_row = n.div_ceil(64);
        let areas: Vec<f32> = boxes.iter().map(box_area).collect();
        let mut rows = vec![0u64; n * words_per_row];
        // Row i holds overlap(kept = i, candidate = j), the argument order of the direct loop.
        for (i, row) in rows.chunks_mut(words_per_row.max(1)).enumerate().take(n) {
            for j in 0..n {
                if suppresses(
                    overlap_f32(&boxes[i], areas[i], &boxes[j], areas[j]),
                    thresh,
                ) {
                    row[j / 64] |= 1 << (j % 64);
                }
            }
        }
        SuppressionMatrix {
            n,
            words_per_row,
            rows,
        }
    }

    /// Number of boxes.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `cpu_nms` over these boxes with `scores`: the same result as [`cpu_nms`] (no limit).
    ///
    /// # Panics
    /// If `scores` does not have one entry per box.
    pub fn nms(&self, scores: &[f32]) -> Vec<usize> {
        assert_eq!(
            scores.len(),
            self.n,
            "SuppressionMatrix::nms: one score per box"
        );
        greedy_nms(self.n, &argsort_numpy_desc(scores), usize::MAX, self)
    }
}

impl Suppressor for SuppressionMatrix {
    /// Marking boxes earlier in the order is harmless: they are already kept or suppressed.
    fn suppress_after(&self, i: usize, _rest: &[usize], suppressed: &mut BitSet) {
        let row = &self.rows[i * self.words_per_row..(i + 1) * self.words_per_row];
        suppressed.union_with(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_uses_plus_one() {
        assert_eq!(box_area(&[0.0, 0.0, 9.0, 4.0]), 50.0);
    }

    /// §3 step 7: the f64 comparison moves the effective f32 threshold.
    #[test]
    fn threshold_compares_in_f64() {
        let f32_07 = 0.7f32;
        assert!(!suppresses(f32_07, 0.7));
        assert!(suppresses(f32::from_bits(f32_07.to_bits() + 1), 0.7));
        assert!(suppresses(0.3f32, 0.3));
        assert!(!suppresses(f32::from_bits(0.3f32.to_bits() - 1), 0.3));
    }

    #[test]
    fn overlap_is_symmetric_and_plus_one() {
        let a = [0.0, 0.0, 9.0, 9.0];
        let b = [5.0, 0.0, 14.0, 9.0];
        let (aa, ab) = (box_area(&a), box_area(&b));
        assert_eq!(overlap_f32(&a, aa, &b, ab), 50.0 / 150.0);
        assert_eq!(
            overlap_f32(&a, aa, &b, ab).to_bits(),
            overlap_f32(&b, ab, &a, aa).to_bits()
        );
        assert_eq!(overlap_f32(&a, aa, &[20.0, 20.0, 30.0, 30.0], 121.0), 0.0);
    }

    #[test]
    fn greedy_keeps_the_best_and_drops_overlaps() {
        let boxes = [
            [0.0, 0.0, 9.0, 9.0],
            [1.0, 0.0, 10.0, 9.0], // IoU with 0: 90/110
            [50.0, 50.0, 60.0, 60.0],
        ];
        assert_eq!(
            cpu_nms(&boxes, &[0.5, 0.9, 0.1], 0.7, usize::MAX),
            vec![1, 2]
        );
        assert_eq!(cpu_nms(&boxes, &[0.5, 0.9, 0.1], 0.7, 1), vec![1]);
        assert_eq!(
            cpu_nms(&boxes, &[0.5, 0.9, 0.1], 0.9, usize::MAX),
            vec![1, 0, 2]
        );
        assert!(cpu_nms(&boxes, &[0.5, 0.9, 0.1], 0.7, 0).is_empty());
        assert!(cpu_nms(&[], &[], 0.7, usize::MAX).is_empty());
    }

    /// Two identical boxes with identical scores: the survivor is the one the reversed introsort
    /// puts first, which for ≤ 16 keys is the higher index.
    #[test]
    fn tie_winner_follows_the_reversed_introsort() {
        let b = [0.0, 0.0, 9.0, 9.0];
        assert_eq!(cpu_nms(&[b, b], &[0.5, 0.5], 0.3, usize::MAX), vec![1]);
    }

    /// The precomputed matrix gives the same keep lists as the direct loop on random overlapping
    /// boxes with tie-heavy scores.
    #[test]
    fn matrix_equals_direct() {
        let mut state = 0xDEAD_BEEF_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1000) as f32
        };
        let boxes: Vec<BoxF32> = (0..150)
            .map(|_| {
                let (x, y) = (next() / 10.0, next() / 10.0);
                [x, y, x + 5.0 + next() / 20.0, y + 5.0 + next() / 20.0]
            })
            .collect();
        for thresh in [0.3, 0.7] {
            let m = SuppressionMatrix::new(&boxes, thresh);
            for _ in 0..20 {
                let scores: Vec<f32> = (0..boxes.len()).map(|_| (next() % 7.0) / 7.0).collect();
                assert_eq!(m.nms(&scores), cpu_nms(&boxes, &scores, thresh, usize::MAX));
            }
        }
    }
}
