//! Reading a mapping file. The grammar is in `mappings/README.md`; every error names the line,
//! and the rule when it is inside one. Parsing uses `toml_edit`'s spanned document so lines
//! are exact for keys and values alike.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::builtin;
use crate::error::{Error, Result};
use crate::manifest::{Dtype, Manifest};
use crate::pattern::{caps_of, parse_pieces, Captures, Piece, Template};
use crate::transform::Step;

/// A parsed, validated mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The file path, or `builtin:NAME`, for messages.
    pub origin: String,
    pub description: Option<String>,
    base: Base,
    target: Option<(String, usize)>,
    pub(crate) captures: Captures,
    pub rules: Vec<Rule>,
    pub ignores: Vec<Ignore>,
    /// [`Mapping::digest`].
    digest: String,
}

/// Where `target` is resolved: next to the mapping file, or among the built-in manifests.
#[derive(Debug, Clone)]
enum Base {
    Dir(PathBuf),
    Builtin,
}

/// [`Mapping::digest`] of a parsed document.
fn digest_of(root: &toml_edit::Table) -> String {
    let mut canonical = String::new();
    for (key, item) in sorted(root.iter()) {
        if key != "description" {
            canonical.push_str(&format!("{key:?}={};", canonical_item(item)));
        }
    }
    format!("fnv1a64:{:016x}", butd_host::fnv1a64(canonical.as_bytes()))
}

