//! generate_tsv's box selection (`get_detections_from_im`, §6.1–6.3) and LXMERT's label fields
//! (§6.5), bit for bit.
//!
//! The boxes are the un-regressed proposals divided by f32(s); every class 1..C−1 runs
//! `cpu_nms(0.3)` over the same boxes with its own score column; `max_conf[i]` is the best score of
//! box i over the classes in which it survives; boxes are kept by a 0.2 threshold or, when that
//! gives too few or too many, by NumPy's introsort on `max_conf`.

use crate::nms::{BoxF32, SuppressionMatrix};
use crate::numpy_sort::argsort_numpy_desc;

/// generate_tsv's selection settings (§6.3; LXMERT's variant is [`SelectConfig::fixed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectConfig {
    /// `conf_thresh`, compared in f64 against the f32 scores held in `max_conf`.
    pub conf_thresh: f64,
    /// `MIN_BOXES`.
    pub min_boxes: usize,
    /// `MAX_BOXES`.
    pub max_boxes: usize,
    /// `cfg.TEST.NMS` of the per-class NMS.
    pub nms_thresh: f64,
}

/// generate_tsv's `conf_thresh`.
pub const CONF_THRESH: f64 = 0.2;
/// generate_tsv's `MIN_BOXES`.
pub const MIN_BOXES: usize = 10;
/// generate_tsv's `MAX_BOXES`.
pub const MAX_BOXES: usize = 100;
/// `cfg.TEST.NMS`, the per-class NMS threshold (§6.2).
pub const CLASS_NMS_THRESH: f64 = 0.3;

impl Default for SelectConfig {
    fn default() -> Self {
        SelectConfig {
            conf_thresh: CONF_THRESH,
            min_boxes: MIN_BOXES,
            max_boxes: MAX_BOXES,
            nms_thresh: CLASS_NMS_THRESH,
        }
    }
}

impl SelectConfig {
    /// `MIN_BOXES = MAX_BOXES = n` (LXMERT's 36 boxes, §6.5), everything else as generate_tsv.
    pub fn fixed(n: usize) -> Self {
        SelectConfig {
            min_boxes: n,
            max_boxes: n,
            ..SelectConfig::default()
        }
    }
}

/// Which branch of §6.3 chose the boxes; it also fixes their order (ascending roi index for
/// `Threshold`, descending `max_conf` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionBranch {
    /// `np.where(max_conf >= conf_thresh)`, between `min_boxes` and `max_boxes` entries.
    Threshold,
    /// Too few above the threshold: `argsort(max_conf)[::-1][:min_boxes]`.
    ArgsortMinBoxes,
    /// Too many: `argsort(max_conf)[::-1][:max_boxes]`.
    ArgsortMaxBoxes,
}

impl SelectionBranch {
    /// The name the golden metadata `selection` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionBranch::Threshold => "threshold",
            SelectionBranch::ArgsortMinBoxes => "argsort_min_boxes",
            SelectionBranch::ArgsortMaxBoxes => "argsort_max_boxes",
        }
    }
}

/// The selection of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// generate_tsv's `max_conf` (f64 holding f32 values), one per roi.
    pub max_conf: Vec<f64>,
    /// `keep_boxes`: roi indices in output order.
    pub keep: Vec<usize>,
    pub branch: SelectionBranch,
}

/// `rois[:, 1:5] / im_scales[0]` under NumPy 1.x casting (§6.1): an f32 division by f32(s), not
/// an f64 one. The result is in original-image pixels and not clipped to the image.
pub fn unscale_boxes(rois: &[BoxF32], im_scale: f64) -> Vec<BoxF32> {
    let s = im_scale as f32;
    rois.iter().map(|b| b.map(|v| v / s)).collect()
}

