//! Benchmark of the reader on the full synthetic model: open + parse every layer, then convert
//! every blob's values to f32. Prints wall time (warm page cache) and peak RSS, against the
//! targets: ≤ 0.5 s and ≤ 1.2 × the file size.
//!
//! ```text
//! cargo run --release -p butd-caffe --example bench_read -- [MODEL] [--iters N]
//! ```
//! MODEL defaults to `$BUTD_CACHE/synthetic.caffemodel` (make it with
//! `butd synth -o $BUTD_CACHE/synthetic.caffemodel`; `scripts/bench.sh` does).
//!
//! Two passes, in this order because peak RSS (VmHWM) only grows:
//! 1. streaming: each blob converted in chunks of 1 Mi values into one reused buffer, the way
//!    a converter writing tensors out would do it (`read_f32_at`);
//! 2. whole blobs: `to_vec_f32` for every blob, each Vec dropped before the next.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use butd_caffe::CaffeModel;

const TARGET_WALL: Duration = Duration::from_millis(500);
const TARGET_RSS_FACTOR: f64 = 1.2;
const CHUNK: usize = 1 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut path = None;
    let mut iters = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iters" => iters = args.next().ok_or("--iters needs a number")?.parse()?,
            _ => path = Some(PathBuf::from(a)),
        }
    }
    let path = match path {
        Some(p) => p,
        None => {
            PathBuf::from(std::env::var("BUTD_CACHE").map_err(|_| "give MODEL or set BUTD_CACHE")?)
                .join("synthetic.caffemodel")
        }
    };
    let iters = iters.max(1);
    let file_len = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    println!(
        "model: {} ({} bytes), {iters} iterations per pass",
        path.display(),
        file_len
    );

    let parse = time(iters, || {
        let model = CaffeModel::open(&path).expect("open");
        model.layers().len() as f64
    });
    report("parse only (open + layer table)", &parse, None);

    let mut buf = vec![0f32; CHUNK];
    let streaming = time(iters, || {
        let model = CaffeModel::open(&path).expect("open");
        let mut sum = 0f64;
        for blob in model.layers().iter().flat_map(|l| &l.blobs) {
            for first in (0..blob.len()).step_by(CHUNK) {
                let out = &mut buf[..CHUNK.min(blob.len() - first)];
                model.read_f32_at(blob, first, out);
                sum += out.iter().map(|&v| f64::from(v)).sum::<f64>();
            }
        }
        sum
    });
    let rss_streaming = peak_rss();
    report(
        "parse + convert all (streaming, 1 Mi chunks)",
        &streaming,
        Some(rss_streaming),
    );

    let whole = time(iters, || {
        let model = CaffeModel::open(&path).expect("open");
        let mut sum = 0f64;
        for blob in model.layers().iter().flat_map(|l| &l.blobs) {
            sum += model
                .to_vec_f32(blob)
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>();
        }
        sum
    });
    let rss_whole = peak_rss();
    report(
        "parse + convert all (to_vec_f32 per blob)",
        &whole,
        Some(rss_whole),
    );

    let best = streaming.times[0];
    let rss_limit = (file_len as f64 * TARGET_RSS_FACTOR) as u64;
    println!();
    println!(
        "target wall ≤ {:.3} s: streaming {:.3} s {}",
        TARGET_WALL.as_secs_f64(),
        best.as_secs_f64(),
        verdict(best <= TARGET_WALL)
    );
    for (what, rss) in [("streaming", rss_streaming), ("to_vec_f32", rss_whole)] {
        println!(
            "target peak RSS ≤ {TARGET_RSS_FACTOR} × file = {:.1} MB: {what} {:.1} MB = {:.3} × file {}",
            mb(rss_limit),
            mb(rss),
            rss as f64 / file_len as f64,
            verdict(rss <= rss_limit)
        );
    }
    Ok(())
}

struct Timing {
    /// Sorted, fastest first.
    times: Vec<Duration>,
    checksum: f64,
}

fn time(iters: usize, mut f: impl FnMut() -> f64) -> Timing {
    let mut times = Vec::with_capacity(iters);
    let mut checksum = 0.0;
    for _ in 0..iters {
        let t = Instant::now();
        checksum = std::hint::black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    Timing { times, checksum }
}

fn report(what: &str, t: &Timing, rss: Option<u64>) {
    let median = t.times[t.times.len() / 2];
    print!(
        "{what:<46} best {:.3} s  median {:.3} s  worst {:.3} s  (checksum {:.6e})",
        t.times[0].as_secs_f64(),
        median.as_secs_f64(),
        t.times[t.times.len() - 1].as_secs_f64(),
        t.checksum
    );
    if let Some(rss) = rss {
        print!("  peak RSS so far {:.1} MB", mb(rss));
    }
    println!();
}

/// Peak resident set size in bytes (`VmHWM` of /proc/self/status); 0 where unavailable.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "OK"
    } else {
        "MISSED"
    }
}
