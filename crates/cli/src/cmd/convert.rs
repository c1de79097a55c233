//! `butd convert MODEL.caffemodel --map MAP -o OUT.safetensors`: runs a declarative mapping
//! (`mappings/README.md`) over a caffemodel and writes the target layout as safetensors, keys in
//! the target manifest's order, atomically (temporary file + rename). Strict: any blob neither
//! used nor ignored, any target key not produced exactly once, any shape or dtype disagreement
//! prints every problem with its rule and line, and exits with status 1 without writing.
//!
//! `--json` prints one object whose keys are listed in [`JSON_HELP`].
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use butd_caffe::CaffeModel;
use butd_mapping::{
    FloatDtype, Inventory, Manifest, Mapping, Plan, Problem, Summary, WriteOptions, Written,
};
use comfy_table::{presets, CellAlignment, Table};
use serde_json::{json, Value};

/// The `--json` output's keys. They are stable: add keys, never rename or remove them.
pub const JSON_HELP: &str = "Print JSON for machines: one object with keys `model`, `mapping` \
(path or builtin:NAME), `target` (manifest origin), `dtype` (\"f32\" | \"f16\"), `dry_run`; \
`summary` with `blobs`, `consumed`, `ignored`, `unused` (Caffe blobs), `target`, `produced`, \
`copied`, `transformed`, `constants`, `missing` (target keys); `problems`: a list of objects \
with `kind`, `rule` (or null), `line` (or null), `message`; `output`: null, or `path`, `bytes`, \
`tensors`; `seconds` (wall time).";

#[derive(clap::Args)]
pub struct Args {
    /// The .caffemodel to convert
    pub model: PathBuf,
    /// The mapping: a TOML file, or the name of a built-in one (mappings/*.toml)
    #[arg(long, short, value_name = "MAP", default_value = "caffe-to-hf-frcnn")]
    pub map: String,
    /// The .safetensors file to write (replaced atomically)
    #[arg(short, long, value_name = "OUT", required_unless_present = "dry_run")]
    pub output: Option<PathBuf>,
    /// Float dtype of the written tensors (int64 ones stay int64)
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
    /// Check everything, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The target layout (manifest JSON or a safetensors file) instead of the mapping's `target`
    #[arg(long, value_name = "TARGET")]
    pub target: Option<PathBuf>,
    /// Print JSON for machines (see --help for its keys)
    #[arg(long, long_help = JSON_HELP)]
    pub json: bool,
    /// Write NaN and ±inf weights instead of refusing the model
    #[arg(long)]
    pub allow_non_finite: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
}

/// A model, a mapping, its target and the plan joining them: what `convert` and `diff` share.
pub(crate) struct Loaded {
    pub model: CaffeModel,
    pub mapping: Mapping,
    pub target: Manifest,
    pub plan: Plan,
}

pub(crate) fn load(model: &Path, map: &str, target: Option<&Path>) -> anyhow::Result<Loaded> {
    let model = CaffeModel::open(model).context("reading the model")?;
    let mapping = Mapping::load(map).context("reading the mapping")?;
    let target = match target {
        Some(t) => Manifest::load(t),
        None => mapping.target_manifest(),
    }
    .context("reading the target manifest")?;
    let plan = Plan::new(&mapping, &Inventory::of(&model), &target);
    Ok(Loaded {
        model,
        mapping,
        target,
        plan,
    })
}

pub(crate) fn problems_json(problems: &[Problem]) -> Value {
    problems
        .iter()
        .map(|p| json!({ "kind": p.kind.name(), "rule": p.rule, "line": p.line, "message": p.message }))
        .collect()
}

/// The problems as the terminal shows them, one per line.
pub(crate) fn problems_text(problems: &[Problem]) -> String {
    let mut s = format!("{} strictness problem(s):\n", problems.len());
    for p in problems {
        s.push_str(&format!("  - {p}\n"));
    }
    s
}

