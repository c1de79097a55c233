//! `butd-extract`, run as `butd extract`: the reference network on images, one record per
//! image. A binary of its own because it is the only part of butd that links libtorch, whose
//! loading costs every process 0.3–0.4 s and 170 MB before `main` runs. A library too
//! ([`main_with`]), so that the Python package runs it in-process.
//!
//! ```no_run
//! let code = butd_extract::main_with(["butd extract", "--weights", "w.safetensors", "-o", "out", "a.jpg"]);
//! # let _ = code;
//! ```
//!
//! Built for long runs (docs/extract.md): inputs from folders, lists or COCO JSON; `--shard
//! i/n`; resume by rerunning the same command (a record is complete or absent; images with a
//! record are skipped); `failures.tsv` written line by line while the run goes on.
//!
//! Exit status: 0 when every image of the run has features, 1 when some image failed
//! (undecodable, no proposals, …: each is reported on stderr and in `OUT/failures.tsv`, and the
//! run goes on), 2 on usage, input-list or weights errors (nothing was extracted).

mod downstream;
mod inputs;
mod output;
mod provenance;
mod weights_check;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use butd_model::detector::{
    configure_runtime, device_name, parse_device, DetectError, DetectOptions, Detection, Detector,
};
use butd_model::precision::Precision;
use butd_model::record::{write_no_proposals_record, write_record, RecordInfo};
use butd_model::select::SelectConfig;
use butd_model::tch::Device;
use butd_model::throughput::{
    detect_batch_with_fallback, detect_with_oom_retry, prefetch, Prepared,
};
use butd_record::{meta, record_state, RecordState};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use inputs::{IdPolicy, Input, Shard};
use output::{read_failures, Failures, OutDir, FAILURES_FILE};
use provenance::{Difference, Provenance};

