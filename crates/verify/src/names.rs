//! Words for the label ids the reports print (butd-vocab's Visual Genome vocabulary), so that
//! a label disagreement reads `66 tea kettle → 343 bears`, not `66 → 343`. parity.json keeps
//! the ids alone (its schema).
use std::sync::OnceLock;

use butd_vocab::Vocab;

fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(Vocab::builtin)
}

/// `id word` for an id of a class label (`objects_id`, `cls_prob.argmax`) or an attribute label
/// whose names are known; the id alone otherwise (`keep`, attributes without a vocabulary).
pub(crate) fn named(label: &str, id: i64) -> String {
    match label {
        "objects_id" | "cls_prob.argmax" => format!("{id} {}", vocab().object(id)),
        "attrs_id" | "attr_prob.argmax" if vocab().has_attributes() => {
            format!("{id} {}", vocab().attribute(id))
        }
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_ids_are_named_and_other_labels_are_not() {
        assert_eq!(named("objects_id", 66), "66 tea kettle");
        assert_eq!(named("cls_prob.argmax", 0), "0 yolk");
        assert_eq!(named("keep", 12), "12");
        assert_eq!(named("attrs_id", 3), "3");
    }
}
