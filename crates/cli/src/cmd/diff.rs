//! `butd diff MODEL [TARGET] --map MAP`: what a mapping does and what it leaves unmapped on
//! each side. One row per rule (Caffe pattern → target template, how many keys, the shapes on
//! both sides, the transforms) reads line by line against docs/ports.md §G; then the ignored Caffe
//! blobs with their reasons, the Caffe blobs no rule reads, the target keys no rule produces,
//! and every other strictness problem. Exits 1 when anything is unmapped or disagrees.
//!
//! TARGET is a manifest JSON or a safetensors file (its header); by default the mapping's own
//! `target`. `--json` prints one object whose keys are listed in [`JSON_HELP`].
use std::path::PathBuf;
use std::process::ExitCode;

use butd_mapping::{BlobUse, Output, Plan, ProblemKind, Rule, Source};
use comfy_table::{presets, Table};
use serde_json::{json, Value};

use super::convert::{load, problems_json, problems_text, Loaded};

/// The `--json` output's keys. They are stable: add keys, never rename or remove them.
pub const JSON_HELP: &str = "Print JSON for machines: one object with keys `model`, `mapping`, \
`target`; `rules`: per rule `name`, `line`, `from` (pattern, or null for a constant), `each`, \
`to`, `keys` (how many it produces), `transforms` (names in order), `shapes` (distinct \
[source shape, target shape] pairs); `ignored`: per ignored Caffe blob `blob`, `shape`, \
`reason`, `line`; `unmapped_caffe`: per blob neither used nor ignored `blob`, `shape`; \
`unproduced_target`: per target key no rule produces `key`, `shape`, `dtype`; `problems` \
(all of them, as in `butd convert --json`); with --all, `keys`: per produced key `key`, \
`shape`, `dtype`, `rule`, `source` (Caffe blob, or null), `transforms`.";

#[derive(clap::Args)]
pub struct Args {
    /// The .caffemodel
    pub model: PathBuf,
    /// The target layout: a manifest JSON or a safetensors file (default: the mapping's target)
    pub target: Option<PathBuf>,
    /// The mapping: a TOML file, or the name of a built-in one (mappings/*.toml)
    #[arg(long, short, value_name = "MAP", default_value = "caffe-to-hf-frcnn")]
    pub map: String,
    /// Also list every produced key with its Caffe source and transforms
    #[arg(long)]
    pub all: bool,
    /// Print JSON for machines (see --help for its keys)
    #[arg(long, long_help = JSON_HELP)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.model, &args.map, args.target.as_deref())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&loaded, &args))?
        );
    } else {
        print!("{}", report_text(&loaded, args.all));
    }
    Ok(if loaded.plan.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `[24, 512, 1, 1]` → "[24,512,1,1]".
fn shape(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
    )
}

/// The distinct (source shape, target shape) pairs of a rule's outputs, in first-seen order.
fn shape_pairs<'a>(outputs: impl Iterator<Item = &'a Output>) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut pairs: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for o in outputs {
        let pair = (o.source_shape.clone(), o.shape.clone());
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    pairs
}

fn outputs_of(plan: &Plan, rule: usize) -> impl Iterator<Item = &Output> {
    plan.outputs.iter().filter(move |o| o.rule == rule)
}

fn source_name(plan: &Plan, o: &Output) -> Option<String> {
    match &o.source {
        Source::Blob(id) => plan
            .blobs
            .iter()
            .find(|b| b.id == *id)
            .map(|b| b.name.clone()),
        Source::Const(_) => None,
    }
}

fn report_text(l: &Loaded, all: bool) -> String {
    let mut out = format!(
        "{} → {} through {}\n",
        l.model
            .path()
            .map_or_else(String::new, |p| p.display().to_string()),
        l.target.origin,
        l.mapping.origin
    );
    out.push_str(&rules_text(l));
    out.push_str(&ignored_text(l));
    out.push_str(&unmapped_text(&l.plan));
    if all {
        out.push_str(&produced_text(l));
    }
    out.push_str(&other_problems_text(&l.plan));
    out
}

/// One row per rule: its Caffe pattern, target template, key count, shapes and transforms.
fn rules_text(l: &Loaded) -> String {
    let (plan, mapping) = (&l.plan, &l.mapping);
    let mut rules = table([
        "rule",
        "line",
        "Caffe blobs",
        "target keys",
        "keys",
        "shapes (Caffe → target)",
        "transforms",
    ]);
    for (ri, r) in mapping.rules.iter().enumerate() {
        let steps = r.step_names();
        rules.add_row([
            r.name.clone(),
            r.line.to_string(),
            rule_from(r),
            r.to_text().to_string(),
            outputs_of(plan, ri).count().to_string(),
            shapes_label(&shape_pairs(outputs_of(plan, ri))),
            transforms_label(&steps, r.is_const()),
        ]);
    }
    format!("Rules ({}):\n{rules}\n", mapping.rules.len())
}

