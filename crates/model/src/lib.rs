//! The BUTD Faster R-CNN test network, computed as Caffe computed it.
//!
//! Network parts run on tch (CPU or CUDA); the parts where Caffe's Python layers decide the
//! output bit for bit (proposal layer, NumPy's sort, NumPy's `exp`, NMS, generate_tsv's
//! selection) are plain Rust on the host. Section numbers (§) refer to
//! `shared/docs/butd-semantics.md`.

pub mod numpy_sort;
pub mod numpy_exp;
pub mod nms;
pub mod proposals;
pub mod select;

pub mod weights;
pub mod trunk;
pub mod rpn;
pub mod roi_pool;
pub mod heads;
pub mod detector;
pub mod record;

/// The tch version the model is built on, so that callers (the CLI) name devices and tensors
/// without a separate, possibly mismatched, dependency.
pub use tch;