/// Whether `output` is `model` itself (the same file, also through a link or another path).
fn is_same_file(model: &Path, output: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(model), std::fs::metadata(output)) {
        (Ok(m), Ok(o)) => (m.dev(), m.ino()) == (o.dev(), o.ino()),
        _ => false,
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    if let Some(out) = args
        .output
        .as_deref()
        .filter(|o| is_same_file(&args.model, o))
    {
        anyhow::bail!(
            "-o {} is the input model {} itself; converting would replace the caffemodel",
            out.display(),
            args.model.display()
        );
    }
    let Loaded {
        model,
        mapping,
        target,
        plan,
    } = load(&args.model, &args.map, args.target.as_deref())?;
    let summary = plan.summary(&target);
    let mut written = None;
    if plan.problems.is_empty() {
        if let (Some(out), false) = (&args.output, args.dry_run) {
            let float = match args.dtype {
                DtypeArg::F32 => FloatDtype::F32,
                DtypeArg::F16 => FloatDtype::F16,
            };
            let options = WriteOptions {
                allow_non_finite: args.allow_non_finite,
                ..WriteOptions::stamped(float, &args.model)
            };
            let w = plan
                .write_safetensors(&mapping, &model, out, &options)
                .with_context(|| format!("writing {}", out.display()))?;
            if w.stale_removed > 0 {
                eprintln!(
                    "removed {} temporary file(s) of an interrupted convert to {}",
                    w.stale_removed,
                    out.display()
                );
            }
            written = Some((out.clone(), w));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let report = json!({
            "model": args.model,
            "mapping": mapping.origin,
            "target": target.origin,
            "dtype": if args.dtype == DtypeArg::F16 { "f16" } else { "f32" },
            "dry_run": args.dry_run,
            "summary": summary_json(&summary),
            "problems": problems_json(&plan.problems),
            "output": written.as_ref().map(|(p, w)| json!({ "path": p, "bytes": w.bytes, "tensors": w.tensors })),
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", summary_table(&summary, &mapping, &target));
        match &written {
            Some((path, w)) => println!("{}", written_line(path, w, args.dtype, seconds)),
            None if plan.problems.is_empty() => {
                println!("dry run: all checks passed, nothing written")
            }
            None => {}
        }
    }
    if plan.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        eprint!("{}: {}", mapping.origin, problems_text(&plan.problems));
        eprintln!("nothing written (see `butd diff` for the full correspondence)");
    }
    Ok(ExitCode::from(1))
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "blobs": s.blobs, "consumed": s.consumed, "ignored": s.ignored, "unused": s.unused,
        "target": s.target, "produced": s.produced, "copied": s.copied,
        "transformed": s.transformed, "constants": s.constants, "missing": s.target.saturating_sub(s.produced),
    })
}

fn summary_table(s: &Summary, mapping: &Mapping, target: &Manifest) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(["", "count", "what"]);
    let rows: [(&str, usize, String); 10] = [
        ("Caffe blobs", s.blobs, "in the model".into()),
        (
            "  consumed",
            s.consumed,
            format!(
                "read by the {} rules of {}",
                mapping.rules.len(),
                mapping.origin
            ),
        ),
        (
            "  ignored",
            s.ignored,
            "listed in [ignore], with a reason".into(),
        ),
        ("  unused", s.unused, "neither (an error)".into()),
        ("target keys", s.target, target.origin.clone()),
        ("  produced", s.produced, "by the rules".into()),
        ("    copied", s.copied, "values unchanged".into()),
        (
            "    transformed",
            s.transformed,
            "through `do` transforms".into(),
        ),
        ("    constants", s.constants, "literals (`const`)".into()),
        (
            "  missing",
            s.target.saturating_sub(s.produced),
            "produced by no rule (an error)".into(),
        ),
    ];
    for (what, n, note) in rows {
        t.add_row([what.to_string(), n.to_string(), note]);
    }
    if let Some(c) = t.column_mut(1) {
        c.set_cell_alignment(CellAlignment::Right);
    }
    t.to_string()
}

