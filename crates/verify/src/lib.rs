//! Parity of region features against golden Caffe outputs (`butd verify`).
//!
//! A *record* is one safetensors file per image with the tensor names of
//! `golden/README.md` (the public format, `docs/verify.md`). [`compare_dirs`] pairs the
//! records of a golden and a candidate directory by file stem and reports, for every tensor
//! present on both sides, shape, max |Δ|, max |Δ| / max |golden|, mean |Δ| and cosine. Tensors
//! whose rows are regions are compared both row by row and as sets matched up to reordering
//! (optimal assignment on 1 − IoU, [`hungarian`]); divergences that a near-tie in the golden run
//! explains are reported as such ([`ties`]), separately from failures. The gate reads its
//! thresholds from `parity.toml` ([`Thresholds`]).
//!
//! [`verify`] generalises this to the feature files downstream models read (BUTD TSV, LXMERT
//! TSV, UNITER img_db / npz, VQA HDF5), which `butd_formats` opens as records
//! (`butd_formats::source`, `butd_formats::canonical`); verify pairs them with records or with
//! each other by image id (`pairing`); large TSVs are streamed.
//!
//! ```
//! use butd_verify::{compare_records, Dtype, Record, Status, Tensor, Thresholds};
//! // Two kept boxes' `cls_prob` rows: the candidate's second row is off by 0.25.
//! let record = |values: Vec<f64>| {
//!     let mut r = Record::default();
//!     let t = Tensor::new("cls_prob", Dtype::F32, vec![2, 2], values).unwrap();
//!     r.tensors.insert("cls_prob".into(), t);
//!     r
//! };
//! let th = Thresholds::builtin(None)?; // parity.toml, as `butd verify` uses it
//! let golden = record(vec![0.75, 0.25, 0.5, 0.5]);
//! let same = compare_records("img", &golden, &record(vec![0.75, 0.25, 0.5, 0.5]), &th);
//! let off = compare_records("img", &golden, &record(vec![0.75, 0.25, 0.25, 0.75]), &th);
//! assert_eq!(same.status, Status::Pass);
//! assert_eq!(off.status, Status::Fail);
//! # Ok::<(), butd_verify::VerifyError>(())
//! ```
//!
//! # Design
//! Opening files is `butd_formats`'s job and the record contract `butd_record`'s; this crate
//! pairs, compares (`compare`: by index and as region sets), attributes divergences to
//! golden near-ties (`ties`), gates (`gate`, [`Thresholds`]) and renders the report
//! (`render`: terminal and HTML from the same report data; JSON is the data itself).
pub mod boxes;
mod compare;
mod engine;
mod error;
mod gate;
pub mod hungarian;
mod names;
mod pairing;
pub mod regions;
mod render;
mod report;
pub mod resolution;
pub mod rpn;
mod stats;
mod thresholds;
pub mod ties;

pub use butd_formats::tensors::{dtype_name, Record, Tensor};
pub use butd_formats::Format;
/// Id policies for pairing (`Stem`, `IntSuffix`, `Map`), shared with `butd export`.
pub use butd_formats::IdPolicy;
pub use butd_formats::{detect_format, SourceSpec};
pub use compare::{compare_records, compare_scoped, Scope};
pub use engine::{compare_dirs, compare_dirs_with, verify, Options, Progress, Sample};
pub use error::VerifyError;
pub use gate::{GateCheck, Metric};
pub use report::{
    cosine_histogram, Finding, HalfPrecision, HistogramBin, ImageReport, Inversion, Kind,
    LabelDisagreement, LayerSummary, RegionReport, RegionSet, Report, Role, SampleInfo, Severity,
    SourceInfo, Sources, Status, Summary, TensorInfo, TensorReport, UnmatchedRegion, SCHEMA,
};
pub use safetensors::Dtype;
pub use stats::{Accumulator, Stats};
pub use thresholds::{Labels, Matching, Required, SetRules, Thresholds, Ties};
