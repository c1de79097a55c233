//! The whole test-time pipeline for one image, as `generate_tsv.py` runs it: preprocessing
//! (§1) → trunk (§2.1) → RPN (§2.3) → proposal layer (§3, host) → ROI pooling (§4.1) → res5 and
//! heads (§4.2–§5) → generate_tsv's selection and LXMERT's labels (§6, host).
//!
//! Tensors stay on the detector's device; the only host copies are the explicit ones: the RPN
//! blobs for the proposal layer, `cls_prob`/`attr_prob`/`pool5_flat` for the selection, and the
//! dumped activations.

use std::ops::Range;
use std::path::{Path, PathBuf};

use butd_preprocess::{net_input, ImageBgr, NetInput};
use tch::{Device, Kind, Tensor};

use crate::heads::{ClassifyError, Heads, NUM_ATTRIBUTES, NUM_CLASSES, POOL5_CHANNELS};
use crate::nms::BoxF32;
use crate::precision::Precision;
use crate::proposals::{proposal_layer, ProposalConfig, ProposalStats};
use crate::roi_pool::{roi_bins, RoiPooler};
use crate::rpn::Rpn;
use crate::select::{argmax_skip_first, select_boxes, unscale_boxes, SelectConfig, Selection};
use crate::trunk::Trunk;
use crate::weights::{Weights, WeightsError};

/// Per-image settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectOptions {
    pub proposals: ProposalConfig,
    pub select: SelectConfig,
    /// Keep the intermediate blobs (golden names) in [`Detection::activations`].
    pub dump_activations: bool,
    /// Rois per res5 batch; `None` picks [`default_roi_chunk`] for the device. Only memory and
    /// speed depend on it, not the values.
    pub roi_chunk: Option<usize>,
    /// Keep the kept boxes' `cls_prob` rows in [`Detection::soft_labels`] (UNITER's
    /// `soft_labels`) without the other activations.
    pub soft_labels: bool,
}

/// Rois per res5 batch. res5 keeps a few activations of 2048×14×14 f32 (1.6 MB) per roi alive.
/// On the CPU, 32 rois keep the whole process at ≈ 0.8 GB peak; batches of 16 to 300 ran
/// equally fast within the noise of `examples/bench_extract.rs`. On CUDA, all 300 rois at once
/// (a few GB of device memory).
pub fn default_roi_chunk(device: Device) -> usize {
    match device {
        Device::Cpu => 32,
        _ => 300,
    }
}

/// Why one image has no record. The run goes on with the next image.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Preprocess(#[from] butd_preprocess::Error),
    #[error("network input {net_h}×{net_w} is too small (each side must be at least {MIN_NET_SIDE} pixels)")]
    InputTooSmall { net_h: usize, net_w: usize },
    #[error(
        "no proposals: all {num_anchors} RPN boxes are smaller than the minimum size \
         16·im_scale = {min_size} network pixels after clipping (Caffe crashes on such an image)"
    )]
    NoProposals {
        num_anchors: usize,
        min_size: f32,
        /// The image's sizes, so that a record can still say what was run
        /// ([`crate::record::write_no_proposals_record`]; the blobs computed before the
        /// proposal layer: [`Detector::early_activations`]).
        input: InputShape,
    },
    #[error(
        "non-finite RPN outputs (NaN or ±inf) in {count} values: the weights or the image are \
         broken"
    )]
    NonFiniteRpn { count: usize },
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    /// A libtorch exception (out of memory, a kernel error) or a broken internal invariant
    /// inside this image: the image fails, the run goes on.
    #[error("internal error on this image (libtorch or a butd check): {0}")]
    Internal(String),
    /// [`crate::throughput::detect_with_oom_retry`] gave up.
    #[error("out of device memory even with a res5 chunk of {chunk} roi(s): {message}")]
    OutOfMemory { chunk: usize, message: String },
}

/// Below this the first convolution's output has a single row or column, where libtorch's and
/// Caffe's ceil-mode pooling sizes part ([`crate::trunk::caffe_ceil_pool_size`]).
pub const MIN_NET_SIDE: usize = 3;

/// An image's sizes before and after preprocessing (§1.3): what every record states, with or
/// without detections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputShape {
    pub orig_h: usize,
    pub orig_w: usize,
    pub net_h: usize,
    pub net_w: usize,
    /// `im_scale` in f64 as `_get_image_blob` computes it (§1.3).
    pub im_scale: f64,
    /// `[H′, W′, f32(im_scale)]`.
    pub im_info: [f32; 3],
}

