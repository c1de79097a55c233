//! Exact against fast modes in one process, on the golden images: speed and parity with Caffe.
//!
//! ```text
//! cargo run --release -p butd-model --example bench_precision -- \
//!     [--modes exact,bf16] [--device cpu|cuda[:N]] [--quick] [--weights W.safetensors] \
//!     [--golden DIR] \
//!     [--throughput 600x1000 --throughput-images 10 --batch 4]
//! ```
//! (`scripts/bench-precision.sh`, `just bench-precision`.)
//!
//! Per mode: s/image and img/s over the golden images with proposals (decoded beforehand;
//! network, host layers and the activation copies the parity needs), GFLOP/s from
//! [`Detector::flops`], the speed-up over the first mode of the same run, and parity against
//! the golden Caffe records: the share of golden rois matched at IoU ≥ `[matching] min_iou` of
//! parity.toml (0.9), of golden kept boxes matched, object and attribute label agreement on the
//! matched boxes, cosine (min, median) of `pool5_flat` on matched rois and of `features` on
//! matched boxes, and the `butd verify` gate: parity.toml for exact, its `fast` profile for the
//! others. `--quick` runs two images and skips the gate (which needs every golden image).
//! `--throughput HxW` adds img/s on N copies of a golden photo resized to H×W (no activation
//! copies): one image at a time (serial, and pipelined with the next image preprocessed on a
//! worker thread), and `--batch B` images at a time through [`Detector::detect_batch`] (res5 over
//! the rois of all B; pipelined too); on CUDA also the device memory in use.

use butd_testkit as support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use butd_model::detector::{device_name, parse_device, DetectError, DetectOptions, Detector};
use butd_model::precision::{Precision, PRECISION_KEY};
use butd_model::record::{write_no_proposals_record, write_record, RecordInfo};
use butd_model::throughput::{
    cuda_memory, detect_batch_with_fallback, detect_with_oom_retry, prefetch,
};
use butd_preprocess::{net_input, ImageBgr};
use butd_verify::regions::match_boxes;
use butd_verify::{compare_dirs_with, Record, RegionSet, Thresholds};
use tch::Device;

struct Args {
    modes: Vec<Precision>,
    device: Device,
    quick: bool,
    weights: Option<PathBuf>,
    golden: PathBuf,
    throughput: Option<(usize, usize)>,
    throughput_images: usize,
    batch: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        modes: Vec::new(),
        device: Device::Cpu,
        quick: false,
        weights: None,
        golden: support::golden_dir(),
        throughput: None,
        throughput_images: 10,
        batch: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |_: &str| {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--modes" => {
                args.modes = value("--modes")?
                    .split(',')
                    .map(|m| m.parse().map_err(anyhow::Error::msg))
                    .collect::<Result<_, _>>()?
            }
            "--device" => {
                args.device = parse_device(&value("--device")?).map_err(anyhow::Error::msg)?
            }
            "--quick" => args.quick = true,
            "--weights" => args.weights = Some(value("--weights")?.into()),
            "--golden" => args.golden = value("--golden")?.into(),
            "--throughput" => {
                let v = value("--throughput")?;
                let (h, w) = v
                    .split_once('x')
                    .ok_or_else(|| anyhow::anyhow!("--throughput HxW"))?;
                args.throughput = Some((h.parse()?, w.parse()?));
            }
            "--throughput-images" => {
                args.throughput_images = value("--throughput-images")?.parse()?
            }
            "--batch" => args.batch = value("--batch")?.parse::<usize>()?.max(1),
            other => {
                anyhow::bail!("unknown argument {other} (see the header of bench_precision.rs)")
            }
        }
    }
    if args.modes.is_empty() {
        args.modes = match args.device {
            Device::Cpu => vec![Precision::Exact, Precision::Bf16],
            _ => vec![Precision::Exact, Precision::Tf32, Precision::Bf16],
        };
    }
    Ok(args)
}

/// `/proc/loadavg`'s 1-minute figure: benchmark figures taken under load are upper bounds.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Parity figures of one mode, summed over images.
#[derive(Default)]
struct Parity {
    rois: (usize, usize),
    boxes: (usize, usize),
    objects_agree: usize,
    attrs_agree: usize,
    pool5_cos: Vec<f64>,
    features_cos: Vec<f64>,
}

