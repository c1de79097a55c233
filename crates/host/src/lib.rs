//! Caffe's host-side computation, bit for bit, in plain Rust (no libtorch): the parts of the
//! BUTD test network that py-faster-rcnn's Python layers and generate_tsv compute with NumPy,
//! where the exact float32 arithmetic and tie order decide the output. Section numbers (§)
//! refer to the semantics document.
//!
//! ```
//! use butd_host::proposals::{proposal_layer, ProposalConfig};
//! use butd_host::select::{select_boxes, unscale_boxes, SelectConfig};
//!
//! // A 1×1 feature map: 12 anchors, foreground scores and zero deltas.
//! let fg: Vec<f32> = (0..12).map(|a| a as f32 / 12.0).collect();
//! let deltas = vec![0.0f32; 48];
//! let props = proposal_layer(&fg, &deltas, 1, 1, [600.0, 800.0, 1.0], &ProposalConfig::default());
//! assert!(!props.rois.is_empty());
//!
//! // generate_tsv's selection on two classes (background + one).
//! let boxes = unscale_boxes(&props.rois, 1.0);
//! let cls_prob: Vec<f32> = boxes.iter().flat_map(|_| [0.4, 0.6]).collect();
//! let sel = select_boxes(&boxes, &cls_prob, 2, &SelectConfig::default());
//! assert!(sel.keep.len() <= boxes.len());
//! ```
//!
//! # Design
//! - One crate for every rule Caffe's host code applies, so that the model (on tch), `butd
//!   verify` (tie attribution re-decodes the stored RPN blobs) and the Python bindings share one
//!   implementation instead of copies; it links nothing, so the `butd` binary can use it.
//! - Pipeline order: [`anchors`] (§2.4) → [`proposals`] (decode, clip, min-size, introsort,
//!   [`nms`]) → [`select`] (generate_tsv's per-class NMS, `max_conf`, `keep`, LXMERT's argmax).
//!   [`numpy_sort`] and [`numpy_exp`] are transcriptions of the NumPy kernels the fork ran, not
//!   library calls: which of two equal keys comes first, and the last ulp of `exp`, are theirs.
//! - Defaults live in [`proposals::ProposalConfig`] and [`select::SelectConfig`] only; whoever
//!   needs a threshold (e.g. verify's tie attribution) reads it there.
//! - [`fnv1a64`] is the one stable id hash (shards, verify's sample).

pub mod anchors;
pub mod fnv;
pub mod nms;
pub mod numpy_exp;
pub mod numpy_sort;
pub mod proposals;
pub mod select;

pub use fnv::fnv1a64;
