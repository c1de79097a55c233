//! Image ids: which ids a format can hold ([`check_image_id`]), how a record's id becomes the
//! image id a format stores or a comparison pairs by ([`IdPolicy`]), the one id-map reader
//! ([`IdPolicy::load_map`]) and the one resolution of a user's choice ([`choose_id_policy`]),
//! shared by `butd export`, `butd verify` and the Python bindings.
use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::error::FormatError;

/// An image id as the writers use it: a file name (UNITER npz), a TSV field, a DB key. It must
/// not be empty, `.` or `..`, start with `.`, hold a path separator or a control character
/// (a tab or line break splits a TSV row; a separator or `..` would write outside the output).
pub fn check_image_id(id: &str) -> Result<(), String> {
    let why = if id.is_empty() {
        "is empty"
    } else if id.starts_with('.') {
        "starts with '.' (`..` or a hidden file name)"
    } else if id.contains(['/', '\\']) {
        "holds a path separator"
    } else if id.chars().any(char::is_control) {
        "holds a control character (tab, line break, …)"
    } else {
        return Ok(());
    };
    Err(format!(
        "image id {id:?} {why}; it cannot name a file or a TSV field"
    ))
}

/// How a record's image id is derived from the record's own id: its file name without
/// `.safetensors`, which is the id `butd extract` chose (`--id-policy`), never the image's
/// file name (two images `a/1.jpg` and `b/1.jpg` have one file name and two records).
#[derive(Debug, Clone, PartialEq)]
pub enum IdPolicy {
    /// The record id itself, as LXMERT (`img_id`) and UNITER (npz name) use it.
    Stem,
    /// The trailing decimal digits of the stem as an integer, as BUTD TSV and the VQA HDF5 index
    /// need it: `COCO_val2014_000000123456` → `123456`.
    IntSuffix,
    /// Looked up by record id in a table ([`IdPolicy::load_map`]).
    Map(HashMap<String, String>),
}

/// The id policy as a user names it (`--id-policy`), before [`choose_id_policy`] resolves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum IdChoice {
    /// int-suffix where ids must be integers (butd-tsv, vqa-hdf5: the export's output, verify's other side), stem otherwise; map with --id-map
    Auto,
    /// The record id, i.e. the image file stem (records, LXMERT img_id, UNITER names)
    Stem,
    /// Trailing digits of the stem: COCO_val2014_000000123456 → 123456
    IntSuffix,
    /// Looked up in --id-map
    Map,
}

/// The policy that `choice` and an id map (`--id-map`) give together: a map implies
/// [`IdChoice::Map`] under `Auto`; `None` for `Auto` without a map, which the caller resolves by
/// format (`export`: int-suffix for integer-id formats; `verify`: by the other side).
pub fn choose_id_policy(
    choice: IdChoice,
    id_map: Option<&Path>,
) -> Result<Option<IdPolicy>, FormatError> {
    let usage = |message: &str| Err(FormatError::Usage(message.into()));
    match (choice, id_map) {
        (IdChoice::Map | IdChoice::Auto, Some(map)) => IdPolicy::load_map(map).map(Some),
        (IdChoice::Map, None) => usage("--id-policy map needs --id-map FILE"),
        (_, Some(_)) => usage("--id-map is only used with --id-policy map (or auto)"),
        (IdChoice::Stem, None) => Ok(Some(IdPolicy::Stem)),
        (IdChoice::IntSuffix, None) => Ok(Some(IdPolicy::IntSuffix)),
        (IdChoice::Auto, None) => Ok(None),
    }
}

impl IdPolicy {
    /// Reads an id map from JSON: an object `{"<image stem>": id, …}`, or COCO-style annotations
    /// `{"images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}, …]}` (the file
    /// name's stem maps to the id). Ids may be strings or integers and must be usable image ids
    /// ([`check_image_id`]); an error names the file and the entry.
    pub fn load_map(path: &Path) -> Result<IdPolicy, FormatError> {
        let text = std::fs::read_to_string(path).map_err(FormatError::io(path))?;
        let bad = |at: &str, message: String| FormatError::parse(path, at, message);
        let value: Value =
            serde_json::from_str(&text).map_err(|e| bad("not JSON", e.to_string()))?;
        let mut map = HashMap::new();
        let mut insert = |stem: String, id: &Value, at: &str| -> Result<(), FormatError> {
            let id = match id {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
                other => {
                    let message = format!("the id must be a string or an integer, not {other}");
                    return Err(bad(at, message));
                }
            };
            check_image_id(&id).map_err(|e| bad(at, e))?;
            map.insert(stem, id);
            Ok(())
        };
        match &value {
            Value::Object(o) if o.get("images").is_some_and(Value::is_array) => {
                let images = o["images"].as_array().map_or(&[][..], |v| &v[..]);
                for (i, image) in images.iter().enumerate() {
                    let file_name = image.get("file_name").and_then(Value::as_str);
                    let (Some(name), Some(id)) = (file_name, image.get("id")) else {
                        let message = "expected \"file_name\" (string) and \"id\"".to_string();
                        return Err(bad(&format!("images[{i}]"), message));
                    };
                    let at = format!("images[{i}] ({name})");
                    let stem = Path::new(name)
                        .file_stem()
                        .map_or(name.to_string(), |s| s.to_string_lossy().into_owned());
                    insert(stem, id, &at)?;
                }
            }
            Value::Object(o) => {
                for (stem, id) in o {
                    insert(stem.clone(), id, &format!("entry {stem:?}"))?;
                }
            }
            _ => {
                let message = "expected a JSON object {\"<image stem>\": <id>, …} or COCO-style \
                               {\"images\": [{\"id\", \"file_name\"}, …]}";
                return Err(bad("top level", message.into()));
            }
        }
        Ok(IdPolicy::Map(map))
    }