#[derive(clap::Parser)]
#[command(
    name = "butd extract",
    bin_name = "butd extract",
    version,
    about = "Run the reference BUTD network on images (see docs/extract.md)"
)]
struct Args {
    /// Converted weights (`butd convert … --map mappings/caffe-to-hf-frcnn.toml`)
    #[arg(long)]
    weights: PathBuf,
    /// Images (JPEG or PNG, whatever their name) and folders (walked recursively for
    /// *.jpg, *.jpeg, *.png)
    #[arg(required_unless_present_any = ["list", "coco"])]
    images: Vec<PathBuf>,
    /// A file with one image path per line (relative paths under --image-root); `-` reads stdin
    #[arg(long)]
    list: Option<PathBuf>,
    /// COCO-style JSON: the images of its "images" array (`file_name` under --image-root,
    /// `id` as the image id)
    #[arg(long)]
    coco: Option<PathBuf>,
    /// Folder that relative paths of --list and --coco start from (default: the current folder)
    #[arg(long)]
    image_root: Option<PathBuf>,
    /// How an image's id, and so its record name `<id>.safetensors`, is chosen (default: coco
    /// with --coco, else stem)
    #[arg(long, value_enum)]
    id_policy: Option<IdPolicy>,
    /// Output folder: `<id>.safetensors` per image, and `failures.tsv`. With --format: the
    /// file (or folder) `butd export` writes, the records kept in OUT.records/ for resuming
    #[arg(long, short)]
    out: PathBuf,
    /// Extract straight into this downstream format (`butd export --format` names), written
    /// to --out once every image has its record; rerun the same command to resume
    #[arg(long, value_enum, conflicts_with = "shard")]
    format: Option<downstream::ExportFormat>,
    /// A consumer's selection settings: `butd` (generate_tsv: 10–100 boxes with max_conf ≥
    /// 0.2, the default) or `lxmert` (exactly 36 boxes)
    #[arg(long, value_enum, conflicts_with_all = ["fixed", "min_boxes", "max_boxes", "conf_thresh"])]
    preset: Option<downstream::Preset>,
    /// Run only shard i of n (0 ≤ i < n): the images whose id hashes to i
    #[arg(long, value_name = "i/n")]
    shard: Option<Shard>,
    /// Do not retry the images that `failures.tsv` lists from an earlier run
    #[arg(long)]
    skip_failed: bool,
    /// Also write the intermediate blobs under their golden names (data, res4b22, rpn_*,
    /// pool5_flat, cls_prob, predicted_cls, attr_prob, image_bgr)
    #[arg(long)]
    dump_activations: bool,
    /// Also write `soft_labels`: the kept boxes' 1601 class scores (cls_prob rows) as float16,
    /// what UNITER's export needs (≈ 115 KB per 36-box image), without the other activations
    #[arg(long)]
    soft_labels: bool,
    /// Extract again, and replace, the records in --out that other settings or weights made
    /// (default: refuse to start, naming the setting)
    #[arg(long, conflicts_with = "allow_mixed")]
    overwrite: bool,
    /// Keep the records in --out that other settings or weights made, and add this run's
    /// beside them (each record states its own settings)
    #[arg(long)]
    allow_mixed: bool,
    /// `cpu`, `cuda` or `cuda:N`
    #[arg(long, default_value = "cpu")]
    device: String,
    /// `exact` (float32, the golden-gated default), `bf16` (res5 in bfloat16: ≈ 2× exact on a
    /// 2-core CPU with AMX, gate `butd verify --profile fast`) or `tf32` (CUDA only). Records
    /// state it as `precision` = fp32 / bf16 / tf32 (docs/model.md, "Fast modes")
    #[arg(long, default_value = "exact", value_parser = parse_precision)]
    precision: Precision,
    /// generate_tsv's MIN_BOXES
    #[arg(long, default_value_t = 10)]
    min_boxes: usize,
    /// generate_tsv's MAX_BOXES
    #[arg(long, default_value_t = 100)]
    max_boxes: usize,
    /// generate_tsv's conf_thresh on max_conf
    #[arg(long, default_value_t = 0.2)]
    conf_thresh: f64,
    /// Exactly N boxes (MIN_BOXES = MAX_BOXES = N; LXMERT uses 36)
    #[arg(long, conflicts_with_all = ["min_boxes", "max_boxes"])]
    fixed: Option<usize>,
    /// Rois per res5 batch (memory/speed only; default 32 on the CPU, 300 on CUDA)
    #[arg(long)]
    roi_chunk: Option<usize>,
    /// Images per network call: their res5 and heads run as one batch of rois (for GPUs; on
    /// the CPU it neither helps nor changes a bit). A failure in the shared part runs the
    /// images one by one
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    batch: u16,
    /// libtorch intra-op threads (default: all cores; give each of several processes on one
    /// machine its share)
    #[arg(long)]
    threads: Option<usize>,
    /// When stderr is not a terminal (a log file): at most one progress line per this many
    /// seconds, printed as an image completes (and after the last)
    #[arg(long, default_value_t = 60)]
    log_every: u64,
}

/// `butd extract ARGS…`: parses `args` (the program name first) and runs. The `butd-extract`
/// binary and the Python package's `butd extract` (crates/python, in-process: that module links
/// libtorch already) both call this.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    // Not `parse_from`, which exits the process (the Python interpreter's, in the package).
    let mut args = match <Args as clap::Parser>::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // With --format, --out is the downstream file and the records go beside it.
    let export = args.format.map(|format| (format, args.out.clone()));
    if let Some((_, file)) = &export {
        args.out = downstream::records_dir(file);
    }
    match run(args) {
        Ok(code) => match export {
            Some((format, file)) => {
                downstream::export(format, &downstream::records_dir(&file), &file, code)
            }
            None => code,
        },
        Err(e) => {
            eprintln!("error: {}", butd_exe::error_text(&e));
            ExitCode::from(2)
        }
    }
}

fn select_config(args: &Args) -> anyhow::Result<SelectConfig> {
    if let Some(preset) = args.preset {
        return Ok(preset.select());
    }
    selection(args.fixed, args.min_boxes, args.max_boxes, args.conf_thresh)
}

