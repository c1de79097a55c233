//! `butd-extract`, run as `butd extract`: the reference network on images, one record per
//! image. A binary of its own because it is the only part of butd that links libtorch, whose
//! loading costs every process 0.3–0.4 s and 170 MB before `main` runs.
//!
//! Exit status: 0 when every image has a record, 1 when some image failed (undecodable, no
//! proposals, …: each is reported on stderr and in `OUT/failures.tsv`, and the run goes on),
//! 2 on usage or weights errors (nothing was extracted).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use butd_model::detector::{configure_runtime, device_name, parse_device, DetectOptions, Detector};
use butd_model::record::{write_record, RecordInfo};
use butd_model::select::SelectConfig;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Parser)]
#[command(name = "butd extract", bin_name = "butd extract", version, about = "Run the reference BUTD network on images")]
struct Args {
    /// Converted weights (`butd convert … --map mappings/caffe-to-hf-frcnn.toml`)
    #[arg(long)]
    weights: PathBuf,
    /// Images (JPEG or PNG)
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Output folder: `<stem>.safetensors` per image, and `failures.tsv`
    #[arg(long, short)]
    out: PathBuf,
    /// Also write the intermediate blobs under their golden names (data, res4b22, rpn_*,
    /// pool5_flat, cls_prob, predicted_cls, attr_prob, image_bgr)
    #[arg(long)]
    dump_activations: bool,
    /// `cpu`, `cuda` or `cuda:N`
    #[arg(long, default_value = "cpu")]
    device: String,
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
}

/// One TSV field: tabs and line breaks would break the row.
fn tsv_field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

fn main() -> ExitCode {
    match run(<Args as clap::Parser>::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = parse_device(&args.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    // Before the first libtorch call: TF32 off, huge pages on, CUDA checked (see configure_runtime).
    configure_runtime(device).with_context(|| format!("--device {}", args.device))?;
    let select = match args.fixed {
        Some(n) => SelectConfig {
            conf_thresh: args.conf_thresh,
            ..SelectConfig::fixed(n)
        },
        None => SelectConfig {
            conf_thresh: args.conf_thresh,
            min_boxes: args.min_boxes,
            max_boxes: args.max_boxes,
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
    let opts = DetectOptions {
        select,
        dump_activations: args.dump_activations,
        roi_chunk: args.roi_chunk,
        ..DetectOptions::default()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output folder {}", args.out.display()))?;
    let detector = Detector::load(&args.weights, device)?;
    let info = |image: &Path| RecordInfo {
        image_name: image
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        device: device_name(device),
        weights_sha256: None,
    };

    let bar = ProgressBar::new(args.images.len() as u64).with_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} images, {elapsed} elapsed, ETA {eta} {msg}",
        )
        .expect("the template is valid"),
    );
    let mut failures: Vec<(PathBuf, String)> = Vec::new();
    let mut written: HashMap<PathBuf, PathBuf> = HashMap::new();
    for image in &args.images {
        bar.set_message(image.display().to_string());
        let result = (|| -> anyhow::Result<()> {
            let stem = image.file_stem().context("the path has no file name")?;
            let out = args.out.join(Path::new(stem).with_extension("safetensors"));
            if let Some(first) = written.get(&out) {
                bail!(
                    "its record {} would overwrite the one of {}",
                    out.display(),
                    first.display()
                );
            }
            let decoded = butd_preprocess::decode_file(image)?;
            let detection = detector.detect(&decoded, &opts)?;
            write_record(&out, &detection, &info(image))?;
            written.insert(out, image.clone());
            Ok(())
        })();
        if let Err(e) = result {
            bar.suspend(|| eprintln!("{}: {e:#}", image.display()));
            failures.push((image.clone(), format!("{e:#}")));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let mut tsv = String::from("image\treason\n");
    for (image, reason) in &failures {
        tsv.push_str(&format!(
            "{}\t{}\n",
            tsv_field(&image.display().to_string()),
            tsv_field(reason)
        ));
    }
    let failures_path = args.out.join("failures.tsv");
    std::fs::write(&failures_path, tsv)
        .with_context(|| format!("cannot write {}", failures_path.display()))?;
    eprintln!(
        "{} of {} images extracted into {}{}",
        args.images.len() - failures.len(),
        args.images.len(),
        args.out.display(),
        if failures.is_empty() {
            String::new()
        } else {
            format!("; failures in {}", failures_path.display())
        }
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
