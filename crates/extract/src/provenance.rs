//! What made a record: the run's settings, written into every record's metadata (keys in
//! `butd_record::meta`), and the check that a run into a folder holding records uses the same
//! ones. A record is only comparable with its neighbours when the same weights, selection and
//! precision made it: a rerun with `--fixed 36` into a folder of adaptive records would
//! otherwise keep the old records and an "obj36" export would hold 13 boxes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use butd_model::select::SelectConfig;
use butd_record::meta;
use sha2::{Digest, Sha256};

/// The provenance entries of one run (every record gets them, plus its image's sha256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    entries: BTreeMap<&'static str, String>,
}

/// How a record already in the output folder relates to this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: &'static str,
    /// The record's value (`None`: the record does not say; written before provenance).
    pub theirs: Option<String>,
    pub ours: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.theirs {
            Some(v) => write!(f, "{} = {v}, this run {}", self.key, self.ours),
            None => write!(
                f,
                "no {} (written by a butd without provenance), this run {}",
                self.key, self.ours
            ),
        }
    }
}

/// SHA-256 of a file, as lowercase hex, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of bytes, as lowercase hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `__metadata__` of a safetensors file (empty when it has none).
fn safetensors_metadata(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut header = vec![0u8; u64::from_le_bytes(n).min(100 << 20) as usize];
    file.read_exact(&mut header)
        .with_context(|| format!("{}: truncated safetensors header", path.display()))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .with_context(|| format!("{}: the safetensors header is not JSON", path.display()))?;
    Ok(header
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

impl Provenance {
    /// This run's entries: butd's version, the weights' sha256 (read once per run) and the
    /// mapping and butd version that `butd convert` recorded in them,
    /// the selection settings and the precision (the device is [`RecordInfo::device`]).
    pub fn of_run(
        weights: &Path,
        select: &SelectConfig,
        precision: &str,
    ) -> anyhow::Result<Provenance> {
        let weights_meta = safetensors_metadata(weights)?;
        let from_weights = |key: &str| {
            weights_meta
                .get(key)
                .cloned()
                .unwrap_or_else(|| "unknown".into())
        };
        let entries = BTreeMap::from([
            (meta::BUTD_VERSION, env!("CARGO_PKG_VERSION").to_string()),
            (meta::WEIGHTS_SHA256, sha256_file(weights)?),
            (
                meta::WEIGHTS_MAPPING,
                format!(
                    "{} ({})",
                    from_weights(butd_mapping::METADATA_MAPPING),
                    from_weights(butd_mapping::METADATA_MAPPING_DIGEST)
                ),
            ),
            (meta::WEIGHTS_CONVERTED_BY, from_weights("butd_version")),
            (
                meta::SELECT_MODE,
                if select.min_boxes == select.max_boxes {
                    "fixed"
                } else {
                    "adaptive"
                }
                .to_string(),
            ),
            (meta::CONF_THRESH, select.conf_thresh.to_string()),
            (meta::MIN_BOXES, select.min_boxes.to_string()),
            (meta::MAX_BOXES, select.max_boxes.to_string()),
            (meta::PRECISION, precision.to_string()),
        ]);
        Ok(Provenance { entries })
    }

    /// The weights' SHA-256 ([`RecordInfo::weights_sha256`](butd_model::record::RecordInfo)).
    pub fn weights_sha256(&self) -> &str {
        &self.entries[meta::WEIGHTS_SHA256]
    }

    /// The entries but the weights' SHA-256, as record metadata.
    pub fn entries(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.entries
            .iter()
            .filter(|(k, _)| **k != meta::WEIGHTS_SHA256)
            .map(|(k, v)| (k.to_string(), v.clone()))
    }

    /// The first of [`meta::RUN_SETTINGS`] in which a record's metadata differs from this run.
    pub fn difference(&self, record: &BTreeMap<String, String>) -> Option<Difference> {
        meta::RUN_SETTINGS.iter().find_map(|&key| {
            let ours = &self.entries[key];
            let theirs = record.get(key);
            (theirs != Some(ours)).then(|| Difference {
                key,
                theirs: theirs.cloned(),
                ours: ours.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_meta(select: &SelectConfig, precision: &str) -> BTreeMap<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.safetensors");
        // An empty safetensors file with the metadata `butd convert` writes.
        let header = br#"{"__metadata__":{"butd_mapping":"builtin:caffe-to-hf-frcnn","butd_version":"0.1.0"}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        std::fs::write(&w, bytes).unwrap();
        let p = Provenance::of_run(&w, select, precision).unwrap();
        let mut m: BTreeMap<String, String> = p.entries().collect();
        m.insert(meta::WEIGHTS_SHA256.into(), p.weights_sha256().into());
        m
    }

    #[test]
    fn a_record_made_with_other_settings_names_the_first_differing_one() {
        let adaptive = SelectConfig::default();
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.safetensors");
        std::fs::write(&w, [2u8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']).unwrap();
        let ours = Provenance::of_run(&w, &SelectConfig::fixed(36), "fp32").unwrap();
        let mut theirs = run_meta(&adaptive, "fp32");
        // Same weights file bytes are not needed: only the settings are compared here.
        theirs.insert(meta::WEIGHTS_SHA256.into(), ours.weights_sha256().into());
        let d = ours.difference(&theirs).unwrap();
        assert_eq!(
            (d.key, d.theirs.as_deref(), d.ours.as_str()),
            (meta::SELECT_MODE, Some("adaptive"), "fixed")
        );
        assert_eq!(d.to_string(), "select_mode = adaptive, this run fixed");
        let mut same: BTreeMap<String, String> = ours.entries().collect();
        same.insert(meta::WEIGHTS_SHA256.into(), ours.weights_sha256().into());
        assert_eq!(ours.difference(&same), None);
        same.remove(meta::PRECISION);
        assert!(ours
            .difference(&same)
            .unwrap()
            .to_string()
            .contains("no precision"));
        assert_eq!(
            theirs[meta::WEIGHTS_MAPPING],
            "builtin:caffe-to-hf-frcnn (unknown)"
        );
    }

    #[test]
    fn sha256_of_known_bytes() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