/// generate_tsv's selection from the command line's options: `fixed` boxes (LXMERT's 36), or
/// between `min_boxes` and `max_boxes` above `conf_thresh`. Shared with the Python package.
pub fn selection(
    fixed: Option<usize>,
    min_boxes: usize,
    max_boxes: usize,
    conf_thresh: f64,
) -> anyhow::Result<SelectConfig> {
    if let Some(n) = fixed.filter(|n| !(1..=300).contains(n)) {
        bail!("--fixed {n}: expected 1 to 300 (the proposal layer keeps at most 300 rois)");
    }
    let select = match fixed {
        Some(n) => SelectConfig {
            conf_thresh,
            ..SelectConfig::fixed(n)
        },
        None => SelectConfig {
            conf_thresh,
            min_boxes,
            max_boxes,
            ..SelectConfig::default()
        },
    };
    if select.min_boxes > select.max_boxes {
        bail!(
            "--min-boxes {} is larger than --max-boxes {}",
            select.min_boxes,
            select.max_boxes
        );
    }
    Ok(select)
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse()
}

/// What the records of a run say about their making (the image's name and sha256 are added
/// per image).
fn info_of(device: Device, provenance: &Provenance) -> RecordInfo {
    RecordInfo {
        image_name: String::new(),
        device: device_name(device),
        weights_sha256: Some(provenance.weights_sha256().to_string()),
        extra: provenance.entries().collect(),
    }
}

/// [`info_of`] a run with these settings: the Python package's records carry the command's
/// provenance.
pub fn record_info(
    device: Device,
    weights: &Path,
    select: &SelectConfig,
    precision: Precision,
) -> anyhow::Result<RecordInfo> {
    let provenance = Provenance::of_run(weights, select, precision.record_value())?;
    Ok(info_of(device, &provenance))
}

/// Images decoded and preprocessed ahead of the device: one waiting while one is made keeps
/// the device fed when decoding is the slower side, in ≈ 2 images' memory.
const PREFETCH_DEPTH: usize = 1;

/// The images this run works on, after the shard and what the output folder already has.
struct Plan {
    todo: Vec<Input>,
    done: usize,
    skipped_failed: usize,
    damaged: Vec<(PathBuf, String)>,
    /// Records made with other settings or weights (all of them with `--overwrite` or
    /// `--allow-mixed`, else the first), and how they differ.
    mixed: Vec<(PathBuf, Difference)>,
}

/// What to do with a record that other settings or weights made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mixed {
    Refuse,
    Overwrite,
    Keep,
}

fn plan(
    inputs: Vec<Input>,
    out: &OutDir,
    failed: &HashSet<&str>,
    skip_failed: bool,
    run: (&Provenance, Mixed),
) -> Plan {
    let mut plan = Plan {
        todo: Vec::new(),
        done: 0,
        skipped_failed: 0,
        damaged: Vec::new(),
        mixed: Vec::new(),
    };
    let (provenance, mixed) = run;
    for input in inputs {
        let path = out.record_path(&input.id);
        match record_state(&path) {
            RecordState::Complete { meta, .. } => match provenance.difference(&meta) {
                None => plan.done += 1,
                Some(d) => {
                    if mixed == Mixed::Refuse {
                        plan.mixed.push((path, d));
                        return plan;
                    }
                    plan.mixed.push((path, d));
                    if mixed == Mixed::Overwrite {
                        plan.todo.push(input);
                    } else {
                        plan.done += 1;
                    }
                }
            },
            state => {
                if let RecordState::Damaged(why) = state {
                    plan.damaged.push((path, why));
                }
                if skip_failed && failed.contains(input.id.as_str()) {
                    plan.skipped_failed += 1;
                } else {
                    plan.todo.push(input);
                }
            }
        }
    }
    plan
}

/// What happened to one image.
enum Outcome {
    Record,
    /// A record without detections was written, and the image is a failure too.
    NoProposals(String),
}

/// Reads the image file once: its SHA-256 (the record's `image_sha256`), the decoded image
/// and the network input (§1), all on the prefetch thread.
fn prepare_with_sha256(path: &Path) -> Result<(Prepared, String), butd_preprocess::Error> {
    let options = butd_preprocess::DecodeOptions::default();
    let bytes = butd_preprocess::read_image_file(path, options.max_file_bytes)?;
    let image = butd_preprocess::decode_bytes_with(&bytes, &path.display().to_string(), &options)?;
    let input = butd_preprocess::net_input(&image)?;
    Ok((Prepared { image, input }, provenance::sha256_bytes(&bytes)))
}

/// What every image of a run is extracted with, and where its record goes.
struct Work<'a> {
    detector: &'a Detector,
    opts: &'a DetectOptions,
    out: &'a OutDir,
    info: &'a RecordInfo,
}

