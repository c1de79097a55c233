//! Benchmark of the reference network on the golden images (warm model), on the CPU by default:
//!
//! ```text
//! cargo run --release -p butd-model --example bench_extract [-- --roi-chunk 16,32,64 --repeat 1 --device cpu|cuda IMAGE…]
//! ```
//!
//! Prints seconds per image, the network's FLOPs counted from the layer shapes, the achieved
//! GFLOP/s, a large f32 matmul's GFLOP/s in the same libtorch (the machine's practical peak),
//! and the peak RSS (VmHWM), next to the Caffe figures recorded in `golden/index.json`
//! and the Hugging Face FRCNN's (18.0 s, 2.8 GB for a 600×900 image, whole process).

use butd_testkit as support;

use std::time::Instant;

use butd_model::detector::{default_roi_chunk, device_name, parse_device, DetectOptions, Detector};
use butd_model::throughput::cuda_memory;
use butd_preprocess::ImageBgr;
use tch::{Device, Kind, Tensor};

/// The HF FRCNN on a 600×900 image, whole process (issue #4's yardstick).
const HF_SECONDS: f64 = 18.0;
const HF_PEAK_GB: f64 = 2.8;

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Device memory in use on the current CUDA device as the driver sees it (`total − free`,
/// [`cuda_memory`]), in MB. libtorch's caching allocator keeps what it once reserved, so after
/// the runs this is its peak reserve plus the CUDA context: an upper bound of the peak
/// allocated memory.
fn gpu_used_mb() -> Option<f64> {
    cuda_memory().map(|(free, total)| (total - free) as f64 / 1e6)
}

/// Waits for the device's queued work (a no-op on the CPU).
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// GFLOP per wall second and per CPU second of an n×n×n f32 matmul on `device`, best of a few
/// runs.
fn matmul_gflops(n: i64, device: Device) -> (f64, f64) {
    let a = Tensor::randn([n, n], (Kind::Float, device));
    let b = Tensor::randn([n, n], (Kind::Float, device));
    let _ = a.matmul(&b); // warm-up
    sync(device);
    let flop = 2.0 * (n * n * n) as f64;
    (0..5).fold((0.0, 0.0), |(wall, cpu), _| {
        let (t, c0) = (Instant::now(), support::cpu_seconds());
        let c = a.matmul(&b);
        sync(device);
        drop(c);
        let (dt, dc) = (t.elapsed().as_secs_f64(), support::cpu_seconds() - c0);
        (
            f64::max(wall, flop / dt / 1e9),
            f64::max(cpu, flop / dc.max(0.01) / 1e9),
        )
    })
}

/// The command line: `--roi-chunk N[,N…]`, `--repeat N`, `--device D`, images (default: the
/// golden images with rois).
struct Options {
    roi_chunks: Vec<Option<usize>>,
    repeat: usize,
    device: Device,
    images: Vec<String>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        roi_chunks: vec![None],
        repeat: 1,
        device: Device::Cpu,
        images: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--roi-chunk" => {
                let list = args.next().expect("--roi-chunk N[,N…]");
                o.roi_chunks = list
                    .split(',')
                    .map(|n| n.parse().map(Some))
                    .collect::<Result<_, _>>()?;
            }
            "--repeat" => o.repeat = args.next().expect("--repeat N").parse()?,
            "--device" => {
                o.device = parse_device(&args.next().expect("--device cpu|cuda[:N]"))
                    .map_err(anyhow::Error::msg)?
            }
            _ => o.images.push(arg),
        }
    }
    Ok(o)
}

/// Seconds, CPU seconds and FLOPs summed over the timed runs.
#[derive(Default)]
struct Totals {
    seconds: f64,
    cpu_seconds: f64,
    flop: f64,
    runs: usize,
}

