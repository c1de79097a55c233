//! The gate's verdict types: which error figure a threshold bounds ([`Metric`]) and one
//! tensor's check against its limit ([`GateCheck`]). Their own module so that the thresholds
//! (configuration) and the report (data) both use them without importing each other.
use serde::{Deserialize, Serialize};

use crate::stats::Stats;

/// Which error figure a threshold bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    MaxRel,
    MaxAbs,
}

impl Metric {
    pub fn label(self) -> &'static str {
        match self {
            Metric::MaxRel => "max|Δ|/max|golden|",
            Metric::MaxAbs => "max|Δ|",
        }
    }

    pub fn of(self, s: &Stats) -> f64 {
        match self {
            Metric::MaxRel => s.max_rel,
            Metric::MaxAbs => s.max_abs_diff,
        }
    }

    /// `value ≤ limit` (an infinite value fails).
    pub fn check(self, s: &Stats, limit: f64) -> GateCheck {
        let value = self.of(s);
        GateCheck {
            metric: self,
            value,
            limit,
            passed: value <= limit,
        }
    }
}

/// One tensor's figure against its limit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GateCheck {
    pub metric: Metric,
    pub value: f64,
    pub limit: f64,
    pub passed: bool,
}