/// A rule's shape pairs in one cell: listed up to two, else counted.
fn shapes_label(pairs: &[(Vec<usize>, Vec<usize>)]) -> String {
    if pairs.len() <= 2 {
        let each = pairs.iter().map(|(a, b)| {
            if a == b {
                shape(a)
            } else {
                format!("{} → {}", shape(a), shape(b))
            }
        });
        each.collect::<Vec<_>>().join("; ")
    } else if pairs.iter().all(|(a, b)| a == b) {
        format!("{} shapes, each kept", pairs.len())
    } else {
        format!("{} shape pairs (--json lists them)", pairs.len())
    }
}

/// The Caffe blobs the mapping ignores, with its reasons.
fn ignored_text(l: &Loaded) -> String {
    let ignored: Vec<_> = l
        .plan
        .blobs
        .iter()
        .filter_map(|b| match b.status {
            BlobUse::Ignored(i) => Some((b, &l.mapping.ignores[i])),
            _ => None,
        })
        .collect();
    let mut t = table(["Caffe blob", "shape", "reason", "line"]);
    for (b, i) in &ignored {
        t.add_row([
            b.name.clone(),
            shape(&b.shape),
            i.reason.clone(),
            i.line.to_string(),
        ]);
    }
    section("Caffe blobs ignored", ignored.len(), &t)
}

/// What is left over on each side: Caffe blobs no rule reads, target keys no rule produces.
fn unmapped_text(plan: &Plan) -> String {
    let unused: Vec<_> = plan
        .blobs
        .iter()
        .filter(|b| b.status == BlobUse::Unused)
        .collect();
    let mut t = table(["Caffe blob", "shape"]);
    for b in &unused {
        t.add_row([b.name.clone(), shape(&b.shape)]);
    }
    let mut out = section("Caffe blobs not mapped", unused.len(), &t);
    let mut t = table(["target key", "shape", "dtype"]);
    for e in &plan.missing {
        t.add_row([e.name.clone(), shape(&e.shape), e.dtype.to_string()]);
    }
    out.push_str(&section("Target keys not produced", plan.missing.len(), &t));
    out
}

/// `--all`: every produced key with its rule, Caffe source and transforms.
fn produced_text(l: &Loaded) -> String {
    let plan = &l.plan;
    let mut t = table([
        "target key",
        "shape",
        "dtype",
        "rule",
        "Caffe source",
        "transforms",
    ]);
    for o in &plan.outputs {
        let steps: Vec<_> = o.ops.iter().map(|op| op.step.name()).collect();
        t.add_row([
            o.key.clone(),
            shape(&o.shape),
            o.dtype.to_string(),
            l.mapping.rules[o.rule].name.clone(),
            source_name(plan, o).unwrap_or_else(|| "const".into()),
            transforms_label(&steps, matches!(o.source, Source::Const(_))),
        ]);
    }
    section("Produced keys", plan.outputs.len(), &t)
}

/// The verdict line, or the problems the sections above do not already list.
fn other_problems_text(plan: &Plan) -> String {
    // Unused blobs and missing keys are listed above; the rest only here.
    let listed = [ProblemKind::Unused, ProblemKind::NotProduced];
    let others: Vec<_> = plan
        .problems
        .iter()
        .filter(|p| !listed.contains(&p.kind))
        .cloned()
        .collect();
    if plan.problems.is_empty() {
        "No differences: every Caffe blob is used or ignored, every target key produced once.\n"
            .into()
    } else if !others.is_empty() {
        format!("Other {}", problems_text(&others))
    } else {
        String::new()
    }
}

/// "copy" for values passed through, "literal" for a constant, else the transforms in order.
fn transforms_label(steps: &[&str], is_const: bool) -> String {
    match (steps.is_empty(), is_const) {
        (true, true) => "literal".into(),
        (true, false) => "copy".into(),
        (false, _) => steps.join(", "),
    }
}

fn rule_from(r: &Rule) -> String {
    match (r.from_text(), r.each_text()) {
        (Some(f), _) => f.to_string(),
        (None, Some(each)) => format!("const, each {each}"),
        (None, None) => "const".into(),
    }
}

fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(header);
    t
}

