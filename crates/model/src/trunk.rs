//! The ResNet-101 C4 trunk, `data` → `res4b22` (§2.1), and the layers it shares with res5.
//!
//! Every convolution is bias-free in Caffe and followed by BatchNorm + Scale; both are folded
//! into one convolution with a bias at load time ([`fold_batchnorm`]). Strides sit on the 1×1
//! convolutions (`branch2a`, `branch1`), as in Caffe's (and HF's `STRIDE_IN_1X1`) layout.

use tch::{Device, Kind, Tensor};

use crate::weights::{fold_batchnorm, WeightPath, WeightsError};

/// How a layer's 4-D tensors are laid out in memory. libtorch picks its convolution kernels by
/// the layout of input and weight, and the outputs keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Contiguous (N, C, H, W). The trunk and RPN use it: on the golden images its results are
    /// the closer to Caffe's im2col + GEMM (res4b22 ≈ 7e-7 relative against ≈ 1e-6), which
    /// matters where near-tied RPN scores decide the order of the rois (§7.1).
    Nchw,
    /// NHWC strides ([`channels_last`]). res5 uses it: oneDNN then runs its 1×1 convolutions
    /// (⅔ of res5's FLOPs, and res5 is 90 % of the network's) as plain GEMMs. Timed layer by
    /// layer on the 2-core Xeon with libtorch 2.11, channels-last ran res5's 1×1 layers 1.4–2.2×
    /// and its dilated 3×3 1.2× faster than NCHW.
    ChannelsLast,
}

/// Where and how a layer keeps its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub device: Device,
    pub layout: Layout,
    /// `Kind::Float`, or `Kind::BFloat16` for res5 in `--precision bf16` ([`crate::precision`]).
    pub kind: Kind,
}

impl Placement {
    /// `t` (CPU, f32) on the device in the kind, 4-D tensors in the layout.
    pub fn place(&self, t: &Tensor) -> Tensor {
        let t = t.to_device(self.device).to_kind(self.kind);
        match (self.layout, t.dim()) {
            (Layout::ChannelsLast, 4) => channels_last(&t),
            _ => t.contiguous(),
        }
    }
}

/// The same (N, C, H, W) tensor stored channels-last (NHWC strides). tch has no
/// `memory_format` argument; a permute to NHWC, a copy, and the inverse permute give exactly
/// that layout.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Where a convolution's taps fall: stride, zero padding and dilation (square).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub stride: i64,
    pub padding: i64,
    pub dilation: i64,
}

impl Geometry {
    pub const fn new(stride: i64, padding: i64, dilation: i64) -> Geometry {
        Geometry {
            stride,
            padding,
            dilation,
        }
    }
    /// 1×1, stride 1.
    pub const POINTWISE: Geometry = Geometry::new(1, 0, 1);
}

/// A convolution with a bias (Caffe conv + BN + Scale folded, or an RPN conv).
#[derive(Debug)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    geometry: Geometry,
}

impl Conv {
    /// `<path>.weight` (out, in, k, k) followed by BatchNorm `<path>.norm.*`, folded.
    pub fn load_folded(
        path: &WeightPath,
        shape: [i64; 4],
        geometry: Geometry,
        placement: Placement,
    ) -> Result<Conv, WeightsError> {
        let weight = path.get("weight", &shape)?;
        let (weight, bias) = fold_batchnorm(&weight, &path.sub("norm"))?;
        Ok(Conv::new(weight, bias, geometry, placement))
    }

    /// `<path>.weight` (out, in, k, k) and `<path>.bias` (out), a convolution with its own bias.
    pub fn load_biased(
        path: &WeightPath,
        shape: [i64; 4],
        geometry: Geometry,
        placement: Placement,
    ) -> Result<Conv, WeightsError> {
        let weight = path.get("weight", &shape)?;
        let bias = path.get("bias", &shape[..1])?;
        Ok(Conv::new(weight, bias, geometry, placement))
    }

    /// A convolution from CPU tensors, placed.
    pub fn new(weight: Tensor, bias: Tensor, geometry: Geometry, placement: Placement) -> Conv {
        Conv {
            weight: placement.place(&weight),
            bias: placement.place(&bias),
            geometry,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let Geometry {
            stride,
            padding,
            dilation,
        } = self.geometry;
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            [stride; 2],
            [padding; 2],
            [dilation; 2],
            1,
        )
    }

