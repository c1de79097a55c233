//! Box geometry shared by matching and tie attribution.

/// `[x1, y1, x2, y2]`, inclusive pixel corners as Caffe stores them.
pub type Box4 = [f64; 4];

/// Overlap of two boxes with the +1 pixel convention of py-faster-rcnn's `cpu_nms`
/// (docs/semantics.md §3 step 7), in f64: verify uses it to pair regions and to decide which
/// boxes an NMS could have suppressed, not to reproduce NMS bits. NaN boxes overlap nothing.
pub fn iou_plus1(a: &Box4, b: &Box4) -> f64 {
    let area = |r: &Box4| (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let inter = iw * ih;
    let iou = inter / (area(a) + area(b) - inter);
    if iou.is_finite() {
        iou
    } else {
        0.0
    }
}

/// `[x1, y1, x2, y2]` with two decimals, for messages and tables.
pub fn format_box(b: &Box4) -> String {
    format!("[{:.2}, {:.2}, {:.2}, {:.2}]", b[0], b[1], b[2], b[3])
}

/// Rows `[x1, y1, x2, y2]` taken from columns `first..first + 4` of a row-major tensor.
pub fn boxes_from_rows(values: &[f64], row_len: usize, first: usize) -> Vec<Box4> {
    values
        .chunks_exact(row_len)
        .map(|r| [r[first], r[first + 1], r[first + 2], r[first + 3]])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_one_convention() {
        // 10×10 pixel boxes (0..9) overlapping in 5×10 pixels: 50 / (100 + 100 − 50).
        let a = [0.0, 0.0, 9.0, 9.0];
        let b = [5.0, 0.0, 14.0, 9.0];
        assert!((iou_plus1(&a, &b) - 50.0 / 150.0).abs() < 1e-15);
        assert_eq!(iou_plus1(&a, &a), 1.0);
        assert_eq!(iou_plus1(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        assert_eq!(iou_plus1(&a, &[f64::NAN, 0.0, 9.0, 9.0]), 0.0);
    }

    #[test]
    fn rows_to_boxes() {
        let rois = [0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(
            boxes_from_rows(&rois, 5, 1),
            vec![[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
        );
    }
}
