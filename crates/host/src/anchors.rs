//! The proposal layer's anchors (§2.4): one table, generated as py-faster-rcnn's
//! `generate_anchors` computes it, and everything else derived from it: the +1 convention of the
//! Hugging Face layout's `cell_anchors` and the permutation between HF's (size-major) and
//! Caffe's (ratio-major) anchor order.
//!
//! The model reads the order from the weights ([`anchor_order`]), `butd verify` decodes the
//! stored RPN blobs with [`caffe_anchors`], and the mapping's tests compare the TOML's constant
//! table and `anchor_order` with [`caffe_anchors_hf_convention`] and [`hf_anchor_order`].

/// `generate_anchors`' base size (a 16×16 box at the origin).
pub const ANCHOR_BASE_SIZE: f64 = 16.0;
/// Aspect ratios h/w, the outer loop of the anchor order (§2.4).
pub const ANCHOR_RATIOS: [f64; 3] = [0.5, 1.0, 2.0];
/// Scales, the inner loop (`param_str` `scales: [4, 8, 16, 32]`).
pub const ANCHOR_SCALES: [f64; 4] = [4.0, 8.0, 16.0, 32.0];
/// Anchors per feature-map cell (A).
pub const NUM_ANCHORS: usize = ANCHOR_RATIOS.len() * ANCHOR_SCALES.len();

/// `generate_anchors` (py-faster-rcnn `rpn/generate_anchors.py`) in f64 as NumPy computes it:
/// ratio boxes from a `base_size` square (`np.round` = half to even), then each scaled, ratio
/// outer, scale inner (§2.4).
pub fn generate_anchors(base_size: f64, ratios: &[f64], scales: &[f64]) -> Vec<[f64; 4]> {
    let base = [0.0, 0.0, base_size - 1.0, base_size - 1.0];
    let (w, h, cx, cy) = width_height_centre(&base);
    let size = w * h;
    let mut anchors = Vec::with_capacity(ratios.len() * scales.len());
    for &ratio in ratios {
        let ws = (size / ratio).sqrt().round_ties_even();
        let hs = (ws * ratio).round_ties_even();
        let ratio_box = box_around(ws, hs, cx, cy);
        let (rw, rh, rcx, rcy) = width_height_centre(&ratio_box);
        for &scale in scales {
            anchors.push(box_around(rw * scale, rh * scale, rcx, rcy));
        }
    }
    anchors
}

/// The proposal layer's 12 base anchors: [`generate_anchors`] with the BUTD prototxt's base
/// 16, ratios 0.5/1/2 and scales 4/8/16/32 (§2.4), in Caffe's order a = 4·ratio + scale.
pub fn caffe_anchors() -> Vec<[f64; 4]> {
    generate_anchors(ANCHOR_BASE_SIZE, &ANCHOR_RATIOS, &ANCHOR_SCALES)
}

/// `_whctrs`: width, height (+1 convention) and centre of a box.
fn width_height_centre(b: &[f64; 4]) -> (f64, f64, f64, f64) {
    let w = b[2] - b[0] + 1.0;
    let h = b[3] - b[1] + 1.0;
    (w, h, b[0] + 0.5 * (w - 1.0), b[1] + 0.5 * (h - 1.0))
}

/// `_mkanchors`: the box of width `w` and height `h` around a centre.
fn box_around(w: f64, h: f64, cx: f64, cy: f64) -> [f64; 4] {
    [
        cx - 0.5 * (w - 1.0),
        cy - 0.5 * (h - 1.0),
        cx + 0.5 * (w - 1.0),
        cy + 0.5 * (h - 1.0),
    ]
}

/// The Caffe anchors (Caffe's order) as HF's `cell_anchors.0` stores them: x2 and y2 + 1, so
/// that HF's `w = x2 − x1` decode gives Caffe's `x2 − x1 + 1` geometry (docs/ports.md §C.3).
pub fn caffe_anchors_hf_convention() -> Vec<[f32; 4]> {
    caffe_anchors()
        .iter()
        .map(|b| {
            [
                b[0] as f32,
                b[1] as f32,
                (b[2] + 1.0) as f32,
                (b[3] + 1.0) as f32,
            ]
        })
        .collect()
}

