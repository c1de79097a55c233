//! The RPN head on `res4b22` (§2.3): `rpn_conv/3x3` + ReLU, objectness and box deltas, with
//! Caffe's two-way softmax, laid out as Caffe's `rpn_cls_prob_reshape` and `rpn_bbox_pred`.
//!
//! The HF layout stores one objectness logit per anchor, `L = fg − bg` (docs/ports.md §G), and its
//! anchors in its own (size-major) order. The anchor order is read from
//! `cell_anchors.0` at load time ([`butd_host::anchors::anchor_order`]) and the channels are put back in Caffe's
//! (ratio-major) order, so the proposal layer sees exactly Caffe's blobs.

use tch::{Device, Tensor};

use crate::trunk::{Conv, Geometry, Layout, Placement};
use crate::weights::{WeightPath, WeightsError};
use butd_host::anchors::{anchor_order, NUM_ANCHORS};

/// Channels of `res4b22` and of `rpn_conv/3x3` (§8.2).
const RPN_IN_CHANNELS: i64 = 1024;
const RPN_HIDDEN_CHANNELS: i64 = 512;
const A: i64 = NUM_ANCHORS as i64;

/// Caffe's 2-way softmax over the pair (bg, fg) written with the HF logit `L = fg − bg`
/// (§2.3): `m = max(0, L)`, `e0 = exp(−m)`, `e1 = exp(L − m)`, `P_bg = e0/(e0+e1)`,
/// `P_fg = e1/(e0+e1)`. As in Caffe, a confident anchor's `P_fg` rounds to exactly 1.0 in f32,
/// so many anchors can tie at 1.0 (the proposal layer's sort then decides, §7.1).
pub fn caffe_two_way_softmax(logit: &Tensor) -> (Tensor, Tensor) {
    let m = logit.clamp_min(0.0);
    let e0 = m.neg().exp();
    let e1 = (logit - &m).exp();
    let sum = &e0 + &e1;
    (e0 / &sum, e1 / sum)
}

/// Caffe's RPN blobs for one image (on the detector's device).
pub struct RpnOutput {
    /// `rpn_cls_prob_reshape` (1, 24, h, w): channel a = background, 12 + a = foreground
    /// probability of Caffe anchor a.
    pub cls_prob_reshape: Tensor,
    /// `rpn_bbox_pred` (1, 48, h, w): channel 4a + j = (dx, dy, dw, dh)[j] of Caffe anchor a.
    pub bbox_pred: Tensor,
}

#[derive(Debug)]
pub struct Rpn {
    conv: Conv,
    /// 1×1 to the 12 logits `fg − bg`, rows already in Caffe anchor order.
    objectness: Conv,
    /// 1×1 to the 48 deltas, rows already in Caffe anchor order.
    deltas: Conv,
}

impl Rpn {
    /// Loads `proposal_generator.{rpn_head.*, anchor_generator.cell_anchors.0}` and permutes
    /// the output rows to Caffe's anchor order once, so the forward pass needs no gather.
    pub fn load(path: &WeightPath, device: Device) -> Result<Rpn, WeightsError> {
        // As the trunk whose output it reads (see `Layout::Nchw`).
        let placement = Placement {
            device,
            layout: Layout::Nchw,
            kind: tch::Kind::Float,
        };
        let anchors_path = path.sub("anchor_generator").sub("cell_anchors");
        let cell_anchors = anchors_path.get("0", &[A, 4])?;
        let values: Vec<f32> =
            Vec::try_from(cell_anchors.flatten(0, -1)).map_err(|e| path.torch_error(e))?;
        let boxes: Vec<[f32; 4]> = values
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect();
        let order = anchor_order(&boxes).map_err(|m| anchors_path.value_error("0", m))?;

        let head = path.sub("rpn_head");
        let conv = Conv::load_biased(
            &head.sub("conv"),
            [RPN_HIDDEN_CHANNELS, RPN_IN_CHANNELS, 3, 3],
            Geometry::new(1, 1, 1),
            placement,
        )?;
        let objectness_rows: Vec<i64> = order.iter().map(|&k| k as i64).collect();
        let delta_rows: Vec<i64> = order
            .iter()
            .flat_map(|&k| (0..4).map(move |j| 4 * k as i64 + j))
            .collect();
        let permuted = |name: &str, rows: &[i64]| -> Result<Conv, WeightsError> {
            let p = head.sub(name);
            let n = rows.len() as i64;
            let index = Tensor::from_slice(rows);
            let weight = p
                .get("weight", &[n, RPN_HIDDEN_CHANNELS, 1, 1])?
                .index_select(0, &index);
            let bias = p.get("bias", &[n])?.index_select(0, &index);
            Ok(Conv::new(weight, bias, Geometry::POINTWISE, placement))
        };
        Ok(Rpn {
            conv,
            objectness: permuted("objectness_logits", &objectness_rows)?,
            deltas: permuted("anchor_deltas", &delta_rows)?,
        })
    }

    pub fn forward(&self, res4b22: &Tensor) -> RpnOutput {
        let hidden = self.conv.forward(res4b22).relu_();
        let logits = self.objectness.forward(&hidden);
        let (bg, fg) = caffe_two_way_softmax(&logits);
        RpnOutput {
            cls_prob_reshape: Tensor::cat(&[bg, fg], 1),
            bbox_pred: self.deltas.forward(&hidden),
        }
    }

    /// Multiply-accumulates on an `h`×`w` feature map.
    pub fn macs(&self, h: i64, w: i64) -> i64 {
        self.conv.macs(h, w) + self.objectness.macs(h, w) + self.deltas.macs(h, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_way_softmax_equals_caffe_pair_softmax() {
        let bg = Tensor::from_slice(&[0.3f32, -2.0, 50.0, 7.0, 0.0, -30.0]);
        let fg = Tensor::from_slice(&[1.1f32, 3.0, -50.0, 7.0, 40.0, 30.0]);
        let (p_bg, p_fg) = caffe_two_way_softmax(&(&fg - &bg));
        // Caffe: m = max(bg, fg), e = exp(s − m), p = e / Σe.
        let m = bg.maximum(&fg);
        let (e0, e1) = ((&bg - &m).exp(), (&fg - &m).exp());
        let sum = &e0 + &e1;
        let close = |a: &Tensor, b: &Tensor| {
            f64::try_from((a - b).abs().max()).unwrap() <= 2.0 * f64::from(f32::EPSILON)
        };
        assert!(close(&p_bg, &(e0 / &sum)));
        assert!(close(&p_fg, &(e1 / &sum)));
        // Saturation: fg − bg = 60 gives exactly 1.0, as Caffe's f32 softmax does.
        assert_eq!(f32::try_from(p_fg.get(5)).unwrap(), 1.0);
    }
}