/// generate_tsv's `max_conf` (§6.2): for every roi, the largest `cls_prob[i, c]` over the classes
/// c = 1..num_classes−1 whose `cpu_nms(nms_thresh)` keeps roi i; 0 where none does.
///
/// No class can be skipped, not even one whose scores are all below `conf_thresh`: its survivors
/// still raise `max_conf`, which orders the argsort branches of §6.3. The classes share their
/// boxes, so the overlap relation is computed once ([`SuppressionMatrix`]); each class then costs
/// one introsort and one greedy pass.
///
/// # Panics
/// If `cls_prob` does not hold `boxes.len() · num_classes` values.
pub fn max_conf(
    boxes: &[BoxF32],
    cls_prob: &[f32],
    num_classes: usize,
    nms_thresh: f64,
) -> Vec<f64> {
    let r = boxes.len();
    assert_eq!(
        cls_prob.len(),
        r * num_classes,
        "max_conf: cls_prob must be R × num_classes"
    );
    let overlaps = SuppressionMatrix::new(boxes, nms_thresh);
    let mut best = vec![0.0f64; r];
    let mut column = vec![0.0f32; r];
    for c in 1..num_classes {
        for (i, v) in column.iter_mut().enumerate() {
            *v = cls_prob[i * num_classes + c];
        }
        for i in overlaps.nms(&column) {
            let score = f64::from(column[i]);
            if score > best[i] {
                best[i] = score;
            }
        }
    }
    best
}

/// §6.3: which rois are written, in which order.
pub fn keep_boxes(max_conf: &[f64], cfg: &SelectConfig) -> (Vec<usize>, SelectionBranch) {
    let above: Vec<usize> = (0..max_conf.len())
        .filter(|&i| max_conf[i] >= cfg.conf_thresh)
        .collect();
    let top = |n: usize| {
        let mut order = argsort_numpy_desc(max_conf);
        order.truncate(n);
        order
    };
    if above.len() < cfg.min_boxes {
        (top(cfg.min_boxes), SelectionBranch::ArgsortMinBoxes)
    } else if above.len() > cfg.max_boxes {
        (top(cfg.max_boxes), SelectionBranch::ArgsortMaxBoxes)
    } else {
        (above, SelectionBranch::Threshold)
    }
}

/// generate_tsv's selection (§6.2–6.3) on the un-scaled boxes ([`unscale_boxes`]) and the
/// `cls_prob` rows (R × num_classes, row-major, column 0 = background).
///
/// # Panics
/// If `cls_prob` does not hold `boxes.len() · num_classes` values.
pub fn select_boxes(
    boxes: &[BoxF32],
    cls_prob: &[f32],
    num_classes: usize,
    cfg: &SelectConfig,
) -> Selection {
    let max_conf = max_conf(boxes, cls_prob, num_classes, cfg.nms_thresh);
    let (keep, branch) = keep_boxes(&max_conf, cfg);
    Selection {
        max_conf,
        keep,
        branch,
    }
}

/// `np.argmax(row)`: the index of the first maximum; as NumPy's, a NaN counts as the maximum at
/// its first occurrence. `None` for an empty row.
pub fn np_argmax<T: PartialOrd + Copy>(row: &[T]) -> Option<usize> {
    #[allow(clippy::eq_op)] // `v != v` is the NaN test for any PartialOrd float
    let is_nan = |v: T| v != v;
    let mut best = 0;
    for (c, &v) in row.iter().enumerate().skip(1) {
        if is_nan(row[best]) {
            break;
        }
        if v > row[best] || is_nan(v) {
            best = c;
        }
    }
    (!row.is_empty()).then_some(best)
}

/// LXMERT's label of one probability row, `np.argmax(p[1:])` (§6.5): the 0-based class id with
/// Caffe's background column 0 left out, and its value. `None` when the row has no column
/// after the background.
pub fn argmax_skipping_background<T: PartialOrd + Copy>(row: &[T]) -> Option<(usize, T)> {
    let classes = row.get(1..)?;
    np_argmax(classes).map(|c| (c, classes[c]))
}

