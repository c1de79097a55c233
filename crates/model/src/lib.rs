//! The BUTD Faster R-CNN test network, computed as Caffe computed it.
//!
//! Network parts run on tch (CPU or CUDA); the parts where Caffe's Python layers decide the
//! output bit for bit (proposal layer, NumPy's sort, NumPy's `exp`, NMS, generate_tsv's
//! selection) are plain Rust on the host, in `butd-host` (re-exported here). Section numbers
//! (§) refer to `docs/semantics.md`.
//!
//! ```no_run
//! use butd_model::{DetectOptions, Detector};
//! // Weights as `butd convert MODEL.caffemodel --map mappings/caffe-to-hf-frcnn.toml` writes them.
//! let detector = Detector::load("w.safetensors".as_ref(), butd_model::tch::Device::Cpu)?;
//! let image = butd_preprocess::decode_file("photo.jpg".as_ref())?;
//! let detection = detector.detect(&image, &DetectOptions::default())?;
//! println!("{} boxes of {} rois", detection.boxes.len(), detection.rois.len());
//! butd_model::record::write_record(
//!     "photo.safetensors".as_ref(),
//!     &detection,
//!     &butd_model::record::RecordInfo { image_name: "photo.jpg".into(), device: "cpu".into(), ..Default::default() },
//! )?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The network, in order: [`weights`] (the HF-layout safetensors, BatchNorm folded) →
//! [`trunk`] (conv1 … res4b22) → [`rpn`] (Caffe's RPN blobs) → [`proposals`] → [`roi_pool`] →
//! [`heads`] (res5, classifier, attributes) → [`select`]; [`detector`] runs them for one
//! image and [`record`] writes the result.

/// Caffe's host-side layers live in the libtorch-free `butd-host`; re-exported under their old
/// paths so that `butd_model::select::…` keeps naming the one implementation.
pub use butd_host::{anchors, nms, numpy_exp, numpy_sort, proposals, select};

pub mod detector;
pub mod heads;
pub mod precision;
pub mod record;
pub mod roi_pool;
pub mod rpn;
pub mod throughput;
pub mod trunk;
pub mod weights;

/// The tch version the model is built on, so that callers (the CLI) name devices and tensors
/// without a separate, possibly mismatched, dependency.
pub use tch;

pub use detector::{DetectError, DetectOptions, Detection, Detector};
pub use precision::Precision;