fn written_line(path: &Path, w: &Written, dtype: DtypeArg, seconds: f64) -> String {
    let dtype = if dtype == DtypeArg::F16 { "f16" } else { "f32" };
    format!(
        "wrote {} ({} tensors, {:.1} MB, floats as {dtype}) in {seconds:.2} s",
        path.display(),
        w.tensors,
        w.bytes as f64 / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(map: &Path, output: Option<PathBuf>, dry_run: bool) -> Args {
        Args {
            model: butd_synth::cached(butd_synth::Variant::V2_FLOAT).unwrap(),
            map: map.display().to_string(),
            output,
            dtype: DtypeArg::F32,
            dry_run,
            target: None,
            json: false,
            allow_non_finite: false,
        }
    }

    fn builtin_toml() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings/caffe-to-hf-frcnn.toml")
    }

    #[test]
    fn converts_with_the_file_mapping_and_refuses_a_broken_one() {
        let dir = tempfile_dir();
        let out = dir.join("hf.safetensors");
        assert_eq!(
            run(args(&builtin_toml(), Some(out.clone()), false)).unwrap(),
            ExitCode::SUCCESS
        );
        let target = Manifest::load(&out).unwrap();
        assert_eq!(target.entries.len(), 640);

        // Drop one ignore entry: two Caffe blobs go unused, so nothing may be written.
        let text = std::fs::read_to_string(builtin_toml()).unwrap();
        let broken = dir.join("broken.toml");
        let text = text
            .lines()
            .filter(|l| !l.starts_with("rel_score ="))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(
            &broken,
            text.replace("target = \"hf-frcnn.manifest.json\"", ""),
        )
        .unwrap();
        let mut a = args(&broken, Some(dir.join("never.safetensors")), false);
        a.target = Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings/hf-frcnn.manifest.json"),
        );
        assert_eq!(run(a).unwrap(), ExitCode::from(1));
        assert!(!dir.join("never.safetensors").exists());
        assert_eq!(
            run(args(&builtin_toml(), None, true)).unwrap(),
            ExitCode::SUCCESS
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A copy of the synthetic model with `value` as the first value of `layer`'s blob `blob`.
    fn model_with(dir: &Path, layer: &str, blob: usize, value: f32) -> PathBuf {
        let source = butd_synth::cached(butd_synth::Variant::V2_FLOAT).unwrap();
        let model = CaffeModel::open(&source).unwrap();
        let b = &model.layer(layer).unwrap().blobs[blob];
        let mut first = [0.0f32];
        model.read_f32_at(b, 0, &mut first);
        let mut bytes = std::fs::read(&source).unwrap();
        // The packed values follow the blob's field tag and a few length bytes.
        let at = b.offset as usize;
        let needle = first[0].to_le_bytes();
        let i = at
            + bytes[at..at + 64]
                .windows(4)
                .position(|w| w == needle)
                .unwrap();
        bytes[i..i + 4].copy_from_slice(&value.to_le_bytes());
        let path = dir.join(format!("{layer}-{blob}.caffemodel"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn non_finite_weights_and_factors_are_refused_unless_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let out = dir.join("nan.safetensors");
        for (layer, blob, value, what) in [
            ("cls_score", 0, f32::NAN, "cls_score"),
            ("bn_conv1", 2, f32::INFINITY, "factor blob bn_conv1[2]"),
        ] {
            let mut a = args(&builtin_toml(), Some(out.clone()), false);
            a.model = model_with(&dir, layer, blob, value);
            let err = run(a).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains(what) && text.contains("--allow-non-finite"),
                "{text}"
            );
            assert!(!out.exists());
            let leftovers = std::fs::read_dir(&dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".tmp")
                })
                .count();
            assert_eq!(leftovers, 0, "the temporary file is removed");
        }
        let mut a = args(&builtin_toml(), Some(out.clone()), false);
        a.model = model_with(&dir, "cls_score", 0, f32::NAN);
        a.allow_non_finite = true;
        assert_eq!(run(a).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn the_output_cannot_be_the_input_model_even_through_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("same");
        std::fs::create_dir_all(&dir).unwrap();
        let model = dir.join("m.caffemodel");
        std::fs::copy(
            butd_synth::cached(butd_synth::Variant::V2_FLOAT).unwrap(),
            &model,
        )
        .unwrap();
        std::os::unix::fs::symlink(&model, dir.join("link.safetensors")).unwrap();
        for out in [
            model.clone(),
            dir.join("link.safetensors"),
            dir.join("../same/m.caffemodel"),
        ] {
            let mut a = args(&builtin_toml(), Some(out.clone()), false);
            a.model = model.clone();
            let err = run(a).unwrap_err().to_string();
            assert!(
                err.contains("is the input model"),
                "{}: {err}",
                out.display()
            );
        }
    }

    #[test]
    fn an_interrupted_converts_temporary_file_is_removed_by_the_next_run() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let out = dir.join("hf.safetensors");
        // What a SIGKILL during the write leaves (tempfile's random part in the middle).
        std::fs::write(dir.join(".hf.safetensors.Ab3xYz.tmp"), b"half").unwrap();
        std::fs::write(dir.join(".other.safetensors.Ab3xYz.tmp"), b"not ours").unwrap();
        assert_eq!(
            run(args(&builtin_toml(), Some(out.clone()), false)).unwrap(),
            ExitCode::SUCCESS
        );
        assert!(!dir.join(".hf.safetensors.Ab3xYz.tmp").exists());
        assert!(dir.join(".other.safetensors.Ab3xYz.tmp").exists());
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("butd-convert-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
