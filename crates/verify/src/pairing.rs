//! How a side's images become pairing keys: its native ids (`butd_formats::source`) under an
//! id policy ([`Keyer`]), indexed by key with the ids that could not be keyed or came twice
//! ([`Index`]).
use std::collections::HashMap;

use butd_formats::source::{Locator, Meta, Reader};
use butd_formats::{Format, IdPolicy};

use crate::VerifyError;

/// An id that could not be turned into a pairing key, or an id seen twice.
#[derive(Debug)]
pub enum Problem {
    Unmapped { native: String, reason: String },
    Duplicate { key: String, at: String },
}

/// A source's images by pairing key, in source order.
#[derive(Debug, Default)]
pub struct Index {
    pub entries: Vec<(String, Locator)>,
    pub by_key: HashMap<String, usize>,
    pub problems: Vec<Problem>,
}

impl Index {
    fn push(&mut self, key: Result<String, String>, native: &str, loc: Locator, at: String) {
        match key {
            Err(reason) => self.problems.push(Problem::Unmapped {
                native: native.to_string(),
                reason,
            }),
            Ok(key) if self.by_key.contains_key(&key) => {
                self.problems.push(Problem::Duplicate { key, at })
            }
            Ok(key) => {
                self.by_key.insert(key.clone(), self.entries.len());
                self.entries.push((key, loc));
            }
        }
    }
}

/// How a side's native ids become pairing keys: `policy` applies to sources keyed by image
/// file stems (records, LXMERT, UNITER), never to integer ids.
#[derive(Clone, Debug)]
pub struct Keyer {
    pub policy: Option<IdPolicy>,
    pub format: Format,
}

impl Keyer {
    pub fn key(&self, native: &str) -> Result<String, String> {
        match (&self.policy, self.format.integer_ids()) {
            (Some(p), false) => p.image_id(native),
            _ => Ok(native.to_string()),
        }
    }

    /// How the keys are made, for the report.
    pub fn describe(&self) -> String {
        let native = match self.format {
            Format::Records => "file stem",
            Format::ButdTsv => "image_id",
            Format::LxmertTsv => "img_id",
            Format::UniterLmdb | Format::UniterNpz => "entry name without prefix and .npz",
            Format::VqaHdf5 => "image id of the index pickle",
        };
        match (&self.policy, self.format.integer_ids()) {
            (Some(IdPolicy::IntSuffix), false) => format!("trailing digits of the {native}"),
            (Some(IdPolicy::Map(m)), false) => {
                format!("{native} looked up in the id map ({} entries)", m.len())
            }
            _ => native.to_string(),
        }
    }
}

/// Lists every image of `reader` by key; a TSV is read through once for its ids and byte
/// offsets.
pub fn index_by_key(reader: &mut Reader, meta: &Meta, keyer: &Keyer) -> Result<Index, VerifyError> {
    let mut index = Index::default();
    reader.list(meta, |native, loc, at| {
        index.push(keyer.key(native), native, loc, at)
    })?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_key_stem_sources_only() {
        let map = IdPolicy::Map([("coffee".to_string(), "42".to_string())].into());
        let stems = Keyer {
            policy: Some(map.clone()),
            format: Format::LxmertTsv,
        };
        assert_eq!(stems.key("coffee").unwrap(), "42");
        assert!(stems.key("tea").unwrap_err().contains("tea"));
        let ints = Keyer {
            policy: Some(map),
            format: Format::ButdTsv,
        };
        assert_eq!(ints.key("7").unwrap(), "7");
    }
}
