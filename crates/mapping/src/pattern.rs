//! Name patterns: `res{stage}{block}_branch{branch}[{param}]` against Caffe blob names, and
//! templates such as `{stage}.{block}.{branch}.weight` for target keys.
//!
//! A `{name}` in a pattern is a *capture*: it matches one of the keys of the capture table
//! `[captures] name = { caffe text = "target text", ... }` and stands for that entry's value in
//! a target template. Table keys may themselves contain captures (`"b{int}" = "{int}"`), and
//! `{int}` is built in (a decimal integer without leading zeros, standing for itself). Matching
//! enumerates every way to read a name, so `b` vs `b{int}` needs no lookahead; two readings that
//! translate differently are reported as ambiguous rather than resolved by order.

use std::collections::BTreeMap;

/// The built-in capture: a canonical decimal integer.
pub(crate) const INT: &str = "int";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    Cap(String),
}

/// Splits `text` into literal text and `{name}` references.
pub(crate) fn parse_pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("`{text}`: `}}` without a matching `{{`"));
        }
        if open > 0 {
            pieces.push(Piece::Lit(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{text}`: `{{` without a matching `}}`"))?;
        let name = &after[..close];
        if !is_identifier(name) {
            return Err(format!(
                "`{text}`: `{{{name}}}` is not a capture name (letters, digits and `_`)"
            ));
        }
        pieces.push(Piece::Cap(name.to_string()));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Lit(rest.to_string()));
    }
    Ok(pieces)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A string with `{name}` holes, filled from a map of names to strings.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub text: String,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(Self {
            text: text.to_string(),
            pieces: parse_pieces(text)?,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Cap(n) => Some(n.as_str()),
            Piece::Lit(_) => None,
        })
    }

    /// Fills the holes; every name must be present (checked when the mapping is loaded).
    pub fn render(&self, get: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => out.push_str(l),
                Piece::Cap(n) => out.push_str(&get(n).unwrap_or_default()),
            }
        }
        out
    }
}

/// One entry of a capture table: the Caffe-side text (a small pattern) and its translation.
#[derive(Debug, Clone)]
struct Alternative {
    key: Vec<Piece>,
    value: Template,
}

/// All capture tables of a mapping.
#[derive(Debug, Clone, Default)]
pub(crate) struct Captures {
    tables: BTreeMap<String, Vec<Alternative>>,
}

/// What one capture bound in a full match: the text it matched and its translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bound {
    pub raw: String,
    pub value: String,
}

/// The captures of the top level of a pattern, by name.
pub(crate) type Bindings = BTreeMap<String, Bound>;

impl Captures {
    /// Adds table `name`; `entries` are (Caffe text, target text) in file order.
    pub fn insert(&mut self, name: &str, entries: Vec<(String, String)>) -> Result<(), String> {
        if name == INT {
            return Err(format!(
                "`{INT}` is a built-in capture and cannot be redefined"
            ));
        }
        let mut alts = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let key_pieces = parse_pieces(&key)?;
            let value = Template::parse(&value)?;
            let inner: Vec<&str> = caps_of(&key_pieces).collect();
            if let Some(n) = value.names().find(|n| !inner.contains(n)) {
                return Err(format!(
                    "entry `{key}` = `{}` uses `{{{n}}}`, which its key does not capture",
                    value.text
                ));
            }
            alts.push(Alternative {
                key: key_pieces,
                value,
            });
        }
        self.tables.insert(name.to_string(), alts);
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        name == INT || self.tables.contains_key(name)
    }

    /// Every table's references must exist and must not loop back to the table itself.
    pub fn validate(&self) -> Result<(), String> {
        for name in self.tables.keys() {
            self.check_refs(name, &mut vec![name.as_str()])?;
        }
        Ok(())
    }

    fn check_refs<'a>(&'a self, name: &str, stack: &mut Vec<&'a str>) -> Result<(), String> {
        for alt in &self.tables[name] {
            for r in caps_of(&alt.key) {
                if r == INT {
                    continue;
                }
                let Some((r, _)) = self.tables.get_key_value(r) else {
                    return Err(format!(
                        "capture `{name}` uses `{{{r}}}`, which is not defined"
                    ));
                };
                if stack.contains(&r.as_str()) {
                    return Err(format!(
                        "captures refer to each other in a loop: {} → {r}",
                        stack.join(" → ")
                    ));
                }
                stack.push(r);
                self.check_refs(r, stack)?;
                stack.pop();
            }
        }
        Ok(())
    }

    /// Reads `text` in full with `pattern`. `Ok(None)`: no reading; `Err`: several readings
    /// that translate differently (each rendered as `name=value, …`).
    pub fn match_full(
        &self,
        pattern: &[Piece],
        text: &str,
    ) -> Result<Option<Bindings>, Vec<String>> {
        let mut found: Vec<Bindings> = Vec::new();
        for (end, binds) in self.seq(pattern, text, 0) {
            if end == text.len() && !found.contains(&binds) {
                found.push(binds);
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(found
                .iter()
                .map(|b| {
                    b.iter()
                        .map(|(k, v)| format!("{k}={}", v.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect()),
        }
    }

    /// All ways to match `pieces` at `text[pos..]`: (end position, bindings).
    fn seq(&self, pieces: &[Piece], text: &str, pos: usize) -> Vec<(usize, Bindings)> {
        let Some((first, rest)) = pieces.split_first() else {
            return vec![(pos, Bindings::new())];
        };
        match first {
            Piece::Lit(l) => {
                if text[pos..].starts_with(l.as_str()) {
                    self.seq(rest, text, pos + l.len())
                } else {
                    Vec::new()
                }
            }
            Piece::Cap(name) => {
                let mut out = Vec::new();
                for (end, value) in self.capture(name, text, pos) {
                    for (e, mut binds) in self.seq(rest, text, end) {
                        let bound = Bound {
                            raw: text[pos..end].to_string(),
                            value: value.clone(),
                        };
                        binds.insert(name.clone(), bound);
                        out.push((e, binds));
                    }
                }
                out
            }
        }
    }

    /// Every (end, translation) that capture `name` can read at `text[pos..]`.
    fn capture(&self, name: &str, text: &str, pos: usize) -> Vec<(usize, String)> {
        if name == INT {
            return int_prefixes(&text[pos..])
                .map(|n| (pos + n, text[pos..pos + n].to_string()))
                .collect();
        }
        let mut out = Vec::new();
        for alt in self.tables.get(name).map(Vec::as_slice).unwrap_or_default() {
            for (end, inner) in self.seq(&alt.key, text, pos) {
                out.push((
                    end,
                    alt.value.render(|n| inner.get(n).map(|b| b.value.clone())),
                ));
            }
        }
        out
    }
}

pub(crate) fn caps_of(pieces: &[Piece]) -> impl Iterator<Item = &str> {
    pieces.iter().filter_map(|p| match p {
        Piece::Cap(n) => Some(n.as_str()),
        Piece::Lit(_) => None,
    })
}

/// Lengths of the canonical decimal integers at the start of `s` ("0", or no leading zero).
fn int_prefixes(s: &str) -> impl Iterator<Item = usize> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let max = if s.starts_with('0') {
        digits.min(1)
    } else {
        digits
    };
    1..=max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resnet() -> Captures {
        let mut c = Captures::default();
        let e = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        c.insert(
            "stage",
            e(&[
                ("2", "backbone.res2"),
                ("4", "backbone.res4"),
                ("5", "roi_heads.res5"),
            ]),
        )
        .unwrap();
        c.insert(
            "block",
            e(&[("a", "0"), ("b", "1"), ("c", "2"), ("b{int}", "{int}")]),
        )
        .unwrap();
        c.insert(
            "branch",
            e(&[
                ("1", "shortcut"),
                ("2a", "conv1"),
                ("2b", "conv2"),
                ("2c", "conv3"),
            ]),
        )
        .unwrap();
        c.insert(
            "conv",
            e(&[
                ("_conv1", "backbone.stem.conv1"),
                ("{stage}{block}_branch{branch}", "{stage}.{block}.{branch}"),
            ]),
        )
        .unwrap();
        c.validate().unwrap();
        c
    }

    fn translate(c: &Captures, pattern: &str, template: &str, text: &str) -> Option<String> {
        let b = c
            .match_full(&parse_pieces(pattern).unwrap(), text)
            .unwrap()?;
        Some(
            Template::parse(template)
                .unwrap()
                .render(|n| b.get(n).map(|x| x.value.clone())),
        )
    }

    #[test]
    fn resnet_block_names_translate_to_indices() {
        let c = resnet();
        let (p, t) = (
            "res{stage}{block}_branch{branch}[0]",
            "{stage}.{block}.{branch}.weight",
        );
        assert_eq!(
            translate(&c, p, t, "res4b13_branch2a[0]").unwrap(),
            "backbone.res4.13.conv1.weight"
        );
        assert_eq!(
            translate(&c, p, t, "res4a_branch1[0]").unwrap(),
            "backbone.res4.0.shortcut.weight"
        );
        assert_eq!(
            translate(&c, p, t, "res2b_branch2c[0]").unwrap(),
            "backbone.res2.1.conv3.weight"
        );
        assert_eq!(
            translate(&c, p, t, "res5c_branch2b[0]").unwrap(),
            "roi_heads.res5.2.conv2.weight"
        );
        assert_eq!(translate(&c, p, t, "res4b13_branch2a[1]"), None);
        assert_eq!(
            translate(&c, p, t, "res4b013_branch2a[0]"),
            None,
            "leading zero is not canonical"
        );
        assert_eq!(
            translate(&c, p, t, "res3a_branch1[0]"),
            None,
            "stage 3 not in this table"
        );
        let (p, t) = ("bn{conv}[0]", "{conv}.norm.running_mean");
        assert_eq!(
            translate(&c, p, t, "bn_conv1[0]").unwrap(),
            "backbone.stem.conv1.norm.running_mean"
        );
        assert_eq!(
            translate(&c, p, t, "bn4b22_branch2c[0]").unwrap(),
            "backbone.res4.22.conv3.norm.running_mean"
        );
    }

    #[test]
    fn raw_text_is_kept_for_caffe_side_templates() {
        let c = resnet();
        let b = c
            .match_full(&parse_pieces("bn{conv}[0]").unwrap(), "bn4b22_branch2c[0]")
            .unwrap()
            .unwrap();
        assert_eq!(b["conv"].raw, "4b22_branch2c");
    }

    #[test]
    fn ambiguous_readings_are_reported() {
        let mut c = Captures::default();
        c.insert(
            "x",
            vec![("a".into(), "1".into()), ("ab".into(), "2".into())],
        )
        .unwrap();
        c.insert("y", vec![("b".into(), "3".into()), ("".into(), "4".into())])
            .unwrap();
        let err = c
            .match_full(&parse_pieces("{x}{y}").unwrap(), "ab")
            .unwrap_err();
        assert_eq!(err.len(), 2);
    }

    #[test]
    fn loops_and_unknown_references_are_rejected() {
        let mut c = Captures::default();
        c.insert("p", vec![("x{q}".into(), "".into())]).unwrap();
        c.insert("q", vec![("y{p}".into(), "".into())]).unwrap();
        assert!(c.validate().unwrap_err().contains("loop"));
        let mut c = Captures::default();
        c.insert("p", vec![("x{nope}".into(), "".into())]).unwrap();
        assert!(c.validate().unwrap_err().contains("not defined"));
        assert!(Captures::default().insert("int", vec![]).is_err());
        assert!(
            parse_pieces("a{b").is_err()
                && parse_pieces("a}b").is_err()
                && parse_pieces("{1x}").is_err()
        );
    }
}
