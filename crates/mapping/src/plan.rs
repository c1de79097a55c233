//! Resolving a mapping against a model's blob inventory and a target manifest, without reading
//! any values: which blob feeds which key through which transforms, with every shape and dtype
//! checked. All strictness problems are collected (not just the first), so `butd diff` can show
//! them all and `butd convert` can refuse with the complete list.

use std::collections::HashMap;

use butd_caffe::{CaffeModel, Format};

use crate::error::{Error, Problem, ProblemKind};
use crate::manifest::{Dtype, Entry, Manifest};
use crate::pattern::Bindings;
use crate::spec::{Mapping, Rule, RuleSource};
use crate::transform::Step;

/// The layer names and blob shapes of a model: all that planning needs.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub layers: Vec<(String, Vec<Vec<usize>>)>,
}

impl Inventory {
    /// The model's layers; V1 (legacy) blob shapes are squeezed by [`caffe_v1_blob_shape`].
    pub fn of(model: &CaffeModel) -> Self {
        let v1 = model.format() == Format::V1;
        let layers = model
            .layers()
            .iter()
            .map(|l| {
                let shapes = l
                    .blobs
                    .iter()
                    .map(|b| {
                        if v1 {
                            caffe_v1_blob_shape(&b.shape)
                        } else {
                            b.shape.clone()
                        }
                    })
                    .collect();
                (l.name.clone(), shapes)
            })
            .collect();
        Self { layers }
    }
}

/// A V1 (`layers`) file stores every blob as legacy `num, channels, height, width`, right-
/// aligned and padded with leading 1s (`[C]` → `[1,1,1,C]`, an InnerProduct `[N,K]` →
/// `[1,1,N,K]`, a 0-dim blob → `[1,1,1,1]`; golden/SYNTHETIC.md §2, docs/semantics.md §2.2
/// "flatten them"). Caffe compares such shapes right-aligned (`Blob::ShapeEquals`); a mapping
/// needs the real rank to address dims, so the leading 1s are dropped. A genuine leading 1
/// (a one-output convolution) is then lost too, which the target shape check reports loudly.
pub fn caffe_v1_blob_shape(shape: &[usize]) -> Vec<usize> {
    if shape.len() != 4 {
        return shape.to_vec();
    }
    let lead = shape.iter().take_while(|&&d| d == 1).count();
    shape[lead..].to_vec()
}

/// A blob of the model: index of its layer in `CaffeModel::layers()` and of the blob in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobId {
    pub layer: usize,
    pub blob: usize,
}

/// Where an output's values start.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Blob(BlobId),
    /// The literal of the rule with this index in `Mapping::rules`.
    Const(usize),
}

/// One transform of one output, with the blob it reads resolved (`bn_factor`).
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub step: Step,
    pub factor: Option<BlobId>,
}

/// One key of the output file.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub key: String,
    /// Index of the producing rule in `Mapping::rules`.
    pub rule: usize,
    pub source: Source,
    /// Shape of the source, as the transforms see it.
    pub source_shape: Vec<usize>,
    pub ops: Vec<Op>,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
}

impl Output {
    /// Whether values change on the way (anything but a plain copy of one blob).
    pub fn is_transformed(&self) -> bool {
        !self.ops.is_empty() || matches!(self.source, Source::Const(_))
    }
}

/// What happened to one Caffe blob.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobUse {
    /// Read by these rules (indices into `Mapping::rules`).
    Used(Vec<usize>),
    /// Listed in `[ignore]` (index into `Mapping::ignores`).
    Ignored(usize),
    Unused,
}

#[derive(Debug, Clone)]
pub struct BlobStatus {
    pub id: BlobId,
    /// `layer[i]`, as patterns see it.
    pub name: String,
    pub shape: Vec<usize>,
    pub status: BlobUse,
}

/// The resolved mapping.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The mapping's origin, for messages.
    pub origin: String,
    /// Produced keys in target order; keys that the target lacks come last.
    pub outputs: Vec<Output>,
    pub blobs: Vec<BlobStatus>,
    /// Target entries that no rule produces.
    pub missing: Vec<Entry>,
    pub problems: Vec<Problem>,
}

