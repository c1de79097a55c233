//! The report: what `parity.json` holds (schema `butd-parity-v1`, documented in
//! `docs/verify.md`), and the gate decision derived from it.
use serde::{Deserialize, Serialize};

use crate::boxes::Box4;
use crate::gate::{GateCheck, Metric};
use crate::resolution::Half;
use crate::stats::Stats;
use crate::thresholds::Thresholds;

/// Value of `Report::schema`; bumped on any incompatible change of the JSON layout.
pub const SCHEMA: &str = "butd-parity-v1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub golden_dir: String,
    pub candidate_dir: String,
    pub thresholds: Thresholds,
    pub summary: Summary,
    /// One entry per tensor name: its gated error figure across images.
    pub layers: Vec<LayerSummary>,
    /// Cosine of matched final-record features (`features`), all images.
    pub cosine_histogram: Vec<HistogramBin>,
    /// Findings about the inputs themselves (missing / extra / duplicate images).
    pub findings: Vec<Finding>,
    pub images: Vec<ImageReport>,
    /// What each side is and what its format can hold; absent for two record directories
    /// compared with the defaults (`compare_dirs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Sources>,
}

/// The two inputs of a comparison and how their images were paired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    pub golden: SourceInfo,
    pub candidate: SourceInfo,
    /// How image ids were derived on each side, e.g. `int-suffix of the file stem`.
    pub pairing: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub path: String,
    /// `records`, `butd-tsv`, `lxmert-tsv`, `uniter-lmdb`, `uniter-npz`, `vqa-hdf5`.
    pub format: String,
    /// Final-record tensors the format holds (`["*"]`: every tensor of a record).
    pub carries: Vec<String>,
    /// What the format cannot hold and which of its conventions were undone.
    pub notes: Vec<String>,
}

/// `--sample`: `n` golden images of `of`, chosen by a seeded hash of their ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleInfo {
    pub n: usize,
    pub seed: u64,
    pub of: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub golden_images: usize,
    pub candidate_images: usize,
    pub compared: usize,
    pub passed: usize,
    pub tie_explained: usize,
    pub failed: usize,
    pub missing_images: usize,
    pub extra_images: usize,
    pub gate_passed: bool,
    /// One line per finding that breaches the gate: `image: subject: message`.
    pub breaches: Vec<String>,
    pub seconds: f64,
    /// Passing images listed with their status and findings only (beyond the detail limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub images_without_detail: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Tie,
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warn,
    /// A divergence that a near-tie explains.
    Tie,
    Fail,
}

/// What a finding is about; the names are the stable `kind` strings of the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    MissingImage,
    ExtraImage,
    Unreadable,
    ImageMismatch,
    MissingTensor,
    ExtraTensor,
    Dtype,
    Shape,
    Nonfinite,
    Tolerance,
    Unmatched,
    Order,
    Label,
    Keep,
    CrashRecord,
    /// One image id twice in a file; its first occurrence is compared.
    DuplicateImage,
    /// A format keeps only the first rows of a region set (UNITER's `nbb`); the other side is
    /// cut to the same rows.
    Truncated,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub image: String,
    pub severity: Severity,
    pub kind: Kind,
    /// The tensor or region set (`rois`, `final`) concerned; empty for whole-image findings.
    pub subject: String,
    pub message: String,
    /// For `tie` findings: the near-tie that explains the divergence.
    pub cause: Option<String>,
}

impl Finding {
    pub fn breaches(&self, th: &Thresholds) -> bool {
        match self.severity {
            Severity::Fail => true,
            Severity::Tie => !th.ties.allow,
            Severity::Info | Severity::Warn => false,
        }
    }

    pub fn line(&self) -> String {
        let mut s = self.image.clone();
        if !self.subject.is_empty() {
            s.push_str(": ");
            s.push_str(&self.subject);
        }
        s.push_str(": ");
        s.push_str(&self.message);
        if let Some(c) = &self.cause {
            s.push_str(" [tie: ");
            s.push_str(c);
            s.push(']');
        }
        s
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageReport {
    pub image: String,
    pub status: Status,
    pub tensors: Vec<TensorReport>,
    pub regions: Vec<RegionReport>,
    pub findings: Vec<Finding>,
}

/// How a tensor's rows relate to regions: the record contract's roles.
pub use butd_record::Role;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub dtype: String,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TensorReport {
    pub name: String,
    pub role: Role,
    pub golden: Option<TensorInfo>,
    pub candidate: Option<TensorInfo>,
    /// Row i against row i (over the common rows when the counts differ).
    pub by_index: Option<Stats>,
    /// Region tensors: matched rows only (the regions that agree, up to reordering).
    pub matched: Option<Stats>,
    /// The figure the gate looks at, when `parity.toml` bounds this tensor.
    pub gate: Option<GateCheck>,
    /// Set when a side holds 16-bit values: the statistics count only what lies beyond the
    /// values' rounding intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_precision: Option<HalfPrecision>,
}

/// How a tensor with 16-bit values on one or both sides was compared (docs/verify.md,
/// "Half-precision sources").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HalfPrecision {
    /// `golden`, `candidate` or `both`.
    pub sides: String,
    pub format: Half,
    /// The widest allowance applied to one value pair (half of each side's rounding interval,
    /// added), in the tensor's unit: differences up to it count as 0.
    pub max_allowance: f64,
}

impl HalfPrecision {
    /// The wider of two allowances for the same tensor.
    pub fn merge(a: Option<HalfPrecision>, b: Option<HalfPrecision>) -> Option<HalfPrecision> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.max_allowance > a.max_allowance {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        }
    }
}