/// The blobs computed before the proposal layer, under their golden names, on the CPU: all a
/// record keeps of an image without proposals (Caffe's crash record has them too).
#[derive(Debug)]
pub struct EarlyActivations {
    /// (H, W, 3) u8: the decoded image.
    pub image_bgr: Tensor,
    /// (1, 3, H′, W′).
    pub data: Tensor,
    /// (1, 1024, h, w).
    pub res4b22: Tensor,
    /// (1, 24, h, w).
    pub rpn_cls_prob_reshape: Tensor,
    /// (1, 48, h, w).
    pub rpn_bbox_pred: Tensor,
}

/// The blobs that `--dump-activations` writes, under their golden names, on the CPU.
pub struct Activations {
    pub early: EarlyActivations,
    /// (R, 2048).
    pub pool5_flat: Tensor,
    /// (R, 1601).
    pub cls_prob: Tensor,
    /// (R) f32 class indices, as Caffe's ArgMax top.
    pub predicted_cls: Tensor,
    /// (R, 401).
    pub attr_prob: Tensor,
}

/// Everything generate_tsv (+ LXMERT's fields) writes for one image.
pub struct Detection {
    pub input: InputShape,
    pub feat_h: usize,
    pub feat_w: usize,
    /// Proposal-layer output, `[x1, y1, x2, y2]` in network-input pixels (Caffe's
    /// `rois[:, 1:5]`), R ≤ 300.
    pub rois: Vec<BoxF32>,
    pub proposal_stats: ProposalStats,
    /// `max_conf` (R), `keep` (K) and the branch of §6.3.
    pub selection: Selection,
    /// `(rois / im_scale)[keep]` in f32, original-image pixels (the TSV boxes).
    pub boxes: Vec<BoxF32>,
    /// `pool5_flat[keep]`, K × 2048 row-major (the TSV features).
    pub features: Vec<f32>,
    pub objects_id: Vec<i64>,
    pub objects_conf: Vec<f32>,
    pub attrs_id: Vec<i64>,
    pub attrs_conf: Vec<f32>,
    pub activations: Option<Activations>,
    /// With [`DetectOptions::soft_labels`]: `cls_prob[keep]`, K × 1601 row-major.
    pub soft_labels: Option<Vec<f32>>,
}

/// One image up to its pooled rois: what res5 and the heads need, and what a record keeps of
/// the early blobs.
struct Front {
    data: Tensor,
    res4b22: Tensor,
    rpn: crate::rpn::RpnOutput,
    shape: InputShape,
    feat_h: usize,
    feat_w: usize,
    rois: Vec<BoxF32>,
    proposal_stats: ProposalStats,
    pooler: RoiPooler,
}

/// The reference network, loaded once and run per image.
pub struct Detector {
    device: Device,
    precision: Precision,
    weights_path: PathBuf,
    trunk: Trunk,
    rpn: Rpn,
    heads: Heads,
}

/// Why a detector cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("cannot load libtorch's CUDA backend libtorch_cuda.so (is LD_LIBRARY_PATH set to the torch libraries, e.g. by scripts/env.sh?): {0}")]
    CudaBackend(String),
    #[error("CUDA device {index} requested, but {count} CUDA device(s) are available")]
    NoSuchDevice { index: usize, count: i64 },
    #[error("{0}")]
    Precision(String),
}

/// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Ok(Device::Cuda(i)),
            _ => Err(format!("device `{s}`: expected cpu, cuda or cuda:N")),
        },
    }
}

