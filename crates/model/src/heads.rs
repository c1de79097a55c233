//! res5 on the pooled rois (§4.2), `pool5` (§4.3) and the heads (§5): `cls_prob`,
//! `predicted_cls` and the attribute branch, all in Caffe's column order.
//!
//! The HF layout puts background (objects) and "no attribute" (attributes) in the **last** row
//! (docs/ports.md §G); the rows of `cls_score`, `cls_embedding` and `attr_score` are rotated back to
//! Caffe's order (that row first) once at load time ([`hf_to_caffe_rows`]), so every output
//! column and the embedding index mean what they mean in Caffe.
//!
//! `bbox_pred` is not computed: generate_tsv writes the un-regressed proposals (§6.1), and the
//! HF layout has no background deltas (Caffe's rows 0..3 are dropped), so Caffe's full
//! `bbox_pred` blob cannot be reproduced from it anyway. Its shape is still checked.

use tch::{Device, Kind, Tensor};

use crate::trunk::{Layout, Placement, Stage, StageSpec};
use crate::weights::{WeightPath, WeightsError};

/// Classes including background (column 0 in Caffe).
pub const NUM_CLASSES: i64 = 1601;
/// Attributes including "no attribute" (column 0 in Caffe).
pub const NUM_ATTRIBUTES: i64 = 401;
/// Channels of `pool5_flat`, the written features.
pub const POOL5_CHANNELS: i64 = 2048;
const EMBEDDING_DIM: i64 = 256;
const ATTR_HIDDEN: i64 = 512;

/// Why the heads give no output for an image.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(
        "non-finite class scores (NaN or ±inf) on {rows} of {of} rois: the weights or the \
         image's features are broken"
    )]
    NonFinite { rows: usize, of: usize },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// res5a…res5c: stride 1 everywhere, 3×3 with dilation 2 and pad 2 (§4.2).
pub const RES5: StageSpec = StageSpec {
    blocks: 3,
    in_channels: 1024,
    mid_channels: 512,
    out_channels: 2048,
    stride: 1,
    dilation: 2,
};

/// Rotates rows so that the last one (HF's background / no-attribute) comes first, Caffe's
/// order: HF rows 0..n−2 = Caffe rows 1..n−1, HF row n−1 = Caffe row 0 (docs/ports.md §G).
pub fn hf_to_caffe_rows(t: &Tensor) -> Tensor {
    let n = t.size()[0];
    Tensor::cat(&[t.narrow(0, n - 1, 1), t.narrow(0, 0, n - 1)], 0)
}

/// Caffe's CPU `ArgMax` (top_k 1) per row (§5.3): the **last** index among equal maxima
/// (`std::partial_sort` of (value, index) pairs with `std::greater`). The fork's GPU kernel
/// would keep the first; the golden files are CPU.
pub fn argmax_last(x: &Tensor) -> Tensor {
    let n = x.size()[1];
    let max = x.amax([1], true);
    let columns = Tensor::arange(n, (Kind::Int64, x.device())).unsqueeze(0);
    columns
        .where_self(
            &x.eq_tensor(&max),
            &Tensor::from(-1i64).to_device(x.device()),
        )
        .amax([1], false)
}

