//! Words for the ids a record holds: the Visual Genome vocabulary of the released BUTD model
//! (`vocab/README.md`: provenance, and why no attribute names ship).
//!
//! ```
//! let vocab = butd_vocab::Vocab::builtin();
//! assert_eq!(vocab.object(0), "yolk");            // objects_id 0 = cls_score column 1
//! assert_eq!(vocab.attribute(17), "attr#17");     // no attribute names built in
//! ```
//!
//! # Design
//! - Ids are the records' (`objects_id`, `attrs_id`): 0-based, background / "no attribute"
//!   excluded, so id i is line i of the vocabulary file and column i + 1 of `cls_score`.
//! - An id without a word (out of range, or no attribute vocabulary) reads `object#i` /
//!   `attr#i`: a label is never missing, and never silently another class's.
use std::path::Path;

/// Object classes without background (the records' `objects_id` range).
pub const NUM_OBJECTS: usize = 1600;
/// Attributes without "no attribute" (the records' `attrs_id` range).
pub const NUM_ATTRIBUTES: usize = 400;

/// Object and attribute names by id.
#[derive(Debug, Clone)]
pub struct Vocab {
    objects: Vec<String>,
    attributes: Vec<String>,
}

/// The first synonym of each line (`line.split(',')[0].lower().strip()`, as the demos read
/// the release's files).
fn names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').next().unwrap_or("").trim().to_lowercase())
        .collect()
}

impl Vocab {
    /// The vocabulary shipped with butd: the 1600 object names, no attribute names.
    pub fn builtin() -> Vocab {
        Vocab {
            objects: names(include_str!("../../../vocab/objects_vocab.txt")),
            attributes: Vec::new(),
        }
    }

    /// The release's `objects_vocab.txt` and, when present, `attributes_vocab.txt` in `dir`
    /// (lines of comma-separated synonyms). The counts must be 1600 and 400.
    pub fn from_dir(dir: &Path) -> Result<Vocab, String> {
        let read = |name: &str, count: usize, required: bool| -> Result<Vec<String>, String> {
            let path = dir.join(name);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            let list = names(&text);
            if list.len() != count {
                return Err(format!(
                    "{}: {} names, expected {count} (one per line)",
                    path.display(),
                    list.len()
                ));
            }
            Ok(list)
        };
        Ok(Vocab {
            objects: read("objects_vocab.txt", NUM_OBJECTS, true)?,
            attributes: read("attributes_vocab.txt", NUM_ATTRIBUTES, false)?,
        })
    }

    /// The name of object id `id` (0-based, background excluded), else `object#id`.
    pub fn object(&self, id: i64) -> String {
        word(&self.objects, id).unwrap_or_else(|| format!("object#{id}"))
    }

    /// The name of attribute id `id` (0-based, "no attribute" excluded), else `attr#id`.
    pub fn attribute(&self, id: i64) -> String {
        word(&self.attributes, id).unwrap_or_else(|| format!("attr#{id}"))
    }

    /// Whether attribute names are known.
    pub fn has_attributes(&self) -> bool {
        !self.attributes.is_empty()
    }
}

fn word(list: &[String], id: i64) -> Option<String> {
    usize::try_from(id).ok().and_then(|i| list.get(i)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_objects_are_1600_distinct_names_in_the_releases_order() {
        let v = Vocab::builtin();
        assert_eq!(v.objects.len(), NUM_OBJECTS);
        let distinct: std::collections::HashSet<_> = v.objects.iter().collect();
        assert_eq!(distinct.len(), NUM_OBJECTS);
        assert_eq!(
            (v.object(0), v.object(1599)),
            ("yolk".into(), "buoy".into())
        );
        assert_eq!(v.object(50), "man");
    }

    #[test]
    fn ids_without_a_word_are_named_by_number() {
        let v = Vocab::builtin();
        assert_eq!(v.object(1600), "object#1600");
        assert_eq!(v.object(-1), "object#-1");
        assert_eq!(v.attribute(3), "attr#3");
        assert!(!v.has_attributes());
    }

    #[test]
    fn a_release_folder_gives_first_synonyms_and_its_counts_are_checked() {
        let dir = std::env::temp_dir().join(format!("butd-vocab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let objects: String = (0..NUM_OBJECTS)
            .map(|i| format!("Thing{i},alias\n"))
            .collect();
        std::fs::write(dir.join("objects_vocab.txt"), &objects).unwrap();
        let attrs: String = (0..NUM_ATTRIBUTES)
            .map(|i| format!("quality{i}\n"))
            .collect();
        std::fs::write(dir.join("attributes_vocab.txt"), attrs).unwrap();
        let v = Vocab::from_dir(&dir).unwrap();
        assert_eq!(
            (v.object(7), v.attribute(399)),
            ("thing7".into(), "quality399".into())
        );
        std::fs::write(dir.join("attributes_vocab.txt"), "white\nblack\n").unwrap();
        let err = Vocab::from_dir(&dir).unwrap_err();
        assert!(err.contains("2 names, expected 400"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