impl Parity {
    fn add(&mut self, g: &Record, c: &Record, min_iou: f64) {
        for (set, feature) in [
            (RegionSet::Rois, "pool5_flat"),
            (RegionSet::Final, "features"),
        ] {
            let (Some(gb), Some(cb)) = (set.boxes(g), set.boxes(c)) else {
                continue;
            };
            let m = match_boxes(&gb, &cb, min_iou);
            let counts = if set == RegionSet::Rois {
                &mut self.rois
            } else {
                &mut self.boxes
            };
            *counts = (counts.0 + m.pairs.len(), counts.1 + gb.len());
            let (Some(gf), Some(cf)) = (g.get(feature), c.get(feature)) else {
                continue;
            };
            let cos = if set == RegionSet::Rois {
                &mut self.pool5_cos
            } else {
                &mut self.features_cos
            };
            cos.extend(m.pairs.iter().map(|p| cosine(gf.row(p.g), cf.row(p.c))));
            if set == RegionSet::Final {
                let same = |name: &str| {
                    m.pairs
                        .iter()
                        .filter(|p| g.tensors[name].values[p.g] == c.tensors[name].values[p.c])
                        .count()
                };
                self.objects_agree += same("objects_id");
                self.attrs_agree += same("attrs_id");
            }
        }
    }

    fn share(n: usize, of: usize) -> String {
        format!("{:.2} % ({n}/{of})", 100.0 * n as f64 / of.max(1) as f64)
    }

    fn min_median(v: &mut [f64]) -> String {
        if v.is_empty() {
            return "-".into();
        }
        v.sort_by(f64::total_cmp);
        format!("{:.6} / {:.6}", v[0], v[v.len() / 2])
    }
}

/// One mode's timed run over the golden images; records written to `out` for the gate.
struct ModeRun {
    seconds: f64,
    /// Process CPU seconds: on a shared machine a steadier figure than wall time.
    cpu_seconds: f64,
    flop: f64,
    images: usize,
    parity: Parity,
}

