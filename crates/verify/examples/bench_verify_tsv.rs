//! Benchmark of `verify` streaming a TSV (issue #8: 10,000 records of 36 boxes × 2048 read from a
//! TSV against safetensors records in ≤ 60 s with a peak RSS ≤ 500 MB).
//!
//!     cargo run --release -p butd-verify --example bench_verify_tsv -- [--images 10000]
//!         [--boxes 36] [--threads N] [--detail 1000] [--dir DIR]
//!
//! Generates once into DIR (default `$BUTD_CACHE/bench_verify_tsv`, about 7 GB for the
//! defaults; regenerated when the parameters change): `golden.tsv`, an LXMERT obj36 TSV of the
//! golden records written by butd's writer, and `candidate/`, the candidate records (off by
//! ~1e-7) as safetensors. Then does what `butd verify --golden golden.tsv --candidate candidate`
//! does (stream the TSV, look each image up in the directory, compare, render parity.json and
//! parity.html) and prints the wall time, images/s and the process's peak resident memory
//! (VmHWM, reset after the generation).
use std::path::Path;
use std::time::Instant;

use butd_verify::{verify, Options, Record, SourceSpec, Thresholds};

#[path = "common/records.rs"]
mod records;

use records::{arg, gate, met, records, stale, threads_and_dir, FEATURE_DIM, IMAGE_H, IMAGE_W};

const TARGET_SECONDS: f64 = 60.0;
const TARGET_RSS_MB: f64 = 500.0;

/// The TSV's view of a synthetic record.
fn tsv_record(id: String, r: &Record) -> butd_formats::Record {
    fn column<T>(r: &Record, name: &str, cast: fn(f64) -> T) -> Vec<T> {
        r.get(name)
            .expect("synthetic records hold every final tensor")
            .values
            .iter()
            .map(|&v| cast(v))
            .collect()
    }
    let f32s = |name: &str| column(r, name, |v| v as f32);
    let i64s = |name: &str| column(r, name, |v| v as i64);
    butd_formats::Record {
        image_id: id,
        image_h: IMAGE_H,
        image_w: IMAGE_W,
        boxes: f32s("boxes")
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect(),
        features: f32s("features"),
        feature_dim: FEATURE_DIM,
        objects_id: Some(i64s("objects_id")),
        objects_conf: Some(f32s("objects_conf")),
        attrs_id: Some(i64s("attrs_id")),
        attrs_conf: Some(f32s("attrs_conf")),
        conf: None,
        soft_labels: None,
    }
}

fn generate(dir: &Path, images: usize, boxes: usize) -> std::io::Result<()> {
    let Some(stamp) = stale(dir, format!("images={images} boxes={boxes} v1\n"))? else {
        return Ok(());
    };
    let t = Instant::now();
    let candidate = dir.join("candidate");
    if candidate.exists() {
        std::fs::remove_dir_all(&candidate)?;
    }
    std::fs::create_dir_all(&candidate)?;
    let tsv = dir.join("golden.tsv");
    let mut w =
        butd_formats::LxmertTsvWriter::create(&tsv, false).map_err(std::io::Error::other)?;
    for i in 0..images {
        let (g, c) = records(i as u64 + 1, boxes);
        let id = format!("img{i:06}");
        w.write(&tsv_record(id.clone(), &g))
            .map_err(std::io::Error::other)?;
        c.write(&candidate.join(format!("{id}.safetensors")))
            .map_err(std::io::Error::other)?;
    }
    w.finish()
        .and_then(|f| f.commit())
        .map_err(std::io::Error::other)?;
    stamp.write()?;
    println!(
        "generated {images} records into {} in {:.1} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The process's peak resident set (VmHWM), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so the peak measured is the verification's.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let images: usize = arg(&args, "--images", 10_000);
    let boxes: usize = arg(&args, "--boxes", 36);
    let detail: usize = arg(&args, "--detail", 1000);
    let (threads, dir) = threads_and_dir(&args, "bench_verify_tsv");
    generate(&dir, images, boxes)?;

    let reset = reset_peak_rss();
    let t = Instant::now();
    let opts = Options {
        threads,
        detail,
        ..Options::default()
    };
    let report = verify(
        &SourceSpec::new(dir.join("golden.tsv")),
        &SourceSpec::new(dir.join("candidate")),
        &Thresholds::default(),
        &opts,
    )
    .map_err(std::io::Error::other)?;
    let compare = t.elapsed().as_secs_f64();
    let json = report.to_json();
    let html = report.to_html();
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_mb();
    let gb = (dir.join("golden.tsv").metadata()?.len() as f64) / 1e9;
    println!(
        "verify LXMERT TSV ({gb:.2} GB, streamed) vs {images} safetensors records, {boxes} boxes × \
         {FEATURE_DIM}, {threads} threads: {compare:.1} s compare + {:.1} s reports ({:.1} MB \
         JSON, {:.1} MB HTML) = {secs:.1} s, {:.0} images/s",
        secs - compare,
        json.len() as f64 / 1e6,
        html.len() as f64 / 1e6,
        images as f64 / secs
    );
    let s = &report.summary;
    println!(
        "{} compared, {} pass, {} fail, gate {}",
        s.compared,
        s.passed,
        s.failed,
        gate(s.gate_passed)
    );
    match rss {
        Some(mb) => println!(
            "peak RSS {mb:.0} MB{} (target ≤ {TARGET_RSS_MB:.0} MB: {})",
            if reset {
                ""
            } else {
                " (not reset after generation)"
            },
            met(mb <= TARGET_RSS_MB)
        ),
        None => println!("peak RSS: /proc/self/status not readable"),
    }
    println!(
        "time {secs:.1} s (target ≤ {TARGET_SECONDS:.0} s for 10,000 images: {})",
        met(secs <= TARGET_SECONDS * images as f64 / 10_000.0)
    );
    Ok(())
}