/// One prepared image: decoded, its network input made, its file's SHA-256.
type Ready = (Prepared, String);

fn extract_one(work: &Work, input: &Input, ready: Ready) -> anyhow::Result<Outcome> {
    let (prepared, _) = &ready;
    let detection =
        detect_with_oom_retry(work.detector, &prepared.image, &prepared.input, work.opts);
    write_outcome(work, input, ready, detection)
}

/// The records of `batch` (several images through [`detect_batch_with_fallback`]), in order.
fn extract_batch(work: &Work, batch: Vec<(Input, Ready)>) -> Vec<(Input, anyhow::Result<Outcome>)> {
    let items: Vec<_> = batch
        .iter()
        .map(|(_, (p, _))| (&p.image, &p.input))
        .collect();
    let detections = detect_batch_with_fallback(work.detector, &items, work.opts);
    drop(items);
    batch
        .into_iter()
        .zip(detections)
        .map(|((input, ready), detection)| {
            let outcome = write_outcome(work, &input, ready, detection);
            (input, outcome)
        })
        .collect()
}

/// Writes what `detection` gave for `input`: its record, or its no-proposals record.
fn write_outcome(
    work: &Work,
    input: &Input,
    (prepared, image_sha256): Ready,
    detection: Result<Detection, DetectError>,
) -> anyhow::Result<Outcome> {
    let Work {
        detector,
        opts,
        out,
        info,
    } = *work;
    let mut info = RecordInfo {
        image_name: input
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        ..info.clone()
    };
    info.extra.push((meta::IMAGE_SHA256.into(), image_sha256));
    let path = out.record_path(&input.id);
    match detection {
        Ok(detection) => {
            write_record(&path, &detection, &info)?;
            Ok(Outcome::Record)
        }
        Err(e @ DetectError::NoProposals { input: shape, .. }) => {
            let reason = e.to_string();
            let early = match opts.dump_activations {
                true => Some(detector.early_activations(&prepared.image)?),
                false => None,
            };
            write_no_proposals_record(&path, &shape, early.as_ref(), &reason, &info)?;
            Ok(Outcome::NoProposals(reason))
        }
        Err(e) => Err(e.into()),
    }
}

/// The progress bar on a terminal; elsewhere (a batch job's log) a line every `every`.
struct Progress {
    bar: ProgressBar,
    log_every: Option<Duration>,
    last_log: Instant,
    start: Instant,
}

impl Progress {
    fn new(len: u64, log_every: Duration) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if terminal {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        )
        .with_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} images [{elapsed_precise} < ETA {eta_precise}, {rate}] {msg}",
            )
            .expect("the template is valid")
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate_text(s.pos(), s.elapsed().as_secs_f64()));
                },
            ),
        );
        // Redrawn every second, so the clock moves during an image that takes minutes.
        bar.enable_steady_tick(Duration::from_secs(1));
        Progress {
            bar,
            log_every: (!terminal).then_some(log_every),
            last_log: Instant::now(),
            start: Instant::now(),
        }
    }

    fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn inc(&mut self) {
        self.bar.inc(1);
        let Some(every) = self.log_every else { return };
        let pos = self.bar.position();
        let len = self.bar.length().unwrap_or(pos);
        if self.last_log.elapsed() >= every || pos == len {
            self.last_log = Instant::now();
            let secs = self.start.elapsed().as_secs_f64();
            let eta = (len - pos) as f64 * secs / (pos as f64).max(1e-9);
            eprintln!(
                "{pos}/{len} images, {}, elapsed {}, ETA {}",
                rate_text(pos, secs),
                hms(secs),
                hms(eta)
            );
        }
    }
}

/// `2.50 img/s`, or below one image a second `9.2 s/image` (a CPU run's "0.11 img/s" says
/// little); `…` before the first image.
fn rate_text(images: u64, secs: f64) -> String {
    if images == 0 {
        return "… s/image".into();
    }
    let rate = images as f64 / secs.max(1e-9);
    if rate >= 1.0 {
        format!("{rate:.2} img/s")
    } else {
        format!("{:.1} s/image", secs / images as f64)
    }
}