impl TensorReport {
    /// The stats the gate uses: matched rows for region tensors (when the set was matched),
    /// else element by element.
    pub fn gated_stats(&self) -> Option<&Stats> {
        self.matched.as_ref().or(self.by_index.as_ref())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionSet {
    /// Rows of `rois` and the tensors indexed like it; boxes `rois[:, 1:5]` in network pixels.
    Rois,
    /// The final records; boxes `boxes` in original-image pixels.
    Final,
}

impl RegionSet {
    pub fn name(self) -> &'static str {
        match self {
            RegionSet::Rois => "rois",
            RegionSet::Final => "final",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionReport {
    pub set: RegionSet,
    pub golden_count: usize,
    pub candidate_count: usize,
    pub matched: usize,
    /// Same count and every golden row i matched to candidate row i.
    pub same_indexing: bool,
    pub min_iou: Option<f64>,
    /// Largest coordinate difference over matched pairs.
    pub max_box_diff: Option<f64>,
    /// Feature cosine over matched pairs (`pool5_flat` for rois, `features` for final).
    pub min_feature_cosine: Option<f64>,
    pub mean_feature_cosine: Option<f64>,
    pub cosine_histogram: Vec<HistogramBin>,
    /// Matched pairs whose order is swapped (golden a < b, candidate a > b).
    pub inversions: usize,
    pub inversions_tie_explained: usize,
    /// Up to 20 inversions, unexplained ones first.
    pub inversion_examples: Vec<Inversion>,
    pub unmatched_golden: Vec<UnmatchedRegion>,
    pub unmatched_candidate: Vec<UnmatchedRegion>,
    pub labels_compared: usize,
    pub label_disagreements: Vec<LabelDisagreement>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inversion {
    /// Golden indices (a < b) of the two regions.
    pub golden: [usize; 2],
    /// Their candidate indices (a > b).
    pub candidate: [usize; 2],
    pub cause: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnmatchedRegion {
    pub index: usize,
    #[serde(rename = "box")]
    pub bbox: Box4,
    /// Best IoU with any region of the other side.
    pub best_iou: f64,
    pub cause: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabelDisagreement {
    /// `objects_id`, `attrs_id`, `keep`; for rois the argmax of `cls_prob` / `attr_prob`
    /// over columns 1… (`cls_prob.argmax`, `attr_prob.argmax`).
    pub label: String,
    pub golden_index: usize,
    pub candidate_index: usize,
    #[serde(rename = "box")]
    pub bbox: Box4,
    pub golden: i64,
    pub candidate: i64,
    pub cause: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    pub label: String,
    /// `1 − cosine` is in `(lo, hi]` (the first bin is exactly 0).
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
}

/// Bin edges of `1 − cosine`, decades: 0 exactly, then ≤ 1e-12, ≤ 1e-10, … and > 1e-2.
const COSINE_EDGES: [f64; 7] = [0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2];

pub fn cosine_histogram(cosines: impl IntoIterator<Item = f64>) -> Vec<HistogramBin> {
    let mut bins: Vec<HistogramBin> = COSINE_EDGES
        .iter()
        .enumerate()
        .map(|(k, &hi)| {
            let (lo, label) = if k == 0 {
                (0.0, "cos = 1".to_string())
            } else {
                (COSINE_EDGES[k - 1], format!("1−cos ≤ {hi:.0e}"))
            };
            HistogramBin {
                label,
                lo,
                hi,
                count: 0,
            }
        })
        .collect();
    bins.push(HistogramBin {
        label: "1−cos > 1e-2".into(),
        lo: 1e-2,
        hi: 2.0,
        count: 0,
    });
    for c in cosines {
        let d = 1.0 - c;
        let k = COSINE_EDGES
            .iter()
            .position(|&hi| d <= hi)
            .unwrap_or(COSINE_EDGES.len());
        bins[k].count += 1;
    }
    bins
}

pub fn merge_histograms<'a>(
    hists: impl IntoIterator<Item = &'a [HistogramBin]>,
) -> Vec<HistogramBin> {
    let mut out = cosine_histogram([]);
    for h in hists {
        for (o, b) in out.iter_mut().zip(h) {
            o.count += b.count;
        }
    }
    out
}

/// One tensor name across all images: the distribution of its gated figure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerSummary {
    pub name: String,
    pub metric: Metric,
    pub limit: Option<f64>,
    pub images: usize,
    #[serde(with = "crate::stats::finite_or_null")]
    pub min: f64,
    #[serde(with = "crate::stats::finite_or_null")]
    pub median: f64,
    #[serde(with = "crate::stats::finite_or_null")]
    pub max: f64,
    pub worst_image: String,
    /// 16-bit values on a side: the widest allowance over all images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_precision: Option<HalfPrecision>,
}

impl LayerSummary {
    /// The worst image exceeds the limit (NaN counts as exceeding).
    pub fn over_limit(&self) -> bool {
        self.limit
            .is_some_and(|lim| self.max.is_nan() || self.max > lim)
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report holds only JSON-representable values")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Every finding, directory-level first.
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .chain(self.images.iter().flat_map(|i| i.findings.iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_bins() {
        let h = cosine_histogram([1.0, 1.0 - 1e-13, 1.0 - 5e-7, 0.5, -1.0]);
        let counts: Vec<usize> = h.iter().map(|b| b.count).collect();
        assert_eq!(counts, [1, 1, 0, 0, 1, 0, 0, 2]);
        assert_eq!(merge_histograms([&h[..], &h[..]])[7].count, 4);
    }
}