/// Counts for a summary table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub blobs: usize,
    pub consumed: usize,
    pub ignored: usize,
    pub unused: usize,
    pub produced: usize,
    pub copied: usize,
    pub transformed: usize,
    pub constants: usize,
    pub target: usize,
}

impl Plan {
    /// Resolves `mapping` against `inventory` and checks the result against `target`.
    pub fn new(mapping: &Mapping, inventory: &Inventory, target: &Manifest) -> Plan {
        Planner::new(mapping, inventory).run(target)
    }

    /// `Err(Error::Strict)` listing every problem, if there is any.
    pub fn check(&self) -> Result<(), Error> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Strict {
                origin: self.origin.clone(),
                problems: self.problems.clone(),
            })
        }
    }

    pub fn summary(&self, target: &Manifest) -> Summary {
        let count = |f: &dyn Fn(&BlobStatus) -> bool| self.blobs.iter().filter(|b| f(b)).count();
        Summary {
            blobs: self.blobs.len(),
            consumed: count(&|b| matches!(b.status, BlobUse::Used(_))),
            ignored: count(&|b| matches!(b.status, BlobUse::Ignored(_))),
            unused: count(&|b| b.status == BlobUse::Unused),
            produced: self.outputs.len(),
            copied: self.outputs.iter().filter(|o| !o.is_transformed()).count(),
            transformed: self
                .outputs
                .iter()
                .filter(|o| !o.ops.is_empty() && matches!(o.source, Source::Blob(_)))
                .count(),
            constants: self
                .outputs
                .iter()
                .filter(|o| matches!(o.source, Source::Const(_)))
                .count(),
            target: target.entries.len(),
        }
    }
}

struct Planner<'a> {
    mapping: &'a Mapping,
    /// Every blob as `layer[i]`, with its id and shape.
    blobs: Vec<(String, BlobId, Vec<usize>)>,
    by_name: HashMap<String, usize>,
    uses: Vec<Vec<usize>>,
    produced: Vec<Output>,
    problems: Vec<Problem>,
}

impl<'a> Planner<'a> {
    fn new(mapping: &'a Mapping, inventory: &Inventory) -> Self {
        let mut blobs = Vec::new();
        for (li, (name, shapes)) in inventory.layers.iter().enumerate() {
            for (bi, shape) in shapes.iter().enumerate() {
                blobs.push((
                    format!("{name}[{bi}]"),
                    BlobId {
                        layer: li,
                        blob: bi,
                    },
                    shape.clone(),
                ));
            }
        }
        let by_name = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| (b.0.clone(), i))
            .collect();
        let uses = vec![Vec::new(); blobs.len()];
        Self {
            mapping,
            blobs,
            by_name,
            uses,
            produced: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, kind: ProblemKind, rule: &Rule, line: usize, message: String) {
        self.problems.push(Problem {
            kind,
            rule: Some(rule.name.clone()),
            line: Some(line),
            message,
        });
    }

    /// The blobs whose `layer[i]` name `pattern` reads, with the captures bound.
    fn matches(&mut self, rule: &Rule, pieces: &[crate::pattern::Piece]) -> Vec<(usize, Bindings)> {
        let mut found = Vec::new();
        for i in 0..self.blobs.len() {
            match self.mapping.captures.match_full(pieces, &self.blobs[i].0) {
                Ok(Some(b)) => found.push((i, b)),
                Ok(None) => {}
                Err(readings) => {
                    let msg = format!(
                        "`{}` reads in several ways: {}",
                        self.blobs[i].0,
                        readings.join(" | ")
                    );
                    self.problem(ProblemKind::Ambiguous, rule, rule.line, msg);
                }
            }
        }
        found
    }