fn run_mode(
    detector: &Detector,
    images: &[(String, ImageBgr)],
    (golden, out): (&Path, &Path),
    min_iou: f64,
) -> anyhow::Result<ModeRun> {
    let opts = DetectOptions {
        dump_activations: true,
        ..DetectOptions::default()
    };
    let info = RecordInfo {
        device: device_name(detector.device()),
        extra: vec![(
            PRECISION_KEY.into(),
            detector.precision().record_value().into(),
        )],
        ..RecordInfo::default()
    };
    detect_with_oom_retry(detector, &images[0].1, &net_input(&images[0].1)?, &opts)?; // warm-up
    let mut run = ModeRun {
        seconds: 0.0,
        cpu_seconds: 0.0,
        flop: 0.0,
        images: 0,
        parity: Parity::default(),
    };
    for (name, image) in images {
        let stem = Path::new(name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let path = out.join(format!("{stem}.safetensors"));
        let info = RecordInfo {
            image_name: name.clone(),
            ..info.clone()
        };
        let (t, cpu) = (Instant::now(), support::cpu_seconds());
        match detect_with_oom_retry(detector, image, &net_input(image)?, &opts) {
            Ok(d) => {
                run.seconds += t.elapsed().as_secs_f64();
                run.cpu_seconds += support::cpu_seconds() - cpu;
                run.flop += detector
                    .flops(d.input.net_h, d.input.net_w, d.rois.len())
                    .total() as f64;
                run.images += 1;
                write_record(&path, &d, &info)?;
                let golden = Record::open(&golden.join(format!("{stem}.safetensors")))?;
                run.parity.add(&golden, &Record::open(&path)?, min_iou);
            }
            Err(e @ DetectError::NoProposals { input, .. }) => {
                // As `butd extract --dump-activations` writes it: with the blobs before the
                // proposal layer, which the golden crash record has too.
                let early = detector.early_activations(image)?;
                write_no_proposals_record(&path, &input, Some(&early), &e.to_string(), &info)?
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(run)
}

/// Throughput on `n` copies of one photo (no activation copies): img/s one image after the
/// other (preprocessing, then the network), img/s with the preprocessing of the next image on a
/// [`prefetch`] worker while the device runs, img/s of `batch` images per
/// [`Detector::detect_batch`] call (pipelined too), and the rois per image.
struct Throughput {
    serial: f64,
    pipelined: f64,
    batched: f64,
    rois: usize,
}

fn throughput(
    detector: &Detector,
    image: &ImageBgr,
    n: usize,
    batch: usize,
) -> anyhow::Result<Throughput> {
    let opts = DetectOptions::default();
    let rois = detector.detect(image, &opts)?.rois.len(); // warm-up
    let t = Instant::now();
    for _ in 0..n {
        detect_with_oom_retry(detector, image, &net_input(image)?, &opts)?;
    }
    let serial = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (image, input) in prefetch(vec![image.clone(); n], 2, |i: &ImageBgr| net_input(i)) {
        detect_with_oom_retry(detector, &image, &input?, &opts)?;
    }
    let pipelined = n as f64 / t.elapsed().as_secs_f64();
    let groups: Vec<Vec<ImageBgr>> = (0..n)
        .step_by(batch)
        .map(|start| vec![image.clone(); batch.min(n - start)])
        .collect();
    let t = Instant::now();
    for (group, inputs) in prefetch(groups, 2, |g: &Vec<ImageBgr>| {
        g.iter().map(net_input).collect::<Result<Vec<_>, _>>()
    }) {
        let inputs = inputs?;
        let items: Vec<_> = group.iter().zip(&inputs).collect();
        for result in detect_batch_with_fallback(detector, &items, &opts) {
            result?;
        }
    }
    let batched = n as f64 / t.elapsed().as_secs_f64();
    Ok(Throughput {
        serial,
        pipelined,
        batched,
        rois,
    })
}

/// `image` resized to `h`×`w` by nearest neighbour (a stand-in photo of that size).
fn resized(image: &ImageBgr, h: usize, w: usize) -> ImageBgr {
    let mut data = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        let sy = y * image.height / h;
        for x in 0..w {
            let s = (sy * image.width + x * image.width / w) * 3;
            data.extend_from_slice(&image.data[s..s + 3]);
        }
    }
    ImageBgr {
        height: h,
        width: w,
        data,
    }
}

/// The golden images (`--quick`: two of them), decoded.
fn golden_images(golden: &Path, quick: bool) -> anyhow::Result<Vec<(String, ImageBgr)>> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden.join("index.json"))?)?;
    let mut names: Vec<String> = index["images"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{}: no \"images\" list", golden.display()))?
        .iter()
        .filter_map(|e| e["image"].as_str().map(str::to_string))
        .collect();
    if quick {
        names.retain(|n| n.starts_with("chelsea_tiny") || n.starts_with("coffee"));
    }
    names
        .iter()
        .map(|n| {
            let image = butd_preprocess::decode_file(&golden.join("images").join(n))?;
            Ok((n.clone(), image))
        })
        .collect()
}

/// The `butd verify` gate on one mode's records: parity.toml for exact, `--profile fast` else.
fn gate(golden: &Path, out: &Path, mode: Precision) -> anyhow::Result<String> {
    let (th, name) = match mode {
        Precision::Exact => (Thresholds::builtin(None)?, "parity.toml"),
        _ => (Thresholds::builtin(Some("fast"))?, "--profile fast"),
    };
    let report = compare_dirs_with(golden, out, &th, 2)?;
    let s = &report.summary;
    Ok(if s.gate_passed {
        format!("pass ({name})")
    } else {
        format!(
            "FAIL ({name}: {} breaches; first: {})",
            s.breaches.len(),
            s.breaches[0]
        )
    })
}

/// One mode's figures: the golden run, its gate, the throughput and the device memory in use.
struct Row {
    mode: Precision,
    run: ModeRun,
    gate: String,
    throughput: Option<Throughput>,
    memory_gb: Option<f64>,
}

fn measure(
    args: &Args,
    mode: Precision,
    images: &[(String, ImageBgr)],
    scratch: &Path,
) -> anyhow::Result<Row> {
    let weights = args
        .weights
        .clone()
        .unwrap_or_else(support::synthetic_hf_weights);
    let t = Instant::now();
    let detector = Detector::load_with_precision(&weights, args.device, mode)?;
    eprintln!(
        "{mode}: loaded in {:.1} s; {} threads",
        t.elapsed().as_secs_f64(),
        tch::get_num_threads()
    );
    let out = scratch.join(mode.name());
    std::fs::create_dir_all(&out)?;
    let min_iou = Thresholds::builtin(None)?.matching.min_iou;
    let run = run_mode(&detector, images, (&args.golden, &out), min_iou)?;
    let gate = match args.quick {
        true => "- (--quick)".to_string(),
        false => gate(&args.golden, &out, mode)?,
    };
    let throughput = match args.throughput {
        Some((h, w)) => {
            let photo = images
                .iter()
                .find(|(n, _)| n.starts_with("coffee"))
                .ok_or_else(|| anyhow::anyhow!("no coffee image among the golden images"))?;
            let photo = resized(&photo.1, h, w);
            Some(throughput(
                &detector,
                &photo,
                args.throughput_images,
                args.batch,
            )?)
        }
        None => None,
    };
    let memory_gb = cuda_memory().map(|(free, total)| (total - free) as f64 / 1e9);
    Ok(Row {
        mode,
        run,
        gate,
        throughput,
        memory_gb,
    })
}