/// LXMERT's `np.argmax(p[keep][:, 1:], axis=1)` and `np.max(…)` (§6.5) on the kept rows of a
/// row-major R × `ncols` matrix: [`argmax_skipping_background`] per kept row.
///
/// # Panics
/// If `ncols < 2` (nothing left after dropping column 0) or a kept row is out of range.
pub fn argmax_skip_first(rows: &[f32], ncols: usize, keep: &[usize]) -> (Vec<i64>, Vec<f32>) {
    assert!(
        ncols >= 2,
        "argmax_skip_first: need at least 2 columns, got {ncols}"
    );
    keep.iter()
        .map(|&k| {
            let (c, v) =
                argmax_skipping_background(&rows[k * ncols..(k + 1) * ncols]).expect("ncols >= 2");
            (c as i64, v)
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscale_divides_by_the_f32_scale() {
        let s = 0.9090909090909091f64;
        let got = unscale_boxes(&[[1.0, 2.0, 3.0, 599.0]], s);
        assert_eq!(got[0][3], 599.0f32 / (s as f32));
        // The f64 quotient rounds differently here: the f32 path is the one NumPy 1.x takes.
        assert_ne!(got[0][3], (599.0f64 / s) as f32);
    }

    #[test]
    fn branch_names_are_the_golden_ones() {
        assert_eq!(SelectionBranch::Threshold.as_str(), "threshold");
        assert_eq!(
            SelectionBranch::ArgsortMinBoxes.as_str(),
            "argsort_min_boxes"
        );
        assert_eq!(
            SelectionBranch::ArgsortMaxBoxes.as_str(),
            "argsort_max_boxes"
        );
    }

    #[test]
    fn threshold_branch_keeps_ascending_index_order() {
        let cfg = SelectConfig {
            min_boxes: 2,
            max_boxes: 3,
            ..SelectConfig::default()
        };
        let mc = [0.1, 0.9, f64::from(0.2f32), 0.5, 0.0];
        assert_eq!(
            keep_boxes(&mc, &cfg),
            (vec![1, 2, 3], SelectionBranch::Threshold)
        );
    }

    #[test]
    fn argsort_branches_order_by_descending_max_conf() {
        let mc = [0.1, 0.9, 0.3, 0.5, 0.0];
        let few = SelectConfig {
            min_boxes: 4,
            max_boxes: 5,
            ..SelectConfig::default()
        };
        assert_eq!(
            keep_boxes(&mc, &few),
            (vec![1, 3, 2, 0], SelectionBranch::ArgsortMinBoxes)
        );
        let many = SelectConfig {
            min_boxes: 1,
            max_boxes: 2,
            ..SelectConfig::default()
        };
        assert_eq!(
            keep_boxes(&mc, &many),
            (vec![1, 3], SelectionBranch::ArgsortMaxBoxes)
        );
        // Fewer rois than min_boxes: all of them.
        assert_eq!(keep_boxes(&mc[..2], &SelectConfig::default()).0, vec![1, 0]);
    }

    /// A class whose scores are all below the threshold still sets `max_conf` (it orders the
    /// argsort branches), and a box suppressed in every class gets 0.
    #[test]
    fn max_conf_takes_every_class_and_only_survivors() {
        let boxes = [
            [0.0, 0.0, 9.0, 9.0],
            [0.0, 0.0, 9.0, 9.0],
            [50.0, 50.0, 59.0, 59.0],
        ];
        #[rustfmt::skip]
        let cls_prob = [
            0.5, 0.15, 0.05,
            0.4, 0.10, 0.04,
            0.9, 0.01, 0.02,
        ];
        let mc = max_conf(&boxes, &cls_prob, 3, 0.3);
        assert_eq!(mc, vec![f64::from(0.15f32), 0.0, f64::from(0.02f32)]);
    }

    #[test]
    fn argmax_takes_the_first_maximum_after_column_zero() {
        #[rustfmt::skip]
        let rows = [
            9.0, 1.0, 3.0, 3.0,
            0.0, 2.0, 1.0, 0.5,
        ];
        let (ids, conf) = argmax_skip_first(&rows, 4, &[0, 1, 0]);
        assert_eq!(ids, vec![1, 0, 1]);
        assert_eq!(conf, vec![3.0, 2.0, 3.0]);
        let (ids, conf) = argmax_skip_first(&[0.0, 1.0, f32::NAN, 5.0, f32::NAN], 5, &[0]);
        assert_eq!(ids, vec![1]);
        assert!(conf[0].is_nan());
    }
}
