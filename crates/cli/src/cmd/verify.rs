//! `butd verify`: candidate features against golden ones (parity report + gate), each side a
//! directory of records or a downstream feature file (BUTD / LXMERT TSV, UNITER img_db or npz,
//! VQA HDF5); and `butd verify scores`: downstream accuracy parity. Formats in docs/verify.md.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use butd_scores::{compare_winoground, read_winoground_jsonl};
use butd_verify::{verify, Format, Options, Progress, Sample, SourceSpec, Thresholds};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use indicatif::{ProgressBar, ProgressStyle};

use super::ids::IdArgs;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Golden side: a directory of records (<image>.safetensors), a BUTD or LXMERT TSV, a
    /// UNITER img_db (LMDB) or npz directory, or a VQA HDF5 file; detected by content
    #[arg(long, value_name = "PATH")]
    golden: Option<PathBuf>,
    /// Candidate side, any of the same; paired with the golden images by image id
    #[arg(long, value_name = "PATH")]
    candidate: Option<PathBuf>,
    /// Format of --golden, instead of detecting it
    #[arg(long, value_enum)]
    golden_format: Option<Format>,
    /// Format of --candidate, instead of detecting it
    #[arg(long, value_enum)]
    candidate_format: Option<Format>,
    #[command(flatten)]
    ids: IdArgs,
    /// UNITER: prefix of the entry names (generate_npz.py writes e.g. nlvr2_), taken off the ids
    #[arg(long, value_name = "PREFIX", default_value = "")]
    name_prefix: String,
    /// The golden side's object / attribute ids count from 1 (background 0)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=1))]
    golden_label_base: i64,
    /// The candidate side's object / attribute ids count from 1 (background 0)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=1))]
    candidate_label_base: i64,
    /// Check N golden images chosen at random, reproducibly (see --seed)
    #[arg(long, value_name = "N")]
    sample: Option<usize>,
    /// Seed of --sample
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compare only the images both sides have: golden images without a candidate are counted
    /// and skipped (a COCO-sized golden file against a sample of it), not failures
    #[arg(long)]
    common_only: bool,
    /// Passing images reported in full in parity.json / parity.html, in pairing order; the
    /// others keep their status and findings (memory and report size stay bounded)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    detail: usize,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
    /// Gate thresholds [default: ./parity.toml if present, else the repository's parity.toml
    /// built into the binary]
    #[arg(long, value_name = "TOML")]
    thresholds: Option<PathBuf>,
    /// Apply the thresholds file's `[profiles.NAME]`: `fast` gates `butd extract --precision
    /// bf16` / `tf32` records (docs/model.md, "Fast modes")
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Report name: writes REPORTS_DIR/NAME/parity.json and parity.html [default: the
    /// candidate directory's name]
    #[arg(long, value_name = "NAME")]
    report: Option<String>,
    #[arg(long, value_name = "DIR", default_value = "reports")]
    reports_dir: PathBuf,
    /// Every golden tensor missing in the candidate fails the gate, activations included
    #[arg(long)]
    require_all: bool,
    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Accuracy parity: per-example downstream scores on two feature sets (JSONL)
    Scores(ScoresArgs),
}

#[derive(clap::Args)]
struct ScoresArgs {
    /// Scores of the model run on feature set A (JSONL, one example per line)
    #[arg(long, value_name = "JSONL")]
    a: PathBuf,
    /// Scores of the same model run on feature set B
    #[arg(long, value_name = "JSONL")]
    b: PathBuf,
    #[arg(long, value_enum)]
    task: Task,
    /// Fail unless every example has the same outcome under A and B
    #[arg(long)]
    require_equal: bool,
    /// Also write the comparison as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Clone, clap::ValueEnum)]
enum Task {
    /// 2×2 image–caption scores c0_i0, c0_i1, c1_i0, c1_i1; text, image and group scores
    Winoground,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Sub::Scores(s)) = args.command {
        return run_scores(s);
    }
    let (Some(golden), Some(candidate)) = (&args.golden, &args.candidate) else {
        bail!(
            "`butd verify` needs --golden PATH and --candidate PATH (or the `scores` subcommand)"
        );
    };
    let profile = args.profile.as_deref();
    let mut th = match &args.thresholds {
        Some(p) => Thresholds::load_profile(p, profile)?,
        None if Path::new("parity.toml").is_file() => {
            Thresholds::load_profile(Path::new("parity.toml"), profile)?
        }
        None => Thresholds::builtin(profile)?,
    };
    th.required.all |= args.require_all;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ids = args.ids.policy()?;
    let spec = |path: &Path, format: Option<Format>, label_base: i64| SourceSpec {
        path: path.to_path_buf(),
        format,
        name_prefix: args.name_prefix.clone(),
        label_base,
    };
    let bar = progress_bar(args.quiet);
    let started = Instant::now();
    let show = |p: &Progress| show_progress(&bar, p, started);
    let opts = Options {
        threads: jobs,
        ids,
        sample: args.sample.map(|n| Sample { n, seed: args.seed }),
        common_only: args.common_only,
        detail: args.detail,
        progress: Some(&show),
    };
    let report = verify(
        &spec(golden, args.golden_format, args.golden_label_base),
        &spec(candidate, args.candidate_format, args.candidate_label_base),
        &th,
        &opts,
    )?;
    bar.finish_and_clear();