fn sorted<'a, T>(entries: impl Iterator<Item = (&'a str, T)>) -> Vec<(&'a str, T)> {
    let mut v: Vec<_> = entries.collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

/// An item as text without decor (comments, spacing) and with sorted keys.
fn canonical_item(item: &Item) -> String {
    match item {
        Item::None => String::new(),
        Item::Value(v) => canonical_value(v),
        Item::Table(t) => canonical_table(t),
        Item::ArrayOfTables(a) => {
            let parts: Vec<String> = a.iter().map(|t| canonical_table(t)).collect();
            format!("[{}]", parts.join(","))
        }
    }
}

fn canonical_table(t: &dyn TableLike) -> String {
    let parts: Vec<String> = sorted(t.iter())
        .into_iter()
        .map(|(k, v)| format!("{k:?}={}", canonical_item(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn canonical_value(v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(canonical_value).collect();
            format!("[{}]", parts.join(","))
        }
        Value::InlineTable(t) => canonical_table(t),
        Value::String(s) => format!("{:?}", s.value()),
        Value::Integer(i) => i.value().to_string(),
        Value::Float(f) => format!("{:?}", f.value()),
        Value::Boolean(b) => b.value().to_string(),
        Value::Datetime(d) => d.value().to_string(),
    }
}

/// One `[rule.NAME]`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// Line of the rule's header.
    pub line: usize,
    pub(crate) source: RuleSource,
    pub(crate) to: Template,
    pub(crate) steps: Vec<RuleStep>,
}

#[derive(Debug, Clone)]
pub(crate) enum RuleSource {
    /// `from = "pattern"`: one output per matching Caffe blob.
    From(Pattern),
    /// `const = ...`: a literal tensor; once, or once per blob matching `each` (not consumed).
    Const { each: Option<Pattern>, value: Const },
}

#[derive(Debug, Clone)]
pub(crate) struct RuleStep {
    pub step: Step,
    pub line: usize,
    /// For `bn_factor`: the Caffe blob it reads, with the rule's captures as holes.
    pub blob: Option<Template>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub text: String,
    pub pieces: Vec<Piece>,
}

/// A literal tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// One `[ignore]` entry: a layer (all its blobs) or a single blob `layer[i]`, with the reason.
#[derive(Debug, Clone)]
pub struct Ignore {
    pub pattern: String,
    pub reason: String,
    pub line: usize,
    pub(crate) pieces: Vec<Piece>,
}

impl Ignore {
    /// Whether the entry names whole layers rather than single blobs.
    pub fn is_layer(&self) -> bool {
        !self.pattern.ends_with(']')
    }
}

impl Rule {
    /// The `from` pattern, if the rule reads Caffe blobs.
    pub fn from_text(&self) -> Option<&str> {
        match &self.source {
            RuleSource::From(p) => Some(&p.text),
            RuleSource::Const { .. } => None,
        }
    }

    /// The `each` pattern of a constant repeated per matching blob.
    pub fn each_text(&self) -> Option<&str> {
        match &self.source {
            RuleSource::Const { each: Some(p), .. } => Some(&p.text),
            _ => None,
        }
    }

    pub fn to_text(&self) -> &str {
        &self.to.text
    }

    pub fn is_const(&self) -> bool {
        matches!(self.source, RuleSource::Const { .. })
    }

    /// The transform names in order, e.g. `["sub_slices", "select"]`.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.step.name()).collect()
    }
}

impl Mapping {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &path.display().to_string(), Base::Dir(dir))
    }

    /// A mapping shipped inside the binary (`mappings/*.toml`), by file stem.
    pub fn builtin(name: &str) -> Result<Self> {
        let text = builtin::mapping(name).ok_or_else(|| Error::Mapping {
            origin: format!("builtin:{name}"),
            line: 0,
            message: format!(
                "no such built-in mapping; built in: {}",
                builtin::MAPPING_NAMES.join(", ")
            ),
        })?;
        Self::parse(text, &format!("builtin:{name}"), Base::Builtin)
    }

    /// A path if it exists, else a built-in name (`caffe-to-hf-frcnn`). Neither: an error that
    /// lists the built-in names (a newcomer's `--map hf` is not a missing file).
    pub fn load(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.exists() {
            Self::from_file(path)
        } else if builtin::mapping(spec).is_some() {
            Self::builtin(spec)
        } else {
            Err(Error::Mapping {
                origin: spec.to_string(),
                line: 0,
                message: format!(
                    "neither a mapping file nor a built-in mapping; built in: {}",
                    builtin::MAPPING_NAMES.join(", ")
                ),
            })
        }
    }

    /// The mapping's fingerprint, `fnv1a64:<16 hex digits>`: FNV-1a of its content in a
    /// canonical form (keys sorted, comments, layout and `description` left out). Two
    /// mappings with the same digest write the same tensors; `butd convert` stores it in the
    /// weights (`butd_mapping_digest`) so that the model can refuse weights written by another
    /// mapping, which may reorder rows (classes, anchors) without changing a key or a shape.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Parses mapping text; `origin` names it in messages and `dir` resolves `target`.
    pub fn from_str_in(text: &str, origin: &str, dir: &Path) -> Result<Self> {
        Self::parse(text, origin, Base::Dir(dir.to_path_buf()))
    }

    /// The `target` manifest named by the mapping: a path relative to the mapping file, else the
    /// built-in manifest of that file name.
    pub fn target_manifest(&self) -> Result<Manifest> {
        let Some((target, line)) = &self.target else {
            return Err(Error::Mapping {
                origin: self.origin.clone(),
                line: 1,
                message: "the mapping names no `target` manifest; give one explicitly".into(),
            });
        };
        if let Base::Dir(dir) = &self.base {
            let path = dir.join(target);
            if path.exists() {
                return Manifest::load(&path);
            }
        }
        let file = Path::new(target)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or(target);
        match builtin::manifest(file) {
            Some(text) => Manifest::from_json(text, &format!("builtin:{file}")),
            None => Err(Error::Mapping {
                origin: self.origin.clone(),
                line: *line,
                message: format!("target manifest `{target}` not found"),
            }),
        }
    }

    fn parse(text: &str, origin: &str, base: Base) -> Result<Self> {
        let cx = Cx { text, origin };
        let doc = ImDocument::parse(text).map_err(|e| Error::Mapping {
            origin: origin.to_string(),
            line: cx.line(e.span()),
            message: e.message().trim_end().to_string(),
        })?;
        let root = doc.as_table();
        let mut m = Mapping {
            origin: origin.to_string(),
            description: None,
            base,
            target: None,
            captures: Captures::default(),
            rules: Vec::new(),
            ignores: Vec::new(),
            digest: digest_of(root),
        };
        let mut vars = BTreeMap::new();
        if let Some(item) = root.get("vars") {
            for (name, v) in cx.table(root, "vars", item)?.iter() {
                vars.insert(name.to_string(), v.clone());
            }
        }
        let vars = Vars { cx: &cx, vars };
        for (key, item) in root.iter() {
            let line = cx.key_line(root, key, item);
            match key {
                "description" => m.description = Some(cx.string(item, line, "description")?),
                "target" => m.target = Some((cx.string(item, line, "target")?, line)),
                "vars" => {}
                "captures" => {
                    let t = cx.table(root, key, item)?;
                    for (name, entries) in t.iter() {
                        let line = cx.key_line(t, name, entries);
                        let et = cx.table(t, name, entries)?;
                        let pairs = et
                            .iter()
                            .map(|(k, v)| Ok((k.to_string(), cx.string(v, cx.key_line(et, k, v), k)?)))
                            .collect::<Result<Vec<_>>>()?;
                        m.captures.insert(name, pairs).map_err(|e| cx.err(line, format!("capture `{name}`: {e}")))?;
                    }
                    m.captures.validate().map_err(|e| cx.err(line, e))?;
                }
                "rule" => {
                    let t = cx.table(root, key, item)?;
                    for (name, r) in t.iter() {
                        let line = cx.key_line(t, name, r);
                        let rule = cx.rule(name, line, cx.table(t, name, r)?, &vars, &m.captures);
                        m.rules.push(rule.map_err(|e| match e {
                            Error::Mapping { origin, line, message } => Error::Mapping {
                                origin,
                                line,
                                message: format!("rule `{name}`: {message}"),
                            },
                            e => e,
                        })?);
                    }
                }
                "ignore" => {
                    let t = cx.table(root, key, item)?;
                    for (pattern, reason) in t.iter() {
                        let line = cx.key_line(t, pattern, reason);
                        let reason = cx.string(reason, line, pattern)?;
                        if reason.trim().is_empty() {
                            return Err(cx.err(line, format!("ignore `{pattern}`: give a reason")));
                        }
                        let pieces = cx.pattern(pattern, line, &m.captures)?;
                        m.ignores.push(Ignore { pattern: pattern.to_string(), reason, line, pieces });
                    }
                }
                other => {
                    return Err(cx.err(
                        line,
                        format!(
                            "unknown key `{other}`; expected description, target, vars, captures, rule, ignore"
                        ),
                    ))
                }
            }
        }
        Ok(m)
    }
}