/// Times `image` with `roi_chunk` (best of `repeat`), prints its row next to Caffe's time
/// from `golden/index.json` (`caffe`), and adds it to `totals`.
fn time_image(
    detector: &Detector,
    (name, image): (&str, &ImageBgr),
    roi_chunk: Option<usize>,
    repeat: usize,
    caffe: &[serde_json::Value],
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let opts = DetectOptions {
        roi_chunk,
        ..DetectOptions::default()
    };
    let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
    let mut detection = None;
    for _ in 0..repeat {
        let (t, cpu) = (Instant::now(), support::cpu_seconds());
        detection = Some(detector.detect(image, &opts)?);
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(support::cpu_seconds() - cpu);
    }
    let d = detection.expect("--repeat is at least 1");
    let flop = detector
        .flops(d.input.net_h, d.input.net_w, d.rois.len())
        .total() as f64;
    let caffe_s = caffe
        .iter()
        .find(|e| e["image"] == name)
        .and_then(|e| e["caffe_forward_s"].as_f64())
        .map_or("-".into(), |s| format!("{s:.1}"));
    let chunk = roi_chunk.unwrap_or_else(|| default_roi_chunk(detector.device()));
    println!(
        "{name:<20} {chunk:>6} {:>9} {:>4} {best:>8.2} {best_cpu:>8.2} {:>9.1} {:>8.1} {caffe_s:>9}",
        format!("{}×{}", d.input.net_h, d.input.net_w),
        d.rois.len(),
        flop / 1e9,
        flop / best / 1e9
    );
    totals.seconds += best;
    totals.cpu_seconds += best_cpu;
    totals.flop += flop;
    totals.runs += 1;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let Options {
        roi_chunks,
        repeat,
        device,
        mut images,
    } = parse_args()?;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(support::golden_dir().join("index.json"))?)?;
    let caffe: Vec<serde_json::Value> = index["images"].as_array().unwrap().clone();
    if images.is_empty() {
        images = caffe
            .iter()
            .filter(|e| e["num_rois"].as_u64().unwrap_or(0) > 0)
            .map(|e| e["image"].as_str().unwrap().to_string())
            .collect();
    }

    let weights = support::synthetic_hf_weights();
    let load = Instant::now();
    let detector = Detector::load(&weights, device)?;
    eprintln!(
        "loaded {} on {} in {:.1} s; {} intra-op threads",
        weights.display(),
        device_name(device),
        load.elapsed().as_secs_f64(),
        tch::get_num_threads()
    );
    let decode =
        |name: &str| butd_preprocess::decode_file(&support::golden_dir().join("images").join(name));
    detector.detect(&decode(&images[0])?, &DetectOptions::default())?; // warm-up

    println!(
        "{:<20} {:>6} {:>9} {:>4} {:>8} {:>8} {:>9} {:>8} {:>9}",
        "image", "chunk", "net H×W", "R", "s/image", "CPU s", "GFLOP", "GFLOP/s", "Caffe s"
    );
    let mut totals = Totals::default();
    for name in &images {
        let image = decode(name)?;
        for &roi_chunk in &roi_chunks {
            time_image(
                &detector,
                (name, &image),
                roi_chunk,
                repeat,
                &caffe,
                &mut totals,
            )?;
        }
    }
    print_summary(&detector, device, &totals);
    Ok(())
}

/// The network's FLOPs for a typical input, the throughput over all runs, its share of the
/// matmul peak, and the memory figures.
fn print_summary(detector: &Detector, device: Device, totals: &Totals) {
    let Totals {
        seconds: total_s,
        cpu_seconds: total_cpu,
        flop: total_flop,
        runs,
    } = *totals;
    let (net_wall, net_cpu) = (total_flop / total_s / 1e9, total_flop / total_cpu / 1e9);
    let (peak_wall, peak_cpu) = matmul_gflops(4096, device);
    let example = detector.flops(600, 800, 300);
    println!(
        "\nFLOPs for a 600×800 input with 300 rois: {:.2} TFLOP (trunk {:.0} G, RPN {:.0} G, res5 {:.0} G, heads {:.1} G)",
        example.total() as f64 / 1e12,
        example.trunk as f64 / 1e9,
        example.rpn as f64 / 1e9,
        example.res5 as f64 / 1e9,
        example.heads as f64 / 1e9
    );
    println!(
        "{:.2} s/image, {:.2} img/s over {runs} runs",
        total_s / runs as f64,
        runs as f64 / total_s
    );
    if let Device::Cuda(_) = device {
        match gpu_used_mb() {
            Some(mb) => println!(
                "GPU memory in use after the runs (driver view: peak allocator reserve + CUDA context) {:.2} GB",
                mb / 1e3
            ),
            None => println!("GPU memory: cudaMemGetInfo not found in the loaded libraries"),
        }
    }
    println!(
        "GFLOP per wall second: network {net_wall:.1}, f32 matmul 4096³ {peak_wall:.1}: {:.0} % of peak (goal ≥ 70 %)",
        100.0 * net_wall / peak_wall
    );
    println!(
        "GFLOP per CPU second:  network {net_cpu:.1}, f32 matmul 4096³ {peak_cpu:.1}: {:.0} % of peak \
         (the steadier figure when other processes share the cores)",
        100.0 * net_cpu / peak_cpu
    );
    if let Some(mb) = peak_rss_mb() {
        println!(
            "peak RSS (VmHWM) {:.2} GB (goal ≤ 3 GB; Caffe 6.2–13.2 GB per image, HF FRCNN {HF_PEAK_GB} GB and {HF_SECONDS} s for 600×900)",
            mb / 1024.0
        );
    }
}