/// `1 image`, `2 images`.
fn images(n: usize) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}

fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = parse_device(&args.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    // Before the first libtorch call (it sets NVIDIA_TF32_OVERRIDE), and before any work.
    let precision = args.precision;
    precision
        .configure(device)
        .map_err(|e| anyhow::anyhow!("--precision: {e}"))?;
    let select = select_config(&args)?;
    weights_check::check(&args.weights)?;
    let (inputs, total) = shard_inputs(&args)?;
    let ids: Vec<String> = inputs.iter().map(|i| i.id.clone()).collect();

    let out = OutDir::open(&args.out)?;
    let removed = out.remove_temp_files()?;
    if removed > 0 {
        eprintln!("removed {removed} unfinished record file(s) of an interrupted run");
    }
    let failures_path = out.path().join(FAILURES_FILE);
    let earlier = read_failures(&failures_path)?;
    let failed: HashSet<&str> = earlier.iter().map(|f| f.id.as_str()).collect();
    let provenance = Provenance::of_run(&args.weights, &select, precision.record_value())?;
    let mixed = Mixed::of(&args);
    let plan = plan(
        inputs,
        &out,
        &failed,
        args.skip_failed,
        (&provenance, mixed),
    );
    report_plan(&plan, mixed)?;
    let retry: HashSet<&str> = plan.todo.iter().map(|i| i.id.as_str()).collect();
    let mut failures = Failures::open(out.path(), &earlier, &retry)?;
    eprintln!(
        "{}{}: {} with a record already, {} listed as failed and skipped, {} to extract",
        images(ids.len()),
        args.shard.map_or(String::new(), |s| format!(
            " in shard {}/{} (of {total})",
            s.index, s.count
        )),
        plan.done,
        plan.skipped_failed,
        plan.todo.len()
    );
    if plan.todo.is_empty() {
        return Ok(exit_code(&failures_path, &ids));
    }

    let (detector, opts) = load_detector(&args, device, precision, select)?;
    let info = info_of(device, &provenance);
    let log_every = Duration::from_secs(args.log_every);
    let work = Work {
        detector: &detector,
        opts: &opts,
        out: &out,
        info: &info,
    };
    let (failed_now, elapsed) = extract_all(
        &work,
        &plan.todo,
        args.batch as usize,
        &mut failures,
        log_every,
    )?;
    eprintln!(
        "{} of {} extracted into {} in {}{}",
        plan.todo.len() - failed_now,
        images(plan.todo.len()),
        out.path().display(),
        hms(elapsed),
        if failed_now == 0 {
            String::new()
        } else {
            format!("; {failed_now} failure(s) in {}", failures.path().display())
        }
    );
    Ok(exit_code(&failures_path, &ids))
}

/// The images of the command line (paths, --list, --coco) that this run's shard owns, and how
/// many there were before the shard was taken.
fn shard_inputs(args: &Args) -> anyhow::Result<(Vec<Input>, usize)> {
    let mut inputs = inputs::collect(&inputs::Spec {
        paths: &args.images,
        list: args.list.as_deref(),
        coco: args.coco.as_deref(),
        image_root: args.image_root.as_deref(),
        id_policy: args.id_policy,
    })?;
    let total = inputs.len();
    if let Some(shard) = args.shard {
        inputs.retain(|i| shard.owns(&i.id));
    }
    Ok((inputs, total))
}

impl Mixed {
    fn of(args: &Args) -> Mixed {
        match (args.overwrite, args.allow_mixed) {
            (true, _) => Mixed::Overwrite,
            (_, true) => Mixed::Keep,
            _ => Mixed::Refuse,
        }
    }
}

/// Says what the plan found in the output folder: records of other settings (an error unless
/// --overwrite or --allow-mixed) and damaged records (extracted again).
fn report_plan(plan: &Plan, mixed: Mixed) -> anyhow::Result<()> {
    if let Some((path, difference)) = plan.mixed.first() {
        let what = match mixed {
            Mixed::Refuse => bail!(
                "{} was made with other settings or weights ({difference}); nothing was \
                 extracted. Use another --out, the settings of that run, --overwrite (extract \
                 such records again) or --allow-mixed (keep them beside this run's)",
                path.display()
            ),
            Mixed::Overwrite => "extracting them again (--overwrite)",
            Mixed::Keep => "kept (--allow-mixed)",
        };
        eprintln!(
            "{} record(s) were made with other settings or weights (first: {}: {difference}); {what}",
            plan.mixed.len(),
            path.display()
        );
    }
    for (path, why) in &plan.damaged {
        eprintln!(
            "{}: damaged record ({why}); extracting it again",
            path.display()
        );
    }
    Ok(())
}

