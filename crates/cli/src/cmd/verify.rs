//! `butd verify`: candidate records against golden ones (parity report + gate), and
//! `butd verify scores`: downstream accuracy parity. Formats in docs/verify.md.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use butd_verify::scores::{compare_winoground, read_winoground_jsonl};
use butd_verify::{compare_dirs_with, Thresholds};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Directory of golden records (one <image>.safetensors per image)
    #[arg(long, value_name = "DIR")]
    golden: Option<PathBuf>,
    /// Directory of candidate records, paired with the golden ones by file stem
    #[arg(long, value_name = "DIR")]
    candidate: Option<PathBuf>,
    /// Gate thresholds [default: ./parity.toml if present, else the repository's parity.toml
    /// built into the binary]
    #[arg(long, value_name = "TOML")]
    thresholds: Option<PathBuf>,
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
        bail!("`butd verify` needs --golden DIR and --candidate DIR (or the `scores` subcommand)");
    };
    let mut th = match &args.thresholds {
        Some(p) => Thresholds::load(p)?,
        None if Path::new("parity.toml").is_file() => Thresholds::load(Path::new("parity.toml"))?,
        None => Thresholds::default(),
    };
    th.required.all |= args.require_all;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = compare_dirs_with(golden, candidate, &th, jobs)?;

    let name = match &args.report {
        Some(n) => n.clone(),
        None => candidate
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
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