    fn run(mut self, target: &Manifest) -> Plan {
        let mapping = self.mapping;
        for (ri, rule) in mapping.rules.iter().enumerate() {
            match &rule.source {
                RuleSource::From(p) => {
                    let found = self.matches(rule, &p.pieces);
                    if found.is_empty() {
                        let msg = format!("`from = \"{}\"` matches no Caffe blob", p.text);
                        self.problem(ProblemKind::NoMatch, rule, rule.line, msg);
                    }
                    for (bi, binds) in found {
                        let (id, shape) = (self.blobs[bi].1, self.blobs[bi].2.clone());
                        // The rule claims the blob even if it then fails: the failure is reported
                        // once, at the rule, not again as an unused blob.
                        self.uses[bi].push(ri);
                        self.instance(ri, &binds, Source::Blob(id), shape, Dtype::F32);
                    }
                }
                RuleSource::Const { each, value } => {
                    let found = match each {
                        None => vec![(usize::MAX, Bindings::new())],
                        Some(p) => {
                            let found = self.matches(rule, &p.pieces);
                            if found.is_empty() {
                                let msg = format!("`each = \"{}\"` matches no Caffe blob", p.text);
                                self.problem(ProblemKind::NoMatch, rule, rule.line, msg);
                            }
                            found
                        }
                    };
                    for (_, binds) in found {
                        self.instance(
                            ri,
                            &binds,
                            Source::Const(ri),
                            value.shape.clone(),
                            value.dtype.clone(),
                        );
                    }
                }
            }
        }
        let ignored = self.ignores();
        self.finish(target, ignored)
    }

    /// Resolves one output of rule `ri`, or records why it cannot be.
    fn instance(
        &mut self,
        ri: usize,
        binds: &Bindings,
        source: Source,
        shape: Vec<usize>,
        dtype: Dtype,
    ) {
        let rule = &self.mapping.rules[ri];
        let key = rule.to.render(|n| binds.get(n).map(|b| b.value.clone()));
        let source_shape = shape.clone();
        let mut shape = shape;
        let mut ops = Vec::with_capacity(rule.steps.len());
        let mut factors = Vec::new();
        for (k, s) in rule.steps.iter().enumerate() {
            let mut factor = None;
            if let Some(t) = &s.blob {
                let name = t.render(|n| binds.get(n).map(|b| b.raw.clone()));
                let Some(&bi) = self.by_name.get(&name) else {
                    let msg = format!(
                        "`{key}`: step {} ({}) reads Caffe blob `{name}`, which does not exist",
                        k + 1,
                        s.step.name()
                    );
                    self.problem(ProblemKind::MissingBlob, rule, s.line, msg);
                    return;
                };
                let len: usize = self.blobs[bi].2.iter().product();
                if len != 1 {
                    let msg = format!(
                        "`{key}`: {} reads `{name}` of shape {:?}; it needs one value",
                        s.step.name(),
                        self.blobs[bi].2
                    );
                    self.problem(ProblemKind::Shape, rule, s.line, msg);
                    return;
                }
                factor = Some(self.blobs[bi].1);
                factors.push(bi);
            }
            match s.step.out_shape(&shape) {
                Ok(next) => shape = next,
                Err(e) => {
                    let msg = format!(
                        "`{key}`: step {} ({}) on shape {shape:?}: {e}",
                        k + 1,
                        s.step.name()
                    );
                    self.problem(ProblemKind::Shape, rule, s.line, msg);
                    return;
                }
            }
            ops.push(Op {
                step: s.step.clone(),
                factor,
            });
        }
        for bi in factors {
            self.uses[bi].push(ri);
        }
        if let Some(prev) = self.produced.iter().find(|o| o.key == key) {
            let other = &self.mapping.rules[prev.rule];
            let msg = format!(
                "`{key}` is also produced by rule `{}` (line {})",
                other.name, other.line
            );
            self.problem(ProblemKind::Duplicate, rule, rule.line, msg);
            return;
        }
        self.produced.push(Output {
            key,
            rule: ri,
            source,
            source_shape,
            ops,
            shape,
            dtype,
        });
    }

    /// Marks ignored blobs; returns, per blob, the first `[ignore]` entry that covers it.
    fn ignores(&mut self) -> Vec<Option<usize>> {
        let mut ignored = vec![None; self.blobs.len()];
        for (ii, entry) in self.mapping.ignores.iter().enumerate() {
            let mut hits = 0;
            for (bi, (name, ..)) in self.blobs.iter().enumerate() {
                let text = if entry.is_layer() {
                    name.rsplit_once('[').map_or(name.as_str(), |x| x.0)
                } else {
                    name
                };
                if let Ok(Some(_)) = self.mapping.captures.match_full(&entry.pieces, text) {
                    hits += 1;
                    ignored[bi].get_or_insert(ii);
                }
            }
            if hits == 0 {
                self.problems.push(Problem {
                    kind: ProblemKind::StaleIgnore,
                    rule: Some(format!("ignore `{}`", entry.pattern)),
                    line: Some(entry.line),
                    message: "matches no Caffe blob".into(),
                });
            }
        }
        ignored
    }