/// `cpu`, `cuda:0`, …: the inverse of [`parse_device`], as records name their device.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Process-wide settings, applied by [`Detector::load`]; call it yourself before any other
/// libtorch use if the program touches tensors or CUDA before loading the detector, because
/// libtorch reads both environment variables below once, on first use. Variables the user set
/// are left alone.
///
/// - CUDA: float32 must mean float32 (§2: no TF32 existed when the model ran). tch exposes no
///   switch for PyTorch's `allow_tf32` flags, so this sets `NVIDIA_TF32_OVERRIDE=0`, which cuBLAS
///   and cuDNN honour, and turns cuDNN's benchmark mode (algorithms chosen by timing, so
///   possibly different from run to run) off. It also loads the CUDA backend
///   ([`load_cuda_backend`]) and checks that the device exists.
/// - CPU: `THP_MEM_ALLOC_ENABLE=1` makes libtorch back large tensors with transparent huge
///   pages: res5 allocates tens of MB per layer and chunk, and with 4 KiB pages the page faults
///   cost ≈ 10 % of the CPU time (`examples/bench_extract.rs`). Intra-op threads = available
///   cores.
pub fn configure_runtime(device: Device) -> Result<(), LoadError> {
    let set_default = |key: &str, value: &str| {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value);
        }
    };
    set_default("THP_MEM_ALLOC_ENABLE", "1");
    if let Device::Cuda(index) = device {
        set_default("NVIDIA_TF32_OVERRIDE", "0");
        load_cuda_backend().map_err(LoadError::CudaBackend)?;
        let count = tch::Cuda::device_count();
        if index as i64 >= count {
            return Err(LoadError::NoSuchDevice { index, count });
        }
        tch::Cuda::cudnn_set_benchmark(false);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tch::set_num_threads(cores as i32);
    Ok(())
}

/// Loads libtorch's CUDA backend (`libtorch_cuda.so`, found through `LD_LIBRARY_PATH`).
/// Nothing in a Rust binary references its symbols, so the linker's `--as-needed` drops it from
/// the executable, and without it libtorch sees no CUDA device at all. Loading it registers the
/// backend (its static initialisers); the library stays loaded for the life of the process.
pub fn load_cuda_backend() -> Result<(), String> {
    use std::ffi::{c_char, c_int, c_void, CStr};
    extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        fn dlerror() -> *const c_char;
    }
    const RTLD_NOW: c_int = 2;
    const RTLD_GLOBAL: c_int = 0x100;
    // SAFETY: dlopen gets a NUL-terminated name; dlerror's message is read right after the
    // failing call on the same thread, before any other dl* call.
    unsafe {
        if dlopen(c"libtorch_cuda.so".as_ptr(), RTLD_NOW | RTLD_GLOBAL).is_null() {
            let message = dlerror();
            return Err(if message.is_null() {
                "dlopen failed".to_string()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            });
        }
    }
    Ok(())
}

impl Detector {
    /// Loads a safetensors file in the HF FRCNN layout (as `butd convert` writes it with
    /// `mappings/caffe-to-hf-frcnn.toml`) onto `device`. Fails on weights written by another
    /// mapping ([`Weights::check_layout`]), on a missing, misshapen or unexpected tensor, naming
    /// the file and the key, or on an unusable CUDA device.
    pub fn load(weights: &Path, device: Device) -> Result<Detector, LoadError> {
        Detector::load_with_precision(weights, device, Precision::Exact)
    }

    /// [`Detector::load`] in one of the [`Precision`] modes (an error for TF32 on the CPU).
    pub fn load_with_precision(
        weights: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Detector, LoadError> {
        precision.configure(device).map_err(LoadError::Precision)?;
        configure_runtime(device)?;
        let _no_grad = tch::no_grad_guard();
        let file = Weights::open(weights)?;
        file.check_layout()?;
        let root = file.root();
        let trunk = Trunk::load(&root.sub("backbone"), device)?;
        let rpn = Rpn::load(&root.sub("proposal_generator"), device)?;
        let heads = Heads::load(&root.sub("roi_heads"), device, precision.res5_kind())?;
        file.check_all_used()?;
        Ok(Detector {
            device,
            precision,
            weights_path: weights.to_path_buf(),
            trunk,
            rpn,
            heads,
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn weights_path(&self) -> &Path {
        &self.weights_path
    }

    /// Runs the whole pipeline on one decoded image. A panic inside (tch's methods panic on a
    /// libtorch exception such as out of memory; a broken invariant asserts) becomes
    /// [`DetectError::Internal`], so that one image cannot end a long run: the detector holds
    /// only its read-only weights, which a panic midway leaves as they were.
    pub fn detect(&self, image: &ImageBgr, opts: &DetectOptions) -> Result<Detection, DetectError> {
        self.detect_prepared(image, &net_input(image)?, opts)
    }

    /// [`Detector::detect`] with the network input already made (`net_input(image)`, on
    /// another thread: [`crate::throughput::prefetch`]).
    pub fn detect_prepared(
        &self,
        image: &ImageBgr,
        input: &NetInput,
        opts: &DetectOptions,
    ) -> Result<Detection, DetectError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.detect_inner(image, input, opts)
        }))
        .unwrap_or_else(|payload| Err(DetectError::Internal(panic_message(payload))))
    }