    /// The image id for `stem`, or why there is none.
    pub fn image_id(&self, stem: &str) -> Result<String, String> {
        match self {
            IdPolicy::Stem => Ok(stem.to_string()),
            IdPolicy::IntSuffix => int_suffix(stem).ok_or_else(|| {
                format!("image stem {stem:?} does not end in decimal digits (id policy int-suffix)")
            }),
            IdPolicy::Map(map) => map
                .get(stem)
                .cloned()
                .ok_or_else(|| format!("image stem {stem:?} is not in the id map")),
        }
    }
}

/// The trailing ASCII digits of `stem` without leading zeros (COCO's zero-padded file names
/// carry the numeric id `int(...)` gives), or `None` when `stem` has no trailing digit.
pub fn int_suffix(stem: &str) -> Option<String> {
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let suffix = stem[stem.len() - digits..].trim_start_matches('0');
    Some(if suffix.is_empty() {
        "0".to_string()
    } else {
        suffix.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_suffix_drops_the_zero_padding() {
        assert_eq!(
            int_suffix("COCO_val2014_000000123456").as_deref(),
            Some("123456")
        );
        assert_eq!(int_suffix("2345").as_deref(), Some("2345"));
        assert_eq!(int_suffix("img_000").as_deref(), Some("0"));
        assert_eq!(int_suffix("coffee"), None);
    }

    #[test]
    fn policies_name_what_they_could_not_map() {
        assert_eq!(IdPolicy::Stem.image_id("coffee").unwrap(), "coffee");
        assert!(IdPolicy::IntSuffix
            .image_id("coffee")
            .unwrap_err()
            .contains("coffee"));
        let map = IdPolicy::Map([("coffee".to_string(), "42".to_string())].into());
        assert_eq!(map.image_id("coffee").unwrap(), "42");
        assert!(map.image_id("tea").unwrap_err().contains("tea"));
    }

    #[test]
    fn ids_that_could_leave_the_output_or_split_a_row_are_refused() {
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", "a\tb", "a\nb", "a\rb", ".hidden",
        ] {
            assert!(check_image_id(bad).is_err(), "{bad:?}");
        }
        for good in ["42", "COCO_val2014_000000000042", "a b", "x..y"] {
            assert!(check_image_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn id_maps_read_objects_and_coco_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.json");
        std::fs::write(
            &p,
            r#"{"images": [{"id": 42, "file_name": "val/COCO_val2014_000000000042.jpg"},
                            {"id": "7", "file_name": "coffee.jpg"}], "annotations": []}"#,
        )
        .unwrap();
        let IdPolicy::Map(m) = IdPolicy::load_map(&p).unwrap() else {
            panic!("a map")
        };
        assert_eq!(m["COCO_val2014_000000000042"], "42");
        assert_eq!(m["coffee"], "7");
        std::fs::write(&p, r#"{"coffee": 3, "tea": "t"}"#).unwrap();
        let IdPolicy::Map(m) = IdPolicy::load_map(&p).unwrap() else {
            panic!("a map")
        };
        assert_eq!((m["coffee"].as_str(), m["tea"].as_str()), ("3", "t"));
        std::fs::write(&p, r#"{"coffee": 1.5}"#).unwrap();
        let e = IdPolicy::load_map(&p).unwrap_err().to_string();
        assert!(e.contains("ids.json") && e.contains("coffee"), "{e}");
        std::fs::write(&p, r#"{"images": [{"id": 1}]}"#).unwrap();
        assert!(IdPolicy::load_map(&p)
            .unwrap_err()
            .to_string()
            .contains("images[0]"));
        std::fs::write(&p, r#"{"coffee": "../up"}"#).unwrap();
        let e = IdPolicy::load_map(&p).unwrap_err().to_string();
        assert!(e.contains("coffee") && e.contains("starts with '.'"), "{e}");
        std::fs::write(&p, "[1, 2]").unwrap();
        let e = IdPolicy::load_map(&p).unwrap_err().to_string();
        assert!(
            e.contains("ids.json") && e.contains("expected a JSON object"),
            "{e}"
        );
    }

    #[test]
    fn a_map_implies_the_map_policy_and_fits_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.json");
        std::fs::write(&p, r#"{"coffee": 3}"#).unwrap();
        for choice in [IdChoice::Auto, IdChoice::Map] {
            let policy = choose_id_policy(choice, Some(&p)).unwrap();
            assert!(matches!(policy, Some(IdPolicy::Map(m)) if m["coffee"] == "3"));
        }
        for choice in [IdChoice::Stem, IdChoice::IntSuffix] {
            let e = choose_id_policy(choice, Some(&p)).unwrap_err().to_string();
            assert!(e.contains("only used with --id-policy map"), "{e}");
        }
        let e = choose_id_policy(IdChoice::Map, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs --id-map"), "{e}");
        assert_eq!(choose_id_policy(IdChoice::Auto, None).unwrap(), None);
        assert_eq!(
            choose_id_policy(IdChoice::Stem, None).unwrap(),
            Some(IdPolicy::Stem)
        );
        assert_eq!(
            choose_id_policy(IdChoice::IntSuffix, None).unwrap(),
            Some(IdPolicy::IntSuffix)
        );
    }
}