/// Parsing context: the text (for lines) and the origin (for messages).
struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
}

/// `[vars]`: named lists, referenced as `"$name"` where a list of numbers is expected.
struct Vars<'a> {
    cx: &'a Cx<'a>,
    vars: BTreeMap<String, Item>,
}

impl Vars<'_> {
    fn numbers(&self, item: &Item, line: usize, what: &str) -> Result<Vec<f64>> {
        let resolved = match item.as_str().and_then(|s| s.strip_prefix('$')) {
            Some(name) => self.vars.get(name).ok_or_else(|| {
                self.cx
                    .err(line, format!("`{what}`: no variable `${name}` in [vars]"))
            })?,
            None => item,
        };
        let arr = resolved.as_array().ok_or_else(|| {
            self.cx.err(
                line,
                format!("`{what}`: expected a list of numbers or \"$var\""),
            )
        })?;
        arr.iter()
            .map(|v| {
                number(v).ok_or_else(|| {
                    self.cx
                        .err(line, format!("`{what}`: `{v}` is not a number"))
                })
            })
            .collect()
    }

    fn ints(&self, item: &Item, line: usize, what: &str) -> Result<Vec<i64>> {
        self.numbers(item, line, what)?
            .into_iter()
            .map(|x| {
                as_int(x).ok_or_else(|| {
                    self.cx
                        .err(line, format!("`{what}`: {x} is not an integer"))
                })
            })
            .collect()
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_integer().map(|i| i as f64).or_else(|| v.as_float())
}

fn as_int(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() < 2f64.powi(53)).then_some(x as i64)
}

/// The fields of one table, consumed one by one; leftovers are unknown fields.
struct Fields<'t> {
    table: &'t dyn TableLike,
    taken: Vec<&'static str>,
}

impl<'t> Fields<'t> {
    fn new(table: &'t dyn TableLike) -> Self {
        Self {
            table,
            taken: Vec::new(),
        }
    }

    fn take(&mut self, name: &'static str) -> Option<&'t Item> {
        self.taken.push(name);
        self.table.get(name)
    }

    /// Errors on a field that no `take` asked for; `what` prefixes the message (a transform's
    /// name; empty for a rule, whose name the caller adds).
    fn finish(self, cx: &Cx, line: usize, what: &str) -> Result<()> {
        let Some((k, v)) = self.table.iter().find(|(k, _)| !self.taken.contains(k)) else {
            return Ok(());
        };
        let prefix = if what.is_empty() {
            String::new()
        } else {
            format!("{what}: ")
        };
        Err(cx.err(
            cx.key_line(self.table, k, v).max(line),
            format!(
                "{prefix}unknown field `{k}`; expected one of {}",
                self.taken.join(", ")
            ),
        ))
    }
}

impl Cx<'_> {
    fn line(&self, span: Option<Range<usize>>) -> usize {
        let at = span.map_or(0, |s| s.start).min(self.text.len());
        self.text[..at].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn key_line(&self, table: &dyn TableLike, key: &str, item: &Item) -> usize {
        let span = table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| item.span());
        self.line(span)
    }