    /// The blobs before the proposal layer (`data`, `res4b22`, the RPN's) on the CPU, with the
    /// decoded image: what the record of an image without proposals keeps with
    /// `--dump-activations`. Computed again for such an image (rare: Caffe's crash case), so
    /// that [`DetectError`] stays free of tensors (which are not `Sync`).
    pub fn early_activations(&self, image: &ImageBgr) -> Result<EarlyActivations, DetectError> {
        let _no_grad = tch::no_grad_guard();
        let data = self.data_blob(&net_input(image)?)?;
        let res4b22 = self.trunk.forward(&data);
        let rpn = self.rpn.forward(&res4b22);
        Ok(early_activations(image, &data, &res4b22, &rpn))
    }

    /// The network input as a blob on the detector's device.
    fn data_blob(&self, input: &NetInput) -> Result<Tensor, DetectError> {
        let (net_h, net_w) = (input.height, input.width);
        if net_h < MIN_NET_SIDE || net_w < MIN_NET_SIDE {
            return Err(DetectError::InputTooSmall { net_h, net_w });
        }
        Ok(Tensor::from_slice(&input.data)
            .view([1, 3, net_h as i64, net_w as i64])
            .to_device(self.device))
    }

    fn detect_inner(
        &self,
        image: &ImageBgr,
        input: &NetInput,
        opts: &DetectOptions,
    ) -> Result<Detection, DetectError> {
        let _no_grad = tch::no_grad_guard();
        let front = self.front(image, input, opts)?;
        let segments = [(0, 0..front.rois.len())];
        let pool5_flat = self.res5_batched(&[&front.pooler], &segments, self.roi_chunk(opts));
        self.back(image, front, pool5_flat, opts)
    }

