//! The gate's thresholds: `parity.toml` (schema in `docs/verify.md`), optionally with a named
//! profile of it applied (`[profiles.NAME]`, e.g. `fast` for `--precision bf16` records).
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::gate::Metric;
use crate::VerifyError;

/// The repository's `parity.toml`, compiled in: the defaults are that file, not a copy of it.
const DEFAULT_TOML: &str = include_str!("../../../parity.toml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub matching: Matching,
    pub ties: Ties,
    pub rois: SetRules,
    #[serde(rename = "final")]
    pub final_records: SetRules,
    /// Tensor name → largest allowed `max |Δ| / max |golden|`.
    pub max_rel: BTreeMap<String, f64>,
    /// Tensor name → largest allowed `max |Δ|`.
    pub max_abs: BTreeMap<String, f64>,
    pub labels: Labels,
    pub required: Required,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matching {
    pub min_iou: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ties {
    pub rel_eps: f64,
    pub allow: bool,
    /// An unmatched golden final region that overlaps an unmatched candidate one by at least
    /// the per-class NMS threshold is a swap inside one NMS cluster (a neighbour kept instead),
    /// reported as a tie (the `fast` profile; off by default).
    #[serde(default)]
    pub nms_swaps: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRules {
    pub same_set: bool,
    pub same_order: bool,
    /// Per image: the least share of golden regions that must have a match (checked whatever
    /// `same_set` says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_matched: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub exact: Vec<String>,
    pub keep: bool,
    /// Labels gated by a rate instead: per image, the least share of matched regions whose
    /// label agrees or differs only at a near-tie.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_agreement: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Required {
    pub tensors: Vec<String>,
    pub all: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::builtin(None).expect("the repository's parity.toml parses (tested)")
    }
}

/// The table of `parity.toml` that holds named profiles.
const PROFILES: &str = "profiles";

impl Thresholds {
    pub fn load(path: &Path) -> Result<Self, VerifyError> {
        Thresholds::load_profile(path, None)
    }

    /// `path` with `[profiles.NAME]` applied when `profile` is given.
    pub fn load_profile(path: &Path, profile: Option<&str>) -> Result<Self, VerifyError> {
        let text = std::fs::read_to_string(path).map_err(|e| VerifyError::io(path, e))?;
        Thresholds::parse_profile(&text, path, profile)
    }

    /// The repository's `parity.toml` as built in, with a profile applied when given.
    pub fn builtin(profile: Option<&str>) -> Result<Self, VerifyError> {
        Thresholds::parse_profile(DEFAULT_TOML, Path::new("parity.toml (built in)"), profile)
    }

    /// Parses and validates TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, VerifyError> {
        Thresholds::parse_profile(text, path, None)
    }

    /// As [`Thresholds::parse`], then the tables of `[profiles.NAME]` merged over the base:
    /// a table merges key by key, any other value replaces the base's.
    pub fn parse_profile(
        text: &str,
        path: &Path,
        profile: Option<&str>,
    ) -> Result<Self, VerifyError> {
        let err = |message: String| VerifyError::Thresholds {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let profiles = match table.remove(PROFILES) {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(err(format!("[{PROFILES}] must be a table of profiles"))),
        };
        if let Some(name) = profile {
            match profiles.get(name) {
                Some(toml::Value::Table(over)) => merge_tables(&mut table, over),
                _ => {
                    let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                    return Err(err(format!(
                        "no profile `{name}` (profiles here: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
        }
        let th: Thresholds = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| err(e.to_string()))?;
        th.validate(text).map_err(err)?;
        Ok(th)
    }

    fn validate(&self, text: &str) -> Result<(), String> {
        let th = self;
        if !(th.matching.min_iou > 0.0 && th.matching.min_iou <= 1.0) {
            return Err(format!(
                "[matching] min_iou = {}: expected a number in (0, 1]",
                th.matching.min_iou
            ));
        }
        if !(th.ties.rel_eps >= 0.0 && th.ties.rel_eps.is_finite()) {
            return Err(format!(
                "[ties] rel_eps = {}: expected a finite number ≥ 0",
                th.ties.rel_eps
            ));
        }
        let names = th
            .max_rel
            .keys()
            .map(|n| ("max_rel", n))
            .chain(th.max_abs.keys().map(|n| ("max_abs", n)))
            .chain(th.labels.exact.iter().map(|n| ("labels", n)))
            .chain(th.required.tensors.iter().map(|n| ("required", n)));
        for (table, name) in names {
            if !crate::engine::LAYER_ORDER.contains(&name.as_str()) {
                // A misspelt name would silently remove its gate.
                return Err(format!(
                    "line {}: [{table}] names the unknown tensor {name:?}; known tensors: {}",
                    line_of(text, table, name),
                    crate::engine::LAYER_ORDER.join(", ")
                ));
            }
        }
        for (table, map) in [("max_rel", &th.max_rel), ("max_abs", &th.max_abs)] {
            if let Some((name, v)) = map.iter().find(|(_, v)| v.is_nan() || **v < 0.0) {
                return Err(format!("[{table}] {name} = {v}: expected a number ≥ 0"));
            }
        }
        let shares = [
            ("rois", th.rois.min_matched),
            ("final", th.final_records.min_matched),
        ]
        .into_iter()
        .filter_map(|(t, v)| Some((format!("[{t}] min_matched"), v?)))
        .chain(
            th.labels
                .min_agreement
                .iter()
                .map(|(n, &v)| (format!("[labels.min_agreement] {n}"), v)),
        );
        for (key, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{key} = {v}: expected a share in [0, 1]"));
            }
        }
        Ok(())
    }

    /// The tensor's limit, as (metric, limit): `max_rel` wins when both are given.
    pub fn limit(&self, tensor: &str) -> Option<(Metric, f64)> {
        if let Some(&v) = self.max_rel.get(tensor) {
            Some((Metric::MaxRel, v))
        } else {
            self.max_abs.get(tensor).map(|&v| (Metric::MaxAbs, v))
        }
    }
}

/// The 1-based line of the first mention of `name` in `[table]` of `text` (0 when not found).
fn line_of(text: &str, table: &str, name: &str) -> usize {
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') && !line.starts_with("[[") && line.ends_with(']') {
            in_table = line.trim_matches(['[', ']']).trim() == table;
        } else if in_table && !line.starts_with('#') && line.contains(name) {
            return i + 1;
        }
    }
    0
}

/// `over` onto `base`: tables merge key by key (recursively), other values replace.
fn merge_tables(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_parity_toml_holds_the_reference_tolerances() {
        let th = Thresholds::default();
        for name in [
            "data",
            "res4b22",
            "rpn_cls_prob_reshape",
            "rpn_bbox_pred",
            "cls_prob",
            "attr_prob",
            "pool5_flat",
            "features",
        ] {
            assert_eq!(th.limit(name), Some((Metric::MaxRel, 1e-4)), "{name}");
        }
        assert_eq!(th.limit("rois"), Some((Metric::MaxAbs, 1e-3)));
        assert_eq!(th.limit("boxes"), Some((Metric::MaxAbs, 1e-3)));
        assert_eq!(th.labels.exact, ["objects_id", "attrs_id"]);
        assert!(th.labels.keep);
        assert!(th.rois.same_set && th.rois.same_order);
        assert!(th.final_records.same_set && th.final_records.same_order);
        assert!(th.ties.allow);
        assert_eq!(th.ties.rel_eps, 1e-5);
    }

    #[test]
    fn the_fast_profile_merges_over_the_base_and_an_unknown_profile_is_refused() {
        let base = Thresholds::default();
        let fast = Thresholds::builtin(Some("fast")).unwrap();
        // Changed by the profile …
        assert!(fast.ties.nms_swaps && !base.ties.nms_swaps);
        assert!(fast.ties.rel_eps > base.ties.rel_eps);
        assert_eq!(fast.limit("features"), Some((Metric::MaxRel, 1e-2)));
        assert_eq!(fast.labels.exact, ["objects_id"]);
        assert_eq!(fast.labels.min_agreement["attrs_id"], 0.95);
        assert_eq!(fast.final_records.min_matched, Some(0.9));
        // … merged key by key: what it does not name stays the exact mode's.
        for name in ["data", "res4b22", "rpn_cls_prob_reshape", "rpn_bbox_pred"] {
            assert_eq!(fast.limit(name), base.limit(name), "{name}");
        }
        assert_eq!(fast.rois, base.rois);
        assert_eq!(fast.limit("rois"), Some((Metric::MaxAbs, 1e-3)));
        let e = Thresholds::builtin(Some("turbo")).unwrap_err().to_string();
        assert!(
            e.contains("no profile `turbo`") && e.contains("fast"),
            "{e}"
        );
        let text = DEFAULT_TOML.replace("min_matched = 0.9", "min_matched = 90");
        let e = Thresholds::parse_profile(&text, Path::new("p.toml"), Some("fast"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[final] min_matched = 90"), "{e}");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let text = DEFAULT_TOML.replace("min_iou = 0.9", "min_iou = 1.5");
        let e = Thresholds::parse(&text, Path::new("my.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("my.toml") && e.contains("min_iou"), "{e}");
        let text = DEFAULT_TOML.replace("[ties]", "[ties]\nbogus = 1");
        let e = Thresholds::parse(&text, Path::new("my.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn a_misspelt_tensor_name_is_an_error_naming_it_and_its_line() {
        let text = DEFAULT_TOML.replace("pool5_flat = 1e-4", "pool5_flatt = 1e-4");
        let line = text
            .lines()
            .position(|l| l.starts_with("pool5_flatt"))
            .unwrap()
            + 1;
        let e = Thresholds::parse(&text, Path::new("my.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"pool5_flatt\"") && e.contains(&format!("line {line}:")),
            "{e}"
        );
        let text = DEFAULT_TOML.replace(
            "\"objects_id\", \"attrs_id\"]",
            "\"object_id\", \"attrs_id\"]",
        );
        let e = Thresholds::parse(&text, Path::new("my.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[labels]") && e.contains("\"object_id\""), "{e}");
    }
}