    /// Multiply-accumulates for one output map of `out_h`×`out_w` (for FLOP counts).
    pub fn macs(&self, out_h: i64, out_w: i64) -> i64 {
        self.weight.size().iter().product::<i64>() * out_h * out_w
    }

    /// Output side for an input side `n` (Caffe's and torch's convolution rule, §2.1).
    pub fn output_size(&self, n: i64) -> i64 {
        let k = self.weight.size()[2];
        let Geometry {
            stride,
            padding,
            dilation,
        } = self.geometry;
        (n + 2 * padding - (dilation * (k - 1) + 1)) / stride + 1
    }
}

/// One bottleneck block (§2.1): 1×1 (stride s) → 3×3 (dilation d, pad d) → 1×1, each with ReLU
/// except the last, plus the shortcut (a 1×1 projection with stride s in the first block of a
/// stage), then ReLU of the sum.
#[derive(Debug)]
pub struct Bottleneck {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    shortcut: Option<Conv>,
}

/// The channel widths and geometry of a stage of bottleneck blocks.
#[derive(Debug, Clone, Copy)]
pub struct StageSpec {
    pub blocks: usize,
    pub in_channels: i64,
    pub mid_channels: i64,
    pub out_channels: i64,
    /// Stride of the first block's `conv1` and shortcut.
    pub stride: i64,
    /// Dilation (= padding) of every `conv2`.
    pub dilation: i64,
}