    fn item_line(&self, item: &Item, fallback: usize) -> usize {
        item.span().map_or(fallback, |s| self.line(Some(s)))
    }

    fn err(&self, line: usize, message: impl Into<String>) -> Error {
        Error::Mapping {
            origin: self.origin.to_string(),
            line,
            message: message.into(),
        }
    }

    fn table<'i>(
        &self,
        parent: &dyn TableLike,
        key: &str,
        item: &'i Item,
    ) -> Result<&'i dyn TableLike> {
        item.as_table_like().ok_or_else(|| {
            self.err(
                self.key_line(parent, key, item),
                format!("`{key}` must be a table"),
            )
        })
    }

    fn string(&self, item: &Item, line: usize, what: &str) -> Result<String> {
        item.as_str().map(str::to_string).ok_or_else(|| {
            self.err(
                self.item_line(item, line),
                format!("`{what}` must be a string"),
            )
        })
    }

    fn int(&self, item: &Item, line: usize, what: &str) -> Result<i64> {
        item.as_integer().ok_or_else(|| {
            self.err(
                self.item_line(item, line),
                format!("`{what}` must be an integer"),
            )
        })
    }

    fn dim(&self, f: &mut Fields, line: usize, step: &str) -> Result<usize> {
        let item = f
            .take("dim")
            .ok_or_else(|| self.err(line, format!("{step}: `dim` is required")))?;
        usize::try_from(self.int(item, line, "dim")?)
            .map_err(|_| self.err(line, format!("{step}: `dim` must not be negative")))
    }

    /// A name pattern whose captures must all be defined, each used once.
    fn pattern(&self, text: &str, line: usize, caps: &Captures) -> Result<Vec<Piece>> {
        let pieces = parse_pieces(text).map_err(|e| self.err(line, e))?;
        let mut seen = Vec::new();
        for name in caps_of(&pieces) {
            if !caps.contains(name) {
                return Err(self.err(
                    line,
                    format!("`{text}`: capture `{{{name}}}` is not defined in [captures]"),
                ));
            }
            if seen.contains(&name) {
                return Err(self.err(
                    line,
                    format!("`{text}`: capture `{{{name}}}` is used twice"),
                ));
            }
            seen.push(name);
        }
        Ok(pieces)
    }

    /// A template whose holes must be captures of `pieces`.
    fn template(&self, text: &str, line: usize, pieces: &[Piece]) -> Result<Template> {
        let t = Template::parse(text).map_err(|e| self.err(line, e))?;
        let bound: Vec<&str> = caps_of(pieces).collect();
        if let Some(n) = t.names().find(|n| !bound.contains(n)) {
            return Err(self.err(
                line,
                format!("`{text}`: `{{{n}}}` is not captured by the rule's pattern"),
            ));
        }
        Ok(t)
    }

    fn rule(
        &self,
        name: &str,
        line: usize,
        t: &dyn TableLike,
        vars: &Vars,
        caps: &Captures,
    ) -> Result<Rule> {
        let mut f = Fields::new(t);
        let field_line = |item: &Item| self.item_line(item, line);
        let from = f.take("from");
        let each = f.take("each");
        let konst = f.take("const");
        let dtype = f.take("dtype");
        let to = f
            .take("to")
            .ok_or_else(|| self.err(line, "`to` is required"))?;
        let steps = f.take("do");
        f.finish(self, line, "")?;

        let source = match (from, konst) {
            (Some(p), None) => {
                if let Some(x) = each.or(dtype) {
                    return Err(self.err(
                        field_line(x),
                        "`each` and `dtype` go with `const`, not `from`",
                    ));
                }
                let text = self.string(p, line, "from")?;
                let pieces = self.pattern(&text, field_line(p), caps)?;
                RuleSource::From(Pattern { text, pieces })
            }
            (None, Some(c)) => {
                let dtype = match dtype {
                    None => Dtype::F32,
                    Some(d) => match Dtype::parse(&self.string(d, line, "dtype")?) {
                        d @ (Dtype::F32 | Dtype::I64) => d,
                        other => {
                            return Err(self.err(
                                field_line(c),
                                format!("dtype `{other}`: use float32 or int64"),
                            ))
                        }
                    },
                };
                let value = self.constant(c, field_line(c), dtype)?;
                let each = match each {
                    None => None,
                    Some(e) => {
                        let text = self.string(e, line, "each")?;
                        let pieces = self.pattern(&text, field_line(e), caps)?;
                        Some(Pattern { text, pieces })
                    }
                };
                RuleSource::Const { each, value }
            }
            (Some(_), Some(c)) => {
                return Err(self.err(field_line(c), "give either `from` or `const`, not both"))
            }
            (None, None) => {
                return Err(self.err(line, "needs `from` (Caffe blobs) or `const` (a literal)"))
            }
        };
        let bound: &[Piece] = match &source {
            RuleSource::From(p) => &p.pieces,
            RuleSource::Const { each, .. } => each.as_ref().map_or(&[], |p| &p.pieces),
        };
        let to = self.template(&self.string(to, line, "to")?, field_line(to), bound)?;
        let steps = match steps {
            None => Vec::new(),
            Some(s) => {
                let arr = s
                    .as_array()
                    .ok_or_else(|| self.err(field_line(s), "`do` must be a list of transforms"))?;
                arr.iter()
                    .map(|v| self.step(v, self.line(v.span()), vars, bound))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        if let RuleSource::Const { value, .. } = &source {
            if value.dtype == Dtype::I64 && !steps.is_empty() {
                return Err(self.err(line, "transforms apply to float32 tensors only"));
            }
        }
        Ok(Rule {
            name: name.to_string(),
            line,
            source,
            to,
            steps,
        })
    }

    /// One `{ name = params }` element of `do`.
    fn step(&self, v: &Value, line: usize, vars: &Vars, bound: &[Piece]) -> Result<RuleStep> {
        let expected = || Step::NAMES.join(", ");
        let t = v
            .as_inline_table()
            .filter(|t| t.len() == 1)
            .ok_or_else(|| {
                self.err(
                    line,
                    format!(
                        "a transform is `{{ NAME = PARAMS }}` with NAME one of {}",
                        expected()
                    ),
                )
            })?;
        let (kind, params) = t.iter().next().expect("one entry");
        let params = Item::Value(params.clone());
        let table = || {
            params
                .as_table_like()
                .ok_or_else(|| self.err(line, format!("`{kind}` takes a table of parameters")))
        };
        let mut blob = None;
        let step = match kind {
            "slice" => self.dim_step(table()?, line, kind, |f, dim| {
                self.slice_params(f, dim, line)
            })?,
            "sub_slices" => self.dim_step(table()?, line, kind, |f, dim| {
                self.sub_slices_params(f, dim, line, vars)
            })?,
            "select" => self.dim_step(table()?, line, kind, |f, dim| {
                self.select_params(f, dim, line, vars)
            })?,
            "move" => self.dim_step(table()?, line, kind, |f, dim| {
                self.move_params(f, dim, line)
            })?,
            "mul" => self.dim_step(table()?, line, kind, |f, dim| {
                self.mul_params(f, dim, line, vars)
            })?,
            "reshape" => Step::Reshape {
                shape: vars.ints(&params, line, "reshape")?,
            },
            "bn_factor" => {
                let text = self.string(&params, line, "bn_factor")?;
                if !text.ends_with(']') {
                    return Err(self.err(
                        line,
                        format!("bn_factor: `{text}` must name one blob, `layer[i]`"),
                    ));
                }
                blob = Some(self.template(&text, line, bound)?);
                Step::BnFactor { blob: text }
            }
            other => {
                return Err(self.err(
                    line,
                    format!(
                        "unknown transform `{other}`; expected one of {}",
                        expected()
                    ),
                ))
            }
        };
        Ok(RuleStep { step, line, blob })
    }

    /// A transform whose parameters are a table with `dim`: `parse` reads the other fields,
    /// and a field nobody read is an error naming the transform.
    fn dim_step(
        &self,
        table: &dyn TableLike,
        line: usize,
        kind: &str,
        parse: impl FnOnce(&mut Fields, usize) -> Result<Step>,
    ) -> Result<Step> {
        let mut f = Fields::new(table);
        let dim = self.dim(&mut f, line, kind)?;
        let step = parse(&mut f, dim)?;
        f.finish(self, line, kind)?;
        Ok(step)
    }

    /// `slice = { dim, start = 0, end }`.
    fn slice_params(&self, f: &mut Fields, dim: usize, line: usize) -> Result<Step> {
        let start = f
            .take("start")
            .map(|i| self.int(i, line, "start"))
            .transpose()?
            .unwrap_or(0);
        let end = f
            .take("end")
            .map(|i| self.int(i, line, "end"))
            .transpose()?;
        Ok(Step::Slice { dim, start, end })
    }

    /// `sub_slices = { dim, take = [a, b], minus = [c, d] }`.
    fn sub_slices_params(
        &self,
        f: &mut Fields,
        dim: usize,
        line: usize,
        vars: &Vars,
    ) -> Result<Step> {
        let kind = "sub_slices";
        let mut pair = |name: &'static str| -> Result<[i64; 2]> {
            let item = f
                .take(name)
                .ok_or_else(|| self.err(line, format!("{kind}: `{name}` is required")))?;
            match vars.ints(item, line, name)?.as_slice() {
                &[a, b] => Ok([a, b]),
                _ => Err(self.err(line, format!("{kind}: `{name}` is a range [start, end]"))),
            }
        };
        let (take, minus) = (pair("take")?, pair("minus")?);
        Ok(Step::SubSlices { dim, take, minus })
    }

    /// `select = { dim, index = [...], group = 1 }`.
    fn select_params(&self, f: &mut Fields, dim: usize, line: usize, vars: &Vars) -> Result<Step> {
        let index = f
            .take("index")
            .ok_or_else(|| self.err(line, "select: `index` is required"))?;
        let index = vars.ints(index, line, "index")?;
        let group = f
            .take("group")
            .map(|g| self.int(g, line, "group"))
            .transpose()?
            .unwrap_or(1);
        let group = usize::try_from(group)
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| self.err(line, "select: `group` must be positive"))?;
        Ok(Step::Select { dim, index, group })
    }

    /// `move = { dim, from, to }`.
    fn move_params(&self, f: &mut Fields, dim: usize, line: usize) -> Result<Step> {
        let mut at = |name: &'static str| {
            let item = f
                .take(name)
                .ok_or_else(|| self.err(line, format!("move: `{name}` is required")))?;
            self.int(item, line, name)
        };
        let (from, to) = (at("from")?, at("to")?);
        Ok(Step::Move { dim, from, to })
    }

    /// `mul = { dim, repeat = [...] }`.
    fn mul_params(&self, f: &mut Fields, dim: usize, line: usize, vars: &Vars) -> Result<Step> {
        let repeat = f
            .take("repeat")
            .ok_or_else(|| self.err(line, "mul: `repeat` is required"))?;
        let repeat = vars
            .numbers(repeat, line, "repeat")?
            .into_iter()
            .map(|x| x as f32)
            .collect();
        Ok(Step::Mul { dim, repeat })
    }

    /// A number or a rectangular nested list of numbers.
    fn constant(&self, item: &Item, line: usize, dtype: Dtype) -> Result<Const> {
        fn walk(
            v: &Value,
            depth: usize,
            shape: &mut Vec<usize>,
            out: &mut Vec<f64>,
        ) -> Result<(), String> {
            match v.as_array() {
                None => {
                    if depth != shape.len() {
                        return Err("nested lists are not rectangular".into());
                    }
                    out.push(number(v).ok_or_else(|| format!("`{v}` is not a number"))?);
                }
                Some(a) => {
                    if depth == shape.len() && out.is_empty() {
                        shape.push(a.len());
                    } else if shape.get(depth) != Some(&a.len()) {
                        return Err("nested lists are not rectangular".into());
                    }
                    for x in a.iter() {
                        walk(x, depth + 1, shape, out)?;
                    }
                }
            }
            Ok(())
        }
        let v = item
            .as_value()
            .ok_or_else(|| self.err(line, "`const` must be a number or a list"))?;
        let (mut shape, mut values) = (Vec::new(), Vec::new());
        walk(v, 0, &mut shape, &mut values).map_err(|e| self.err(line, format!("const: {e}")))?;
        if values.len() != shape.iter().product::<usize>() {
            return Err(self.err(line, "const: inconsistent nesting"));
        }
        if dtype == Dtype::I64 && values.iter().any(|&x| as_int(x).is_none()) {
            return Err(self.err(line, "const: int64 values must be integers"));
        }
        Ok(Const {
            dtype,
            shape,
            values,
        })
    }
}