    /// Several images at once: each image's trunk, RPN and proposals as in [`Detector::detect`],
    /// then res5 over the rois of all of them in batches of `roi_chunk` (crossing image
    /// boundaries), then each image's heads and selection. On the CPU the values are those of
    /// [`Detector::detect_prepared`] bit for bit (`tests/chunking.rs`): res5 treats rois
    /// independently, and the batch only changes how many go through at once. An error in one
    /// image is that image's result; a panic in the shared part (a libtorch exception such as
    /// out of memory) is the outer error, [`DetectError::Internal`], and no image has a result
    /// ([`crate::throughput::detect_batch_with_fallback`] then runs them one by one).
    pub fn detect_batch(
        &self,
        items: &[(&ImageBgr, &NetInput)],
        opts: &DetectOptions,
    ) -> Result<Vec<Result<Detection, DetectError>>, DetectError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.detect_batch_inner(items, opts)
        }))
        .map_err(|payload| DetectError::Internal(panic_message(payload)))
    }

    fn detect_batch_inner(
        &self,
        items: &[(&ImageBgr, &NetInput)],
        opts: &DetectOptions,
    ) -> Vec<Result<Detection, DetectError>> {
        let _no_grad = tch::no_grad_guard();
        let fronts: Vec<Result<Front, DetectError>> = items
            .iter()
            .map(|(image, input)| self.front(image, input, opts))
            .collect();
        let ready: Vec<&Front> = fronts.iter().filter_map(|f| f.as_ref().ok()).collect();
        let poolers: Vec<&RoiPooler> = ready.iter().map(|f| &f.pooler).collect();
        let segments: Vec<(usize, Range<usize>)> = ready
            .iter()
            .enumerate()
            .map(|(i, f)| (i, 0..f.rois.len()))
            .collect();
        let pool5_all = self.res5_batched(&poolers, &segments, self.roi_chunk(opts));
        let mut offset = 0;
        let mut results = Vec::with_capacity(items.len());
        for (front, (image, _)) in fronts.into_iter().zip(items) {
            results.push(front.and_then(|front| {
                let n = front.rois.len() as i64;
                let pool5_flat = pool5_all.narrow(0, offset, n);
                offset += n;
                self.back(image, front, pool5_flat, opts)
            }));
        }
        results
    }

    fn roi_chunk(&self, opts: &DetectOptions) -> usize {
        opts.roi_chunk
            .unwrap_or_else(|| default_roi_chunk(self.device))
            .max(1)
    }

    /// Preprocessed input → trunk → RPN → proposal layer → the ROI pooler (§2–§4.1).
    fn front(
        &self,
        image: &ImageBgr,
        input: &NetInput,
        opts: &DetectOptions,
    ) -> Result<Front, DetectError> {
        let data = self.data_blob(input)?;
        let im_info = input.im_info();
        let res4b22 = self.trunk.forward(&data);
        let (feat_h, feat_w) = (res4b22.size()[2] as usize, res4b22.size()[3] as usize);
        let rpn = self.rpn.forward(&res4b22);
        let fg = to_host_f32(&rpn.cls_prob_reshape.narrow(1, 12, 12));
        let deltas = to_host_f32(&rpn.bbox_pred);
        let non_finite = fg.iter().chain(&deltas).filter(|v| !v.is_finite()).count();
        if non_finite > 0 {
            return Err(DetectError::NonFiniteRpn { count: non_finite });
        }
        let proposals = proposal_layer(&fg, &deltas, feat_h, feat_w, im_info, &opts.proposals);
        let shape = InputShape {
            orig_h: image.height,
            orig_w: image.width,
            net_h: input.height,
            net_w: input.width,
            im_scale: input.scale,
            im_info,
        };
        if proposals.rois.is_empty() {
            return Err(DetectError::NoProposals {
                num_anchors: proposals.stats.num_anchors,
                min_size: proposals.stats.min_size_threshold,
                input: shape,
            });
        }
        let bins = proposals
            .rois
            .iter()
            .map(|r| roi_bins(r, feat_h as i64, feat_w as i64))
            .collect();
        // Pooled in res5's kind: in bf16 the gathers move half the bytes (0.9 → 0.5 s of a
        // 300-roi image under load 4), and the result is the same bits as pooling in f32 and
        // rounding after (`roi_pool` tests).
        let pooler = RoiPooler::new(&res4b22.to_kind(self.precision.res5_kind()), bins);
        Ok(Front {
            data,
            res4b22,
            rpn,
            shape,
            feat_h,
            feat_w,
            rois: proposals.rois,
            proposal_stats: proposals.stats,
            pooler,
        })
    }

    /// `pool5_flat` of the rois `segments` (pooler index, roi range) name, in that order: ROI
    /// pooling and res5 (§4.1–§4.3) in batches of at most `chunk` rois.
    fn res5_batched(
        &self,
        poolers: &[&RoiPooler],
        segments: &[(usize, Range<usize>)],
        chunk: usize,
    ) -> Tensor {
        let mut outputs = Vec::new();
        let mut pending: Vec<Tensor> = Vec::new();
        let mut pending_rois = 0;
        let mut flush = |pending: &mut Vec<Tensor>| {
            if !pending.is_empty() {
                outputs.push(self.heads.pool5(&Tensor::cat(pending, 0)));
                pending.clear();
            }
        };
        for (index, range) in segments {
            let mut start = range.start;
            while start < range.end {
                let take = (chunk - pending_rois).min(range.end - start);
                pending.push(poolers[*index].pool(start..start + take));
                (start, pending_rois) = (start + take, pending_rois + take);
                if pending_rois == chunk {
                    flush(&mut pending);
                    pending_rois = 0;
                }
            }
        }
        flush(&mut pending);
        drop(flush);
        Tensor::cat(&outputs, 0)
    }

    /// `pool5_flat` → heads → generate_tsv's selection and LXMERT's labels (§5–§6).
    fn back(
        &self,
        image: &ImageBgr,
        front: Front,
        pool5_flat: Tensor,
        opts: &DetectOptions,
    ) -> Result<Detection, DetectError> {
        drop(front.pooler);
        let heads = self.heads.classify(&pool5_flat)?;
        let cls_prob = to_host_f32(&heads.cls_prob);
        let attr_prob = to_host_f32(&heads.attr_prob);
        let rois = front.rois;
        let unscaled = unscale_boxes(&rois, front.shape.im_scale);
        let selection = select_boxes(&unscaled, &cls_prob, NUM_CLASSES as usize, &opts.select);
        let keep = &selection.keep;
        let (objects_id, objects_conf) = argmax_skip_first(&cls_prob, NUM_CLASSES as usize, keep);
        let (attrs_id, attrs_conf) = argmax_skip_first(&attr_prob, NUM_ATTRIBUTES as usize, keep);
        let keep_index = Tensor::from_slice(&keep.iter().map(|&k| k as i64).collect::<Vec<_>>())
            .to_device(self.device);
        let features = to_host_f32(&pool5_flat.index_select(0, &keep_index));
        debug_assert_eq!(features.len(), keep.len() * POOL5_CHANNELS as usize);
        let boxes = keep.iter().map(|&k| unscaled[k]).collect();
        let soft_labels = opts.soft_labels.then(|| {
            let c = NUM_CLASSES as usize;
            keep.iter()
                .flat_map(|&k| cls_prob[k * c..(k + 1) * c].iter().copied())
                .collect()
        });
        let activations = opts.dump_activations.then(|| {
            let cpu = |t: &Tensor| t.to_device(Device::Cpu).contiguous();
            Activations {
                early: early_activations(image, &front.data, &front.res4b22, &front.rpn),
                pool5_flat: cpu(&pool5_flat),
                cls_prob: cpu(&heads.cls_prob),
                predicted_cls: cpu(&heads.predicted_cls).to_kind(Kind::Float),
                attr_prob: cpu(&heads.attr_prob),
            }
        });
        Ok(Detection {
            input: front.shape,
            feat_h: front.feat_h,
            feat_w: front.feat_w,
            rois,
            proposal_stats: front.proposal_stats,
            selection,
            boxes,
            features,
            objects_id,
            objects_conf,
            attrs_id,
            attrs_conf,
            activations,
            soft_labels,
        })
    }

    /// Floating-point operations (2 per multiply-accumulate) of the convolutions and fully
    /// connected layers for an `net_h`×`net_w` input and `num_rois` rois, counted from the layer
    /// shapes (pooling, ReLU, sums and softmax are left out: they are < 0.1 %).
    pub fn flops(&self, net_h: usize, net_w: usize, num_rois: usize) -> NetworkFlops {
        let (trunk, feat_h, feat_w) = self.trunk.macs(net_h as i64, net_w as i64);
        let rpn = self.rpn.macs(feat_h, feat_w);
        let (res5, heads) = self.heads.macs_per_roi();
        let r = num_rois as i64;
        NetworkFlops {
            trunk: 2 * trunk as u64,
            rpn: 2 * rpn as u64,
            res5: 2 * (res5 * r) as u64,
            heads: 2 * (heads * r) as u64,
        }
    }
}

