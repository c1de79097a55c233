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
use std::path::Path;
use std::time::Instant;

use butd_verify::{compare_dirs_with, Thresholds};

#[path = "common/records.rs"]
mod records;

use records::{arg, gate, met, records, stale, threads_and_dir, FEATURE_DIM};

fn generate(dir: &Path, pairs: usize, boxes: usize) -> std::io::Result<()> {
    let Some(stamp) = stale(dir, format!("pairs={pairs} boxes={boxes} v1\n"))? else {
        return Ok(());
    };
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
    stamp.write()?;
    println!(
        "generated {pairs} pairs into {} in {:.1} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pairs: usize = arg(&args, "--pairs", 1000);
    let boxes: usize = arg(&args, "--boxes", 100);
    let runs: usize = arg(&args, "--runs", 3).max(1);
    let (threads, dir) = threads_and_dir(&args, "bench_verify");
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
        gate(report.summary.gate_passed),
        met(best + render <= 10.0 * pairs as f64 / 1000.0)
    );
    Ok(())
}
