//! Errors: the file and line for mapping errors, the rule and line for every strictness problem.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mapping file cannot be read as a mapping (TOML syntax, unknown key or transform,
    /// wrong type, undefined capture or variable).
    #[error("{origin}:{line}: {message}")]
    Mapping {
        origin: String,
        line: usize,
        message: String,
    },
    /// The target manifest cannot be read.
    #[error("target manifest {origin}: {message}")]
    Manifest { origin: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Caffe(#[from] butd_caffe::Error),
    /// A written value is NaN or ±inf (refused unless `WriteOptions::allow_non_finite`).
    #[error(
        "{key} (from {from}) holds {value} at flat index {index}: the model's weights are \
         broken; nothing written (`butd convert --allow-non-finite` writes it anyway)"
    )]
    NonFinite {
        key: String,
        from: String,
        index: usize,
        value: f32,
    },
    /// The mapping does not account for the model and the target exactly.
    #[error("{origin}: {} strictness problem(s):\n{}", problems.len(), list(problems))]
    Strict {
        origin: String,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What kind of disagreement a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A rule's pattern matches no Caffe blob.
    NoMatch,
    /// A rule refers to a Caffe blob that does not exist.
    MissingBlob,
    /// Two readings of one Caffe name translate differently.
    Ambiguous,
    /// A transform does not apply to the shape it gets, or the result differs from the target.
    Shape,
    /// The produced dtype differs from the target's.
    Dtype,
    /// Two rules (or two matches of one rule) produce the same key.
    Duplicate,
    /// A produced key is not in the target manifest.
    NotInTarget,
    /// A target key is produced by no rule.
    NotProduced,
    /// A Caffe blob is neither used by a rule nor listed in `[ignore]`.
    Unused,
    /// A Caffe blob is both used and ignored.
    UsedAndIgnored,
    /// An `[ignore]` entry matches nothing.
    StaleIgnore,
}

impl ProblemKind {
    /// A stable snake_case name, for JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::NoMatch => "no_match",
            ProblemKind::MissingBlob => "missing_blob",
            ProblemKind::Ambiguous => "ambiguous",
            ProblemKind::Shape => "shape",
            ProblemKind::Dtype => "dtype",
            ProblemKind::Duplicate => "duplicate",
            ProblemKind::NotInTarget => "not_in_target",
            ProblemKind::NotProduced => "not_produced",
            ProblemKind::Unused => "unused",
            ProblemKind::UsedAndIgnored => "used_and_ignored",
            ProblemKind::StaleIgnore => "stale_ignore",
        }
    }
}

/// One strictness failure, located at the rule (or `[ignore]` entry) it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The rule name, or the `[ignore]` entry, when one is responsible.
    pub rule: Option<String>,
    /// 1-based line in the mapping file.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rule, self.line) {
            (Some(r), Some(l)) => write!(f, "line {l}: rule `{r}`: {}", self.message),
            (None, Some(l)) => write!(f, "line {l}: {}", self.message),
            (Some(r), None) => write!(f, "rule `{r}`: {}", self.message),
            (None, None) => write!(f, "{}", self.message),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