/// The runtime configured for `device` and the network loaded, with the run's options.
fn load_detector(
    args: &Args,
    device: Device,
    precision: Precision,
    select: SelectConfig,
) -> anyhow::Result<(Detector, DetectOptions)> {
    // Before the first libtorch call: TF32 as chosen, huge pages on, CUDA checked.
    configure_runtime(device).with_context(|| format!("--device {}", args.device))?;
    let opts = DetectOptions {
        select,
        dump_activations: args.dump_activations,
        roi_chunk: args.roi_chunk,
        soft_labels: args.soft_labels,
        ..DetectOptions::default()
    };
    let detector = Detector::load_with_precision(&args.weights, device, precision)?;
    if let Some(n) = args.threads {
        // After the load, which sets the default (all cores).
        butd_model::tch::set_num_threads(n.max(1) as i32);
    }
    Ok((detector, opts))
}

/// Extracts `todo` in order, `batch` images per network call, each failure said on stderr and
/// added to `failures.tsv` as it happens; returns how many failed and the seconds taken.
fn extract_all(
    work: &Work,
    todo: &[Input],
    batch: usize,
    failures: &mut Failures,
    log_every: Duration,
) -> anyhow::Result<(usize, f64)> {
    let mut tally = Tally {
        progress: Progress::new(todo.len() as u64, log_every),
        failures,
        failed: 0,
    };
    // Decoding and preprocessing run ahead on a worker thread, up to a batch of images.
    let prepared = prefetch(todo.to_vec(), PREFETCH_DEPTH.max(batch), |i: &Input| {
        prepare_with_sha256(&i.path)
    });
    let mut pending: Vec<(Input, Ready)> = Vec::with_capacity(batch);
    let mut prepared = prepared.peekable();
    while let Some((input, ready)) = prepared.next() {
        tally
            .progress
            .bar
            .set_message(input.path.display().to_string());
        match ready {
            Err(e) => tally.settle(&input, Err(e.into()))?,
            Ok(ready) if batch == 1 => tally.settle(&input, extract_one(work, &input, ready))?,
            Ok(ready) => pending.push((input, ready)),
        }
        if !pending.is_empty() && (pending.len() == batch || prepared.peek().is_none()) {
            for (input, outcome) in extract_batch(work, pending.drain(..).collect()) {
                tally.settle(&input, outcome)?;
            }
        }
    }
    tally.progress.bar.finish_and_clear();
    Ok((tally.failed, tally.progress.start.elapsed().as_secs_f64()))
}

/// Where each image's outcome goes: the progress bar, and `failures.tsv` when it failed.
struct Tally<'a> {
    progress: Progress,
    failures: &'a mut Failures,
    failed: usize,
}

impl Tally<'_> {
    fn settle(&mut self, input: &Input, outcome: anyhow::Result<Outcome>) -> anyhow::Result<()> {
        let reason = match outcome {
            Ok(Outcome::Record) => None,
            Ok(Outcome::NoProposals(reason)) => Some(reason),
            Err(e) => Some(butd_exe::error_text(&e)),
        };
        if let Some(reason) = reason {
            // Most reasons already start with the image's path.
            let path = input.path.display().to_string();
            self.progress.println(&if reason.starts_with(&path) {
                reason.clone()
            } else {
                format!("{path}: {reason}")
            });
            self.failures.add(&input.path, &input.id, &reason)?;
            self.failed += 1;
        }
        self.progress.inc();
        Ok(())
    }
}

/// 1 when `failures.tsv` lists an image of this run (this time or in an earlier, resumed run),
/// else 0.
fn exit_code(failures_path: &Path, ids: &[String]) -> ExitCode {
    let listed = read_failures(failures_path).unwrap_or_default();
    let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
    if listed.iter().any(|f| ids.contains(f.id.as_str())) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
