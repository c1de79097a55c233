//! Region sets compared up to reordering: optimal assignment on 1 − IoU, order inversions.
use crate::boxes::{boxes_from_rows, iou_plus1, Box4};
use crate::hungarian::min_cost_assignment;
use crate::report::{RegionSet, Role};
use butd_formats::tensors::Record;

// The record contract's lists and roles (`butd-record`).
pub use butd_record::tensors::{role_of, FINAL_TENSORS, ROIS_TENSORS};

impl RegionSet {
    /// The tensor holding the set's boxes, its row length, and the column of x1.
    pub(crate) fn box_source(self) -> (&'static str, usize, usize) {
        match self {
            RegionSet::Rois => ("rois", 5, 1),
            RegionSet::Final => ("boxes", 4, 0),
        }
    }

    /// The per-region feature vector whose cosine the report shows.
    pub(crate) fn feature_tensor(self) -> &'static str {
        match self {
            RegionSet::Rois => "pool5_flat",
            RegionSet::Final => "features",
        }
    }

    pub(crate) fn role(self) -> Role {
        match self {
            RegionSet::Rois => Role::Rois,
            RegionSet::Final => Role::Final,
        }
    }

    /// The tensors whose rows are the set's regions, [`ROIS_TENSORS`] or [`FINAL_TENSORS`].
    pub fn tensors(self) -> &'static [&'static str] {
        match self {
            RegionSet::Rois => &ROIS_TENSORS,
            RegionSet::Final => &FINAL_TENSORS,
        }
    }

    /// The set's boxes in `rec`, if its box tensor is there with the right row length.
    pub fn boxes(self, rec: &Record) -> Option<Vec<Box4>> {
        let (name, row_len, first) = self.box_source();
        let t = rec.get(name)?;
        (t.shape.len() == 2 && t.row_len() == row_len)
            .then(|| boxes_from_rows(&t.values, row_len, first))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    pub g: usize,
    pub c: usize,
    pub iou: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matching {
    /// Sorted by golden index.
    pub pairs: Vec<Pair>,
    pub unmatched_golden: Vec<usize>,
    pub unmatched_candidate: Vec<usize>,
}

/// Pairs golden and candidate boxes by minimum total 1 − IoU; assigned pairs below `min_iou`
/// are left unmatched on both sides.
pub fn match_boxes(golden: &[Box4], candidate: &[Box4], min_iou: f64) -> Matching {
    let (n, m) = (golden.len(), candidate.len());
    let mut cost = Vec::with_capacity(n * m);
    for g in golden {
        cost.extend(candidate.iter().map(|c| 1.0 - iou_plus1(g, c)));
    }
    let mut matched_g = vec![false; n];
    let mut matched_c = vec![false; m];
    let mut pairs = Vec::new();
    for (gi, ci) in min_cost_assignment(&cost, n, m) {
        let iou = 1.0 - cost[gi * m + ci];
        if iou >= min_iou {
            matched_g[gi] = true;
            matched_c[ci] = true;
            pairs.push(Pair { g: gi, c: ci, iou });
        }
    }
    let unmatched = |seen: &[bool]| (0..seen.len()).filter(|&i| !seen[i]).collect();
    Matching {
        pairs,
        unmatched_golden: unmatched(&matched_g),
        unmatched_candidate: unmatched(&matched_c),
    }
}

/// Pairs of matched pairs (indices into `pairs`, p < q in golden order) that the candidate
/// orders the other way round.
pub fn inversions(pairs: &[Pair]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for p in 0..pairs.len() {
        for q in p + 1..pairs.len() {
            if pairs[p].c > pairs[q].c {
                out.push((p, q));
            }
        }
    }
    out
}

/// Best IoU of `b` with any of `others` (0 when there are none).
pub fn best_iou(b: &Box4, others: &[Box4]) -> f64 {
    others.iter().map(|o| iou_plus1(b, o)).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize) -> Vec<Box4> {
        (0..n)
            .map(|i| {
                let x = 50.0 * i as f64;
                [x, 0.0, x + 30.0, 30.0]
            })
            .collect()
    }

    #[test]
    fn permutation_is_matched_and_counted_as_inversions() {
        let g = grid(4);
        let c = vec![g[2], g[0], g[1], g[3]];
        let m = match_boxes(&g, &c, 0.5);
        let got: Vec<(usize, usize)> = m.pairs.iter().map(|p| (p.g, p.c)).collect();
        assert_eq!(got, [(0, 1), (1, 2), (2, 0), (3, 3)]);
        assert!(m.unmatched_golden.is_empty() && m.unmatched_candidate.is_empty());
        // golden 2 now comes before golden 0 and 1.
        assert_eq!(inversions(&m.pairs), [(0, 2), (1, 2)]);
    }

    #[test]
    fn dropped_and_moved_boxes_are_unmatched() {
        let g = grid(3);
        let mut c = vec![g[0], g[2]];
        c.push([500.0, 500.0, 530.0, 530.0]);
        let m = match_boxes(&g, &c, 0.5);
        assert_eq!(m.unmatched_golden, [1]);
        assert_eq!(m.unmatched_candidate, [2]);
        assert!(inversions(&m.pairs).is_empty());
    }

    #[test]
    fn low_overlap_is_not_a_match() {
        let g = vec![[0.0, 0.0, 9.0, 9.0]];
        let c = vec![[5.0, 0.0, 14.0, 9.0]]; // IoU 1/3
        let m = match_boxes(&g, &c, 0.5);
        assert!(m.pairs.is_empty());
        assert_eq!(
            (m.unmatched_golden.len(), m.unmatched_candidate.len()),
            (1, 1)
        );
    }
}
