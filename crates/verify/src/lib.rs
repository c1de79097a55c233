//! Parity of region features against golden Caffe outputs (`butd verify`).
//!
//! A *record* is one safetensors file per image with the tensor names of
//! `shared/golden/README.md` (the public format, `docs/verify.md`). [`compare_dirs`] pairs the
//! records of a golden and a candidate directory by file stem and reports, for every tensor
//! present on both sides, shape, max |Δ|, max |Δ| / max |golden|, mean |Δ| and cosine. Tensors
//! whose rows are regions are compared both row by row and as sets matched up to reordering
//! (optimal assignment on 1 − IoU, [`hungarian`]); divergences that a near-tie in the golden run
//! explains are reported as such ([`ties`]), separately from failures. The gate reads its
//! thresholds from `parity.toml` ([`Thresholds`]).
//!
//! [`scores`] is the downstream accuracy check: Winoground scores of two feature sets and an
//! exact McNemar test.
pub mod boxes;
mod compare;
mod error;
mod html;
pub mod hungarian;
pub mod regions;
mod report;
pub mod rpn;
pub mod scores;
mod stats;
mod tensor;
mod text;
mod thresholds;
pub mod ties;

pub use compare::{compare_dirs, compare_dirs_with, compare_files, compare_records};
pub use error::VerifyError;
pub use report::{
    cosine_histogram, Finding, GateCheck, HistogramBin, ImageReport, Inversion, Kind,
    LabelDisagreement, LayerSummary, RegionReport, RegionSet, Report, Role, Severity, Status,
    Summary, TensorInfo, TensorReport, UnmatchedRegion, SCHEMA,
};
pub use safetensors::Dtype;
pub use stats::{Accumulator, Stats};
pub use tensor::{dtype_name, Record, Tensor};
pub use thresholds::{Labels, Matching, Metric, Required, SetRules, Thresholds, Ties};