/// HF anchor k → the Caffe anchor a it holds. HF enumerates a cell's anchors size-major,
/// k = 3·size + ratio (docs/ports.md §C.3); Caffe ratio-major, a = 4·ratio + scale (§2.4); so
/// a(k) = 4·(k mod 3) + k div 3. The mapping's `anchor_order` is this table.
pub fn hf_anchor_order() -> [usize; NUM_ANCHORS] {
    let (ratios, scales) = (ANCHOR_RATIOS.len(), ANCHOR_SCALES.len());
    std::array::from_fn(|k| scales * (k % ratios) + k / ratios)
}

/// For each Caffe anchor a, the index k of the stored `cell_anchors` (HF convention, any
/// order) that holds it, by exact comparison with [`caffe_anchors_hf_convention`]. Fails if
/// they are not the same 12 boxes.
pub fn anchor_order(cell_anchors: &[[f32; 4]]) -> Result<[usize; NUM_ANCHORS], String> {
    let caffe = caffe_anchors_hf_convention();
    if cell_anchors.len() != caffe.len() {
        return Err(format!(
            "{} anchors, expected {}",
            cell_anchors.len(),
            caffe.len()
        ));
    }
    let mut order = [0; NUM_ANCHORS];
    for (a, anchor) in caffe.iter().enumerate() {
        let found: Vec<usize> = (0..cell_anchors.len())
            .filter(|&k| cell_anchors[k] == *anchor)
            .collect();
        match found[..] {
            [k] => order[a] = k,
            _ => {
                return Err(format!(
                    "Caffe anchor {a} {anchor:?} (x2, y2 + 1) occurs {} times in {cell_anchors:?}; \
                     expected the 12 Caffe anchors of §2.4 in any order",
                    found.len()
                ))
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The §2.4 table (verified there against the fork's own `generate_anchors`).
    #[test]
    fn anchors_match_the_table() {
        #[rustfmt::skip]
        let table: [[f64; 4]; 12] = [
            [-38.0, -16.0, 53.0, 31.0], [-84.0, -40.0, 99.0, 55.0],
            [-176.0, -88.0, 191.0, 103.0], [-360.0, -184.0, 375.0, 199.0],
            [-24.0, -24.0, 39.0, 39.0], [-56.0, -56.0, 71.0, 71.0],
            [-120.0, -120.0, 135.0, 135.0], [-248.0, -248.0, 263.0, 263.0],
            [-14.0, -36.0, 29.0, 51.0], [-36.0, -80.0, 51.0, 95.0],
            [-80.0, -168.0, 95.0, 183.0], [-168.0, -344.0, 183.0, 359.0],
        ];
        let anchors = caffe_anchors();
        assert_eq!(anchors, table.to_vec());
        assert_eq!(anchors.len(), NUM_ANCHORS);
    }

    #[test]
    fn caffe_anchor_table_in_hf_convention() {
        // docs/ports.md §C.3, Caffe order, x2/y2 + 1.
        let expected: [[f32; 4]; 12] = [
            [-38., -16., 54., 32.],
            [-84., -40., 100., 56.],
            [-176., -88., 192., 104.],
            [-360., -184., 376., 200.],
            [-24., -24., 40., 40.],
            [-56., -56., 72., 72.],
            [-120., -120., 136., 136.],
            [-248., -248., 264., 264.],
            [-14., -36., 30., 52.],
            [-36., -80., 52., 96.],
            [-80., -168., 96., 184.],
            [-168., -344., 184., 360.],
        ];
        assert_eq!(caffe_anchors_hf_convention(), expected);
    }

    #[test]
    fn hf_anchor_order_is_the_ports_table() {
        // docs/ports.md §C.3: HF k → Caffe a.
        assert_eq!(hf_anchor_order(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    }

    #[test]
    fn anchor_order_recovers_hf_size_major_permutation() {
        let caffe = caffe_anchors_hf_convention();
        let a_of_k = hf_anchor_order();
        let hf: Vec<[f32; 4]> = a_of_k.iter().map(|&a| caffe[a]).collect();
        let order = anchor_order(&hf).unwrap();
        for (a, &k) in order.iter().enumerate() {
            assert_eq!(a_of_k[k], a);
        }
        assert_eq!(anchor_order(&caffe).unwrap(), std::array::from_fn(|i| i));
        let mut wrong = hf.clone();
        wrong[3][2] -= 1.0; // Caffe's own x2 (without +1)
        assert!(anchor_order(&wrong).unwrap_err().contains("occurs 0 times"));
    }
}