/// [`Detector::flops`] by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkFlops {
    pub trunk: u64,
    pub rpn: u64,
    pub res5: u64,
    pub heads: u64,
}

impl NetworkFlops {
    pub fn total(&self) -> u64 {
        self.trunk + self.rpn + self.res5 + self.heads
    }
}

/// The blobs before the proposal layer, copied to the CPU.
fn early_activations(
    image: &ImageBgr,
    data: &Tensor,
    res4b22: &Tensor,
    rpn: &crate::rpn::RpnOutput,
) -> EarlyActivations {
    let cpu = |t: &Tensor| t.to_device(Device::Cpu).contiguous();
    EarlyActivations {
        image_bgr: Tensor::from_slice(&image.data).view([
            image.height as i64,
            image.width as i64,
            3,
        ]),
        data: cpu(data),
        res4b22: cpu(res4b22),
        rpn_cls_prob_reshape: cpu(&rpn.cls_prob_reshape),
        rpn_bbox_pred: cpu(&rpn.bbox_pred),
    }
}

/// The text a panic carried (tch panics with libtorch's exception message).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A tensor of any device and layout as host f32 values in row-major order.
pub(crate) fn to_host_f32(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    Vec::try_from(t.flatten(0, -1)).expect("an f32 CPU tensor converts to Vec<f32>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip() {
        for (text, device) in [
            ("cpu", Device::Cpu),
            ("cuda:0", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
        ] {
            assert_eq!(parse_device(text), Ok(device));
            assert_eq!(device_name(device), text);
        }
        assert_eq!(parse_device("cuda"), Ok(Device::Cuda(0)));
        assert!(parse_device("tpu")
            .unwrap_err()
            .contains("expected cpu, cuda or cuda:N"));
        assert!(parse_device("cuda:x").is_err());
    }
}