fn print_speed(rows: &[Row]) {
    let per_image = |r: &ModeRun| (r.seconds / r.images as f64, r.cpu_seconds / r.images as f64);
    let (base, base_cpu) = per_image(&rows[0].run);
    println!(
        "\n{:<6} {:>8} {:>6} {:>8} {:>9} {:>10} {:>17}",
        "mode", "s/image", "img/s", "GFLOP/s", "speed-up", "CPU s/img", "speed-up (CPU s)"
    );
    for Row { mode, run, .. } in rows {
        let (s, cpu) = per_image(run);
        println!(
            "{:<6} {s:>8.3} {:>6.3} {:>8.1} {:>8.2}× {cpu:>10.3} {:>16.2}×",
            mode.name(),
            1.0 / s,
            run.flop / run.seconds / 1e9,
            base / s,
            base_cpu / cpu
        );
    }
}

fn print_parity(rows: &mut [Row]) {
    println!(
        "\n{:<6} {:<20} {:<20} {:<20} {:<20} {:<21} {:<21} gate",
        "mode",
        "rois IoU≥0.9",
        "kept boxes matched",
        "objects agree",
        "attributes agree",
        "pool5 cos min/median",
        "features cos min/med"
    );
    for Row {
        mode, run, gate, ..
    } in rows.iter_mut()
    {
        let p = &mut run.parity;
        println!(
            "{:<6} {:<20} {:<20} {:<20} {:<20} {:<21} {:<21} {gate}",
            mode.name(),
            Parity::share(p.rois.0, p.rois.1),
            Parity::share(p.boxes.0, p.boxes.1),
            Parity::share(p.objects_agree, p.boxes.0),
            Parity::share(p.attrs_agree, p.boxes.0),
            Parity::min_median(&mut p.pool5_cos),
            Parity::min_median(&mut p.features_cos),
        );
    }
    println!(
        "(pool5 cosine on the golden records that carry pool5_flat; speed-up over {} in this run)",
        rows[0].mode
    );
}

fn print_throughput(args: &Args, (h, w): (usize, usize), rows: &[Row]) {
    println!(
        "\nthroughput at {h}×{w}, {} copies of a golden photo per mode (serial: preprocess then \
         network; pipelined: the next image preprocessed on a worker thread meanwhile; batched: \
         {} images per detect_batch, res5 over all their rois, pipelined):",
        args.throughput_images, args.batch
    );
    for row in rows {
        let Some(t) = &row.throughput else { continue };
        let mem = row.memory_gb.map_or(String::new(), |gb| {
            format!(
                ", device memory in use {gb:.2} GB (driver view: peak allocator reserve + context)"
            )
        });
        println!(
            "  {:<6} serial {:>8.3} img/s, pipelined {:>8.3} img/s, batched {:>8.3} img/s, {} rois{mem}",
            row.mode.name(),
            t.serial,
            t.pipelined,
            t.batched,
            t.rois
        );
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let images = golden_images(&args.golden, args.quick)?;
    let scratch = tempfile::tempdir()?;
    println!(
        "bench precision: {} golden images from {}, device {}, load average {} at the start",
        images.len(),
        args.golden.display(),
        device_name(args.device),
        load_average()
    );
    let mut rows = args
        .modes
        .iter()
        .map(|&mode| measure(&args, mode, &images, scratch.path()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    print_speed(&rows);
    print_parity(&mut rows);
    if let Some(size) = args.throughput {
        print_throughput(&args, size, &rows);
    }
    println!(
        "\nload average {} at the end (2-core machine: figures under load are upper bounds)",
        load_average()
    );
    Ok(())
}