fn section(title: &str, n: usize, t: &Table) -> String {
    if n == 0 {
        format!("{title}: none\n")
    } else {
        format!("{title} ({n}):\n{t}\n")
    }
}

fn report_json(l: &Loaded, args: &Args) -> Value {
    let (plan, mapping) = (&l.plan, &l.mapping);
    let rules: Vec<Value> = mapping
        .rules
        .iter()
        .enumerate()
        .map(|(ri, r)| {
            json!({
                "name": r.name, "line": r.line, "from": r.from_text(), "each": r.each_text(), "to": r.to_text(),
                "keys": outputs_of(plan, ri).count(), "transforms": r.step_names(),
                "shapes": shape_pairs(outputs_of(plan, ri)),
            })
        })
        .collect();
    let ignored: Vec<Value> = plan
        .blobs
        .iter()
        .filter_map(|b| match b.status {
            BlobUse::Ignored(i) => {
                let e = &mapping.ignores[i];
                Some(
                    json!({ "blob": b.name, "shape": b.shape, "reason": e.reason, "line": e.line }),
                )
            }
            _ => None,
        })
        .collect();
    let unmapped: Vec<Value> = plan
        .blobs
        .iter()
        .filter(|b| b.status == BlobUse::Unused)
        .map(|b| json!({ "blob": b.name, "shape": b.shape }))
        .collect();
    let unproduced: Vec<Value> = plan
        .missing
        .iter()
        .map(|e| json!({ "key": e.name, "shape": e.shape, "dtype": e.dtype.to_string() }))
        .collect();
    let mut v = json!({
        "model": args.model, "mapping": mapping.origin, "target": l.target.origin,
        "rules": rules, "ignored": ignored, "unmapped_caffe": unmapped, "unproduced_target": unproduced,
        "problems": problems_json(&plan.problems),
    });
    if args.all {
        v["keys"] = plan
            .outputs
            .iter()
            .map(|o| {
                let steps: Vec<_> = o.ops.iter().map(|op| op.step.name()).collect();
                json!({
                    "key": o.key, "shape": o.shape, "dtype": o.dtype.to_string(),
                    "rule": mapping.rules[o.rule].name, "source": source_name(plan, o), "transforms": steps,
                })
            })
            .collect();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_mapping_leaves_nothing_unmapped_and_reads_like_ports_g() {
        let model = butd_synth::cached(butd_synth::Variant::V2_FLOAT).unwrap();
        let loaded = load(&model, "caffe-to-hf-frcnn", None).unwrap();
        let text = report_text(&loaded, true);
        for line in [
            "Caffe blobs not mapped: none",
            "Target keys not produced: none",
            "No differences",
            "Caffe blobs ignored (19)",
            "[24,512,1,1] → [12,512,1,1]; [24] → [12]",
            "[6404,2048] → [6400,2048]; [6404] → [6400]",
            "sub_slices, select",
            "Produced keys (640)",
        ] {
            assert!(text.contains(line), "diff lacks {line:?}");
        }
        let args = Args {
            model,
            target: None,
            map: "caffe-to-hf-frcnn".into(),
            all: false,
            json: true,
        };
        let json = report_json(&loaded, &args);
        assert_eq!(
            json["rules"].as_array().unwrap().len(),
            loaded.mapping.rules.len()
        );
        assert_eq!(json["ignored"].as_array().unwrap().len(), 19);
        assert!(json["unmapped_caffe"].as_array().unwrap().is_empty());
        assert!(json.get("keys").is_none());
    }

    #[test]
    fn a_target_with_other_keys_shows_both_sides() {
        let model = butd_synth::cached(butd_synth::Variant::V2_FLOAT).unwrap();
        let dir = std::env::temp_dir().join(format!("butd-diff-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../mappings/hf-frcnn.manifest.json");
        let text = std::fs::read_to_string(manifest)
            .unwrap()
            .replace("fc_attr.bias", "fc_attr.offset");
        let target = dir.join("other.json");
        std::fs::write(&target, text).unwrap();
        let loaded = load(&model, "caffe-to-hf-frcnn", Some(&target)).unwrap();
        let text = report_text(&loaded, false);
        assert!(
            text.contains("Target keys not produced (1)") && text.contains("fc_attr.offset"),
            "{text}"
        );
        assert!(text.contains("is not a key of the target"), "{text}");
        let args = Args {
            model,
            target: Some(target),
            map: "caffe-to-hf-frcnn".into(),
            all: false,
            json: true,
        };
        assert_eq!(run(args).unwrap(), ExitCode::from(1));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