    fn finish(mut self, target: &Manifest, ignored: Vec<Option<usize>>) -> Plan {
        let mapping = self.mapping;
        let mut blobs = Vec::with_capacity(self.blobs.len());
        for (bi, (name, id, shape)) in self.blobs.iter().enumerate() {
            let status = match (&self.uses[bi][..], ignored[bi]) {
                ([], Some(ii)) => BlobUse::Ignored(ii),
                ([], None) => {
                    self.problems.push(Problem {
                        kind: ProblemKind::Unused,
                        rule: None,
                        line: None,
                        message: format!("Caffe blob `{name}` {shape:?} is neither used by a rule nor listed in [ignore]"),
                    });
                    BlobUse::Unused
                }
                (uses, ii) => {
                    if let Some(ii) = ii {
                        let entry = &mapping.ignores[ii];
                        let rule = &mapping.rules[uses[0]];
                        self.problems.push(Problem {
                            kind: ProblemKind::UsedAndIgnored,
                            rule: Some(format!("ignore `{}`", entry.pattern)),
                            line: Some(entry.line),
                            message: format!(
                                "ignores `{name}`, which rule `{}` (line {}) uses",
                                rule.name, rule.line
                            ),
                        });
                    }
                    let mut uses = uses.to_vec();
                    uses.dedup();
                    BlobUse::Used(uses)
                }
            };
            blobs.push(BlobStatus {
                id: *id,
                name: name.clone(),
                shape: shape.clone(),
                status,
            });
        }

        let mut produced: HashMap<String, Output> = std::mem::take(&mut self.produced)
            .into_iter()
            .map(|o| (o.key.clone(), o))
            .collect();
        let mut outputs = Vec::with_capacity(target.entries.len());
        let mut missing = Vec::new();
        for entry in &target.entries {
            let Some(out) = produced.remove(&entry.name) else {
                self.problems.push(Problem {
                    kind: ProblemKind::NotProduced,
                    rule: None,
                    line: None,
                    message: format!(
                        "target key `{}` {:?} {} is produced by no rule",
                        entry.name, entry.shape, entry.dtype
                    ),
                });
                missing.push(entry.clone());
                continue;
            };
            let rule = &mapping.rules[out.rule];
            if out.shape != entry.shape {
                let msg = format!(
                    "`{}`: produces shape {:?}, the target has {:?}",
                    entry.name, out.shape, entry.shape
                );
                self.problem(ProblemKind::Shape, rule, rule.line, msg);
            }
            if !out.dtype.fits(&entry.dtype) {
                let msg = format!(
                    "`{}`: produces {}, the target has {}",
                    entry.name, out.dtype, entry.dtype
                );
                self.problem(ProblemKind::Dtype, rule, rule.line, msg);
            }
            outputs.push(out);
        }
        let mut extra: Vec<Output> = produced.into_values().collect();
        extra.sort_by(|a, b| (a.rule, &a.key).cmp(&(b.rule, &b.key)));
        for out in extra {
            let rule = &mapping.rules[out.rule];
            let msg = format!("`{}` is not a key of the target {}", out.key, target.origin);
            self.problem(ProblemKind::NotInTarget, rule, rule.line, msg);
            outputs.push(out);
        }
        Plan {
            origin: mapping.origin.clone(),
            outputs,
            blobs,
            missing,
            problems: self.problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_shapes_lose_their_legacy_padding() {
        assert_eq!(caffe_v1_blob_shape(&[1, 1, 1, 64]), vec![64]);
        assert_eq!(caffe_v1_blob_shape(&[1, 1, 1601, 2048]), vec![1601, 2048]);
        assert_eq!(caffe_v1_blob_shape(&[1, 1, 1, 1]), Vec::<usize>::new());
        assert_eq!(caffe_v1_blob_shape(&[64, 3, 7, 7]), vec![64, 3, 7, 7]);
        assert_eq!(caffe_v1_blob_shape(&[16, 1, 3, 3]), vec![16, 1, 3, 3]);
        assert_eq!(caffe_v1_blob_shape(&[5]), vec![5]);
    }
}
