//! Benchmark of `compare_dirs` on final records (issue #5: 1,000 pairs of 100 boxes × 2048
//! features in ≤ 10 s).
//!
//!     cargo run --release -p butd-verify --example bench_verify -- [--pairs 1000] [--boxes 100]
//!         [--threads N] [--runs 3] [--dir DIR]
//!
//! Generates the golden and candidate records once into DIR (default
//! `$BUTD_CACHE/bench_verify`, about 1.7 GB for the defaults; regenerated when the parameters
//! change), then times `compare_dirs_with` and the rendering of parity.json / parity.html.
//! The candidate is the golden with every feature scaled by 1 ± 1e-7 and coordinates moved by
//! < 1e-4 px, so the whole comparison runs and the gate passes.
use std::path::{Path, PathBuf};
use std::time::Instant;

use butd_verify::{compare_dirs_with, Dtype, Record, Tensor, Thresholds};

const FEATURE_DIM: usize = 2048;

struct Rng(u64);

impl Rng {
    /// Uniform in [0, 1) (xorshift64*).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn tensor(name: &str, dtype: Dtype, shape: Vec<usize>, values: Vec<f64>) -> Tensor {
    Tensor::new(name, dtype, shape, values).expect("shape fits")
}

/// A golden final record with `k` regions and its candidate.
fn records(seed: u64, k: usize) -> (Record, Record) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut g = Record::default();
    let mut boxes = Vec::with_capacity(4 * k);
    for _ in 0..k {
        let (x, y) = (rng.next() * 500.0, rng.next() * 400.0);
        let (w, h) = (8.0 + rng.next() * 200.0, 8.0 + rng.next() * 200.0);
        boxes.extend([x, y, x + w, y + h].map(|v| f64::from(v as f32)));
    }
    let features: Vec<f64> = (0..k * FEATURE_DIM)
        .map(|_| f64::from((rng.next() * rng.next() * 4.0) as f32))
        .collect();
    let mut keep: Vec<f64> = (0..k).map(|_| (rng.next() * 300.0).floor()).collect();
    keep.sort_by(f64::total_cmp);
    let ids = |rng: &mut Rng, n: f64| (0..k).map(|_| (rng.next() * n).floor()).collect::<Vec<_>>();
    let conf = |rng: &mut Rng| {
        (0..k)
            .map(|_| f64::from((0.2 + rng.next() * 0.7) as f32))
            .collect::<Vec<_>>()
    };
    let objects_id = ids(&mut rng, 1600.0);
    let attrs_id = ids(&mut rng, 400.0);
    let (objects_conf, attrs_conf) = (conf(&mut rng), conf(&mut rng));
    for (name, dtype, shape, values) in [
        ("keep", Dtype::I64, vec![k], keep),
        ("boxes", Dtype::F32, vec![k, 4], boxes),
        ("features", Dtype::F32, vec![k, FEATURE_DIM], features),
        ("objects_id", Dtype::I64, vec![k], objects_id),
        ("objects_conf", Dtype::F32, vec![k], objects_conf),
        ("attrs_id", Dtype::I64, vec![k], attrs_id),
        ("attrs_conf", Dtype::F32, vec![k], attrs_conf),
    ] {
        g.tensors
            .insert(name.into(), tensor(name, dtype, shape, values));
    }
    let mut c = g.clone();
    for v in &mut c.tensors.get_mut("features").expect("written above").values {
        *v = f64::from((*v * (1.0 + 1e-7 * (2.0 * rng.next() - 1.0))) as f32);
    }
    for v in &mut c.tensors.get_mut("boxes").expect("written above").values {
        *v = f64::from((*v + 1e-4 * rng.next()) as f32);
    }
    (g, c)
}

fn generate(dir: &Path, pairs: usize, boxes: usize) -> std::io::Result<()> {
    let stamp = dir.join("params.txt");
    let want = format!("pairs={pairs} boxes={boxes} v1\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        println!("reusing records in {}", dir.display());
        return Ok(());
    }
    let t = Instant::now();
    for side in ["golden", "candidate"] {
        let d = dir.join(side);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
    }
    for i in 0..pairs {
        let (g, c) = records(i as u64 + 1, boxes);
        let name = format!("img{i:06}.safetensors");
        g.write(&dir.join("golden").join(&name))
            .map_err(std::io::Error::other)?;
        c.write(&dir.join("candidate").join(&name))
            .map_err(std::io::Error::other)?;
    }
    std::fs::write(&stamp, want)?;
    println!(
        "generated {pairs} pairs into {} in {:.1} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
    match args.iter().position(|a| a == flag) {
        None => default,
        Some(k) => args
            .get(k + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("{flag} expects a value");
                std::process::exit(2)
            }),
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pairs: usize = arg(&args, "--pairs", 1000);
    let boxes: usize = arg(&args, "--boxes", 100);
    let runs: usize = arg(&args, "--runs", 3).max(1);
    let threads: usize = arg(
        &args,
        "--threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let cache = std::env::var_os("BUTD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir: PathBuf = arg(&args, "--dir", cache.join("bench_verify"));
    generate(&dir, pairs, boxes)?;

    let th = Thresholds::default();
    let mut times = Vec::new();
    let mut last = None;
    for run in 0..runs {
        let t = Instant::now();
        let report = compare_dirs_with(&dir.join("golden"), &dir.join("candidate"), &th, threads)
            .map_err(std::io::Error::other)?;
        let secs = t.elapsed().as_secs_f64();
        println!("run {}: compare_dirs {pairs} pairs × {boxes} boxes × {FEATURE_DIM}, {threads} threads: {secs:.2} s", run + 1);
        times.push(secs);
        last = Some(report);
    }
    let report = last.expect("at least one run");
    let t = Instant::now();
    let json = report.to_json();
    let html = report.to_html();
    let render = t.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let mb = 2.0 * (pairs * boxes * (FEATURE_DIM + 4) * 4) as f64 / 1e6;
    println!(
        "best {best:.2} s, median {:.2} s ({:.0} pairs/s, {:.0} MB/s of f32 data); reports: \
         {:.2} s to render ({:.1} MB JSON, {:.1} MB HTML)",
        times[times.len() / 2],
        pairs as f64 / best,
        mb / best,
        render,
        json.len() as f64 / 1e6,
        html.len() as f64 / 1e6
    );
    println!(
        "gate {}; target ≤ 10 s for 1000 pairs: {}",
        if report.summary.gate_passed {
            "passed"
        } else {
            "FAILED"
        },
        if best + render <= 10.0 * pairs as f64 / 1000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