#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(
        path: &WeightPath,
        out: i64,
        input: i64,
        device: Device,
    ) -> Result<Linear, WeightsError> {
        Ok(Linear {
            weight: path.get("weight", &[out, input])?.to_device(device),
            bias: path.get("bias", &[out])?.to_device(device),
        })
    }

    fn rows_hf_to_caffe(self) -> Linear {
        Linear {
            weight: hf_to_caffe_rows(&self.weight),
            bias: hf_to_caffe_rows(&self.bias),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

/// The heads' outputs for a set of rois (on the detector's device).
pub struct HeadOutput {
    /// `cls_prob` (R, 1601), column 0 = background.
    pub cls_prob: Tensor,
    /// `predicted_cls` (R) as i64 Caffe class indices (0 = background possible).
    pub predicted_cls: Tensor,
    /// `attr_prob` (R, 401), column 0 = no attribute.
    pub attr_prob: Tensor,
}

#[derive(Debug)]
pub struct Heads {
    res5: Stage,
    /// What res5 computes in (`Kind::BFloat16` in `--precision bf16`, [`crate::precision`]).
    res5_kind: Kind,
    cls_score: Linear,
    cls_embedding: Tensor,
    fc_attr: Linear,
    attr_score: Linear,
}

impl Heads {
    /// Loads `roi_heads.res5.*` (kept in `res5_kind`) and `roi_heads.box_predictor.*` (f32).
    pub fn load(
        roi_heads: &WeightPath,
        device: Device,
        res5_kind: Kind,
    ) -> Result<Heads, WeightsError> {
        // Channels-last: the ROI pooler's output already is (see `Layout::ChannelsLast`).
        let placement = Placement {
            device,
            layout: Layout::ChannelsLast,
            kind: res5_kind,
        };
        let res5 = Stage::load(&roi_heads.sub("res5"), &RES5, placement)?;
        let p = roi_heads.sub("box_predictor");
        let cls_score = Linear::load(&p.sub("cls_score"), NUM_CLASSES, POOL5_CHANNELS, device)?;
        p.sub("bbox_pred")
            .check("weight", &[(NUM_CLASSES - 1) * 4, POOL5_CHANNELS])?;
        p.sub("bbox_pred").check("bias", &[(NUM_CLASSES - 1) * 4])?;
        let embedding = p
            .sub("cls_embedding")
            .get("weight", &[NUM_CLASSES, EMBEDDING_DIM])?
            .to_device(device);
        let fc_attr = Linear::load(
            &p.sub("fc_attr"),
            ATTR_HIDDEN,
            POOL5_CHANNELS + EMBEDDING_DIM,
            device,
        )?;
        let attr_score = Linear::load(&p.sub("attr_score"), NUM_ATTRIBUTES, ATTR_HIDDEN, device)?;
        Ok(Heads {
            res5,
            res5_kind,
            cls_score: cls_score.rows_hf_to_caffe(),
            cls_embedding: hf_to_caffe_rows(&embedding),
            fc_attr,
            attr_score: attr_score.rows_hf_to_caffe(),
        })
    }

    /// `roipool5` (n, 1024, 14, 14) f32 → res5 → global average `pool5_flat` (n, 2048) f32
    /// (§4.2–4.3). In bf16 the pooled input is rounded to bf16 and the average taken in f32.
    pub fn pool5(&self, roipool5: &Tensor) -> Tensor {
        self.res5
            .forward(&roipool5.to_kind(self.res5_kind))
            .mean_dim(Some([2i64, 3].as_slice()), false, Kind::Float)
    }

    /// The classifier and the attribute branch on `pool5_flat` (§5.1, §5.3). Non-finite class
    /// scores (NaN weights or features) are an error: no class is the maximum of a NaN row, and
    /// [`argmax_last`]'s −1 would reach `index_select`.
    pub fn classify(&self, pool5_flat: &Tensor) -> Result<HeadOutput, ClassifyError> {
        let cls_score = self.cls_score.forward(pool5_flat);
        let finite = cls_score
            .f_isfinite()?
            .f_all_dims(Some([1i64].as_slice()), false)?;
        let bad = finite
            .f_logical_not()?
            .f_sum(Kind::Int64)?
            .f_int64_value(&[])?;
        if bad > 0 {
            return Err(ClassifyError::NonFinite {
                rows: bad as usize,
                of: pool5_flat.size()[0] as usize,
            });
        }
        let predicted_cls = argmax_last(&cls_score);
        let embedded = self.cls_embedding.index_select(0, &predicted_cls);
        let concat = Tensor::cat(&[pool5_flat, &embedded], 1);
        let fc_attr = self.fc_attr.forward(&concat).relu_();
        let attr_score = self.attr_score.forward(&fc_attr);
        Ok(HeadOutput {
            cls_prob: cls_score.softmax(1, Kind::Float),
            predicted_cls,
            attr_prob: attr_score.softmax(1, Kind::Float),
        })
    }

    /// Multiply-accumulates of res5 for one roi and of the heads for one roi.
    pub fn macs_per_roi(&self) -> (i64, i64) {
        let p = crate::roi_pool::POOLED_SIZE as i64;
        let (res5, _, _) = self.res5.macs(p, p);
        let heads = POOL5_CHANNELS * NUM_CLASSES
            + (POOL5_CHANNELS + EMBEDDING_DIM) * ATTR_HIDDEN
            + ATTR_HIDDEN * NUM_ATTRIBUTES;
        (res5, heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_last_keeps_highest_index_of_ties() {
        let x = Tensor::from_slice(&[
            1.0f32, 3.0, 3.0, 0.0, 5.0, 2.0, 5.0, 5.0, -1.0, -1.0, -2.0, -3.0,
        ])
        .view([3, 4]);
        let got: Vec<i64> = Vec::try_from(argmax_last(&x)).unwrap();
        assert_eq!(got, [2, 3, 1]);
    }

    #[test]
    fn hf_rows_rotate_background_first() {
        let t = Tensor::from_slice(&[10i64, 11, 12, 99]);
        let got: Vec<i64> = Vec::try_from(hf_to_caffe_rows(&t)).unwrap();
        assert_eq!(got, [99, 10, 11, 12]);
    }
}