impl Bottleneck {
    /// Block `index` of a stage; HF keys `<path>.{shortcut,conv1,conv2,conv3}`.
    pub fn load(
        path: &WeightPath,
        spec: &StageSpec,
        index: usize,
        placement: Placement,
    ) -> Result<Bottleneck, WeightsError> {
        let first = index == 0;
        let input = if first {
            spec.in_channels
        } else {
            spec.out_channels
        };
        let stride = if first { spec.stride } else { 1 };
        let (mid, out, d) = (spec.mid_channels, spec.out_channels, spec.dilation);
        let shortcut = if first {
            let geometry = Geometry::new(stride, 0, 1);
            Some(Conv::load_folded(
                &path.sub("shortcut"),
                [out, input, 1, 1],
                geometry,
                placement,
            )?)
        } else {
            None
        };
        Ok(Bottleneck {
            conv1: Conv::load_folded(
                &path.sub("conv1"),
                [mid, input, 1, 1],
                Geometry::new(stride, 0, 1),
                placement,
            )?,
            conv2: Conv::load_folded(
                &path.sub("conv2"),
                [mid, mid, 3, 3],
                Geometry::new(1, d, d),
                placement,
            )?,
            conv3: Conv::load_folded(
                &path.sub("conv3"),
                [out, mid, 1, 1],
                Geometry::POINTWISE,
                placement,
            )?,
            shortcut,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let a = self.conv1.forward(x).relu_();
        let b = self.conv2.forward(&a).relu_();
        drop(a);
        let mut sum = self.conv3.forward(&b);
        drop(b);
        match &self.shortcut {
            Some(projection) => sum += projection.forward(x),
            None => sum += x,
        }
        sum.relu_()
    }

    /// Multiply-accumulates for an `h`×`w` input; returns them and the output size.
    pub fn macs(&self, h: i64, w: i64) -> (i64, i64, i64) {
        let (oh, ow) = (self.conv1.output_size(h), self.conv1.output_size(w));
        let mut macs = self.conv1.macs(oh, ow) + self.conv2.macs(oh, ow) + self.conv3.macs(oh, ow);
        if let Some(projection) = &self.shortcut {
            macs += projection.macs(oh, ow);
        }
        (macs, oh, ow)
    }
}

/// A stage of bottleneck blocks, HF keys `<path>.0 … <path>.{blocks-1}`.
#[derive(Debug)]
pub struct Stage {
    blocks: Vec<Bottleneck>,
}

impl Stage {
    pub fn load(
        path: &WeightPath,
        spec: &StageSpec,
        placement: Placement,
    ) -> Result<Stage, WeightsError> {
        let blocks = (0..spec.blocks)
            .map(|i| Bottleneck::load(&path.sub(i), spec, i, placement))
            .collect::<Result<_, _>>()?;
        Ok(Stage { blocks })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = self.blocks[0].forward(x);
        for block in &self.blocks[1..] {
            y = block.forward(&y);
        }
        y
    }

    /// Multiply-accumulates for an `h`×`w` input; returns them and the output size.
    pub fn macs(&self, mut h: i64, mut w: i64) -> (i64, i64, i64) {
        let mut total = 0;
        for block in &self.blocks {
            let (macs, oh, ow) = block.macs(h, w);
            total += macs;
            (h, w) = (oh, ow);
        }
        (total, h, w)
    }
}

/// res2, res3, res4 of ResNet-101 (§2.1, §8.2).
pub const TRUNK_STAGES: [(&str, StageSpec); 3] = [
    (
        "res2",
        StageSpec {
            blocks: 3,
            in_channels: 64,
            mid_channels: 64,
            out_channels: 256,
            stride: 1,
            dilation: 1,
        },
    ),
    (
        "res3",
        StageSpec {
            blocks: 4,
            in_channels: 256,
            mid_channels: 128,
            out_channels: 512,
            stride: 2,
            dilation: 1,
        },
    ),
    (
        "res4",
        StageSpec {
            blocks: 23,
            in_channels: 512,
            mid_channels: 256,
            out_channels: 1024,
            stride: 2,
            dilation: 1,
        },
    ),
];

/// `pool1`'s window (§2.1): MAX 3×3, stride 2, pad 0.
const POOL1_KERNEL: i64 = 3;
const POOL1_STRIDE: i64 = 2;

/// Caffe's pooling output size with pad 0 (§2.1): `ceil((n − k)/s) + 1`, the last window
/// truncated at the border. (Caffe's "last window must start inside" correction only applies
/// with padding.) A side one short of the kernel still gives one truncated window; two or more
/// short give none (C's `ceil` of a negative quotient rounds towards zero).
pub fn caffe_ceil_pool_size(n: i64, kernel: i64, stride: i64) -> i64 {
    let span = n - kernel;
    let windows_after_first = if span >= 0 {
        (span + stride - 1) / stride
    } else {
        -(-span / stride)
    };
    windows_after_first + 1
}

/// `pool1` (§2.1): Caffe's ceil-mode MAX pooling. libtorch's `max_pool2d(ceil_mode = true)`
/// with pad 0 has the same windows (`[2i, min(2i+3, n))`) and output size; the result is
/// checked against [`caffe_ceil_pool_size`].
pub fn caffe_pool1(x: &Tensor) -> Tensor {
    let y = x.max_pool2d([POOL1_KERNEL; 2], [POOL1_STRIDE; 2], [0, 0], [1, 1], true);
    let (n_in, n_out) = (x.size(), y.size());
    for axis in 2..4 {
        assert_eq!(
            n_out[axis],
            caffe_ceil_pool_size(n_in[axis], POOL1_KERNEL, POOL1_STRIDE),
            "max_pool2d(ceil_mode) disagrees with Caffe's pooled size for input {n_in:?}"
        );
    }
    y
}

/// conv1 … res4b22.
#[derive(Debug)]
pub struct Trunk {
    conv1: Conv,
    stages: Vec<Stage>,
}

impl Trunk {
    /// Loads `backbone.stem.conv1` and `backbone.res{2,3,4}`, NCHW (see [`Layout::Nchw`]).
    pub fn load(backbone: &WeightPath, device: Device) -> Result<Trunk, WeightsError> {
        let placement = Placement {
            device,
            layout: Layout::Nchw,
            kind: Kind::Float,
        };
        let conv1 = Conv::load_folded(
            &backbone.sub("stem").sub("conv1"),
            [64, 3, 7, 7],
            Geometry::new(2, 3, 1),
            placement,
        )?;
        let stages = TRUNK_STAGES
            .iter()
            .map(|(name, spec)| Stage::load(&backbone.sub(name), spec, placement))
            .collect::<Result<_, _>>()?;
        Ok(Trunk { conv1, stages })
    }

    /// `data` (1, 3, H′, W′) → `res4b22` (1, 1024, h, w).
    pub fn forward(&self, data: &Tensor) -> Tensor {
        let mut y = caffe_pool1(&self.conv1.forward(data).relu_());
        for stage in &self.stages {
            y = stage.forward(&y);
        }
        y
    }

    /// Multiply-accumulates for an `h`×`w` input, and the feature-map size.
    pub fn macs(&self, h: i64, w: i64) -> (i64, i64, i64) {
        let (ch, cw) = (self.conv1.output_size(h), self.conv1.output_size(w));
        let mut total = self.conv1.macs(ch, cw);
        let (mut h, mut w) = (
            caffe_ceil_pool_size(ch, POOL1_KERNEL, POOL1_STRIDE),
            caffe_ceil_pool_size(cw, POOL1_KERNEL, POOL1_STRIDE),
        );
        for stage in &self.stages {
            let (macs, oh, ow) = stage.macs(h, w);
            total += macs;
            (h, w) = (oh, ow);
        }
        (total, h, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Caffe's PoolingLayer MAX forward with pad 0, written out (§2.1).
    fn caffe_max_pool_direct(x: &[f32], h: usize, w: usize) -> (Vec<f32>, usize, usize) {
        let ph = caffe_ceil_pool_size(h as i64, 3, 2) as usize;
        let pw = caffe_ceil_pool_size(w as i64, 3, 2) as usize;
        let mut out = vec![0.0; ph * pw];
        for i in 0..ph {
            for j in 0..pw {
                let mut m = -f32::MAX;
                for r in 2 * i..(2 * i + 3).min(h) {
                    for c in 2 * j..(2 * j + 3).min(w) {
                        if x[r * w + c] > m {
                            m = x[r * w + c];
                        }
                    }
                }
                out[i * pw + j] = m;
            }
        }
        (out, ph, pw)
    }

    #[test]
    fn ceil_pool_size_examples() {
        // §2.1: conv1 sides 300, 400, 450, 500 → pool1 150, 200, 225, 250.
        assert_eq!(caffe_ceil_pool_size(300, 3, 2), 150);
        assert_eq!(caffe_ceil_pool_size(400, 3, 2), 200);
        assert_eq!(caffe_ceil_pool_size(450, 3, 2), 225);
        assert_eq!(caffe_ceil_pool_size(500, 3, 2), 250);
        // ceil, not floor: (32 − 3)/2 = 14.5 → 16 windows (floor mode would give 15).
        assert_eq!(caffe_ceil_pool_size(32, 3, 2), 16);
        assert_eq!(caffe_ceil_pool_size(3, 3, 2), 1);
        assert_eq!(caffe_ceil_pool_size(4, 3, 2), 2);
        assert_eq!(caffe_ceil_pool_size(2, 3, 2), 1);
        assert_eq!(caffe_ceil_pool_size(1, 3, 2), 0);
    }

    #[test]
    fn torch_ceil_max_pool_equals_caffe_on_odd_and_even_sizes() {
        for (h, w) in [
            (7, 9),
            (8, 8),
            (5, 6),
            (33, 17),
            (4, 31),
            (3, 3),
            (2, 5),
            (32, 45),
        ] {
            let x = Tensor::randn([1, 2, h, w], (Kind::Float, Device::Cpu));
            let y = caffe_pool1(&x);
            for c in 0..2 {
                let plane: Vec<f32> = Vec::try_from(x.get(0).get(c).flatten(0, -1)).unwrap();
                let (expected, ph, pw) = caffe_max_pool_direct(&plane, h as usize, w as usize);
                assert_eq!(y.size(), [1, 2, ph as i64, pw as i64]);
                let got: Vec<f32> = Vec::try_from(y.get(0).get(c).flatten(0, -1)).unwrap();
                assert_eq!(got, expected, "pool1 on {h}×{w}");
            }
        }
    }

    #[test]
    fn conv_output_size_chain_matches_semantics_examples() {
        // §2.1: n=600 → 38, 800 → 50, 899 → 57, 1000 → 63 (conv1, pool1, res3, res4).
        let conv = |stride, padding, k| Conv {
            weight: Tensor::zeros([1, 1, k, k], (Kind::Float, Device::Cpu)),
            bias: Tensor::zeros([1], (Kind::Float, Device::Cpu)),
            geometry: Geometry::new(stride, padding, 1),
        };
        let (conv1, down) = (conv(2, 3, 7), conv(2, 0, 1));
        for (n, expected) in [(600, 38), (800, 50), (899, 57), (1000, 63), (64, 4)] {
            let p1 = caffe_ceil_pool_size(conv1.output_size(n), 3, 2);
            assert_eq!(down.output_size(down.output_size(p1)), expected, "side {n}");
        }
    }
}
