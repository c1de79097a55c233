//! Downstream accuracy parity (`butd verify scores`): the scores one model gives on two feature
//! sets, compared example by example. Tensor parity (`butd-verify`) says how far two feature
//! files are apart; this says whether the difference changes what a model answers.
//!
//! ```
//! use butd_scores::{compare_winoground, read_winoground_jsonl};
//!
//! let dir = tempfile::tempdir()?;
//! let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
//! // Example 1 is right under both feature sets; example 2 only under B.
//! std::fs::write(&a, "{\"id\": 1, \"c0_i0\": 0.9, \"c0_i1\": 0.1, \"c1_i0\": 0.2, \"c1_i1\": 0.8}\n\
//!                     {\"id\": 2, \"c0_i0\": 0.1, \"c0_i1\": 0.9, \"c1_i0\": 0.8, \"c1_i1\": 0.2}\n")?;
//! std::fs::write(&b, "{\"id\": 2, \"c0_i0\": 0.9, \"c0_i1\": 0.1, \"c1_i0\": 0.2, \"c1_i1\": 0.8}\n\
//!                     {\"id\": 1, \"c0_i0\": 0.9, \"c0_i1\": 0.1, \"c1_i0\": 0.2, \"c1_i1\": 0.8}\n")?;
//! let r = compare_winoground(&read_winoground_jsonl(&a)?, &read_winoground_jsonl(&b)?, &a, &b)?;
//! let group = &r.metrics[2];
//! assert_eq!((group.metric.as_str(), group.a, group.b), ("group", 0.5, 1.0));
//! // One discordant pair: 2 · ½ = 1, no evidence of a difference.
//! assert_eq!((group.a_only, group.b_only, group.mcnemar_p), (0, 1, 1.0));
//! assert_eq!(r.differing, ["2"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! - Paired, not pooled: both files must hold the same example ids, and the test is McNemar's
//!   on the discordant pairs, because two accuracies from the same examples are correlated and
//!   an unpaired test would miss small, systematic differences.
//! - Exact, not χ²: [`mcnemar_exact`] sums the binomial tail in log space, so it stays right
//!   for the handful of discordant pairs a parity run gives and finite for thousands.
//! - Input is the model's raw scores (the JSONL schema in docs/verify.md), so any model and
//!   framework can produce it; the correctness rules are Thrush et al. 2022's.
//! - No tensors and no libtorch: a crate of its own so that `butd verify` keeps one job (tensor
//!   parity) and this one stays small enough to read in one sitting.
use std::path::PathBuf;

mod mcnemar;
mod winoground;

pub use mcnemar::mcnemar_exact;
pub use winoground::{
    compare_winoground, read_winoground_jsonl, MetricComparison, Outcome, ScoresReport,
    WinogroundScores,
};

/// A scores file that cannot be read or does not follow its schema; the message names the file
/// (and the line, where there is one).
#[derive(Debug, thiserror::Error)]
pub enum ScoresError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The two files do not hold the same examples.
    #[error("{path}: {message}")]
    Ids { path: PathBuf, message: String },
}