    let name = match &args.report {
        Some(n) => n.clone(),
        None => candidate
            .canonicalize()
            .ok()
            .and_then(|p| {
                let name = if p.is_dir() {
                    p.file_name()
                } else {
                    p.file_stem()
                };
                name.map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "verify".into()),
    };
    let dir = args.reports_dir.join(&name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("parity.json");
    std::fs::write(&json, report.to_json())
        .with_context(|| format!("writing {}", json.display()))?;
    let html = dir.join("parity.html");
    std::fs::write(&html, report.to_html())
        .with_context(|| format!("writing {}", html.display()))?;

    print!("{}", report.to_terminal());
    println!("report: {} and {}", json.display(), html.display());
    Ok(if report.summary.gate_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    }
}

/// Images against a known total, else a streamed TSV's bytes; images/s either way.
fn show_progress(bar: &ProgressBar, p: &Progress, started: Instant) {
    let rate = p.images as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let (template, len, pos) = match (p.total, p.bytes) {
        (Some(total), _) => (
            "{bar:40} {pos}/{len} images, {msg}, eta {eta}",
            total as u64,
            p.images as u64,
        ),
        (None, Some((read, size))) => (
            "{bar:40} {bytes}/{total_bytes} read, {msg}, eta {eta}",
            size,
            read,
        ),
        (None, None) => ("{spinner} {msg}", 0, 0),
    };
    if bar.length() != Some(len) {
        bar.set_style(ProgressStyle::with_template(template).expect("static progress template"));
        bar.set_length(len);
    }
    bar.set_position(pos);
    bar.set_message(format!("{} compared, {rate:.0} images/s", p.images));
}

fn run_scores(s: ScoresArgs) -> anyhow::Result<ExitCode> {
    let Task::Winoground = s.task;
    let a = read_winoground_jsonl(&s.a)?;
    let b = read_winoground_jsonl(&s.b)?;
    let r = compare_winoground(&a, &b, &s.a, &s.b)?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "metric",
        "A",
        "B",
        "B − A",
        "A only",
        "B only",
        "McNemar p (exact)",
    ]);
    for m in &r.metrics {
        t.add_row([
            m.metric.clone(),
            format!("{:.2}%", 100.0 * m.a),
            format!("{:.2}%", 100.0 * m.b),
            format!("{:+.2} pt", 100.0 * m.diff),
            m.a_only.to_string(),
            m.b_only.to_string(),
            format!("{:.4}", m.mcnemar_p),
        ]);
    }
    println!(
        "winoground, {} examples: A = {}, B = {}",
        r.examples,
        s.a.display(),
        s.b.display()
    );
    println!("{t}");
    if let Some(path) = &s.json {
        let text = serde_json::to_string_pretty(&r)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if r.identical() {
        println!("per-example outcomes: identical");
        return Ok(ExitCode::SUCCESS);
    }
    let shown: Vec<&str> = r.differing.iter().take(20).map(String::as_str).collect();
    println!(
        "per-example outcomes differ on {} example(s): {}{}",
        r.differing.len(),
        shown.join(", "),
        if r.differing.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    );
    Ok(if s.require_equal {
        println!("--require-equal: FAILED");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
