//! Synthetic final records shared by the verify benchmarks (included with `#[path]`): a golden
//! record of random boxes, features and labels, and a candidate off by about 1e-7, so that every
//! step of the comparison runs and the gate passes.
#![allow(dead_code)] // each benchmark uses a different subset

use std::path::{Path, PathBuf};

use butd_verify::{Dtype, Record, Tensor};

/// Image size of every synthetic record: all boxes lie inside it (LXMERT's loaders check).
pub const IMAGE_W: usize = 720;
pub const IMAGE_H: usize = 640;

pub const FEATURE_DIM: usize = 2048;

pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1) (xorshift64*).
    pub fn next(&mut self) -> f64 {
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
pub fn records(seed: u64, k: usize) -> (Record, Record) {
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
    g.metadata.insert("orig_h".into(), IMAGE_H.to_string());
    g.metadata.insert("orig_w".into(), IMAGE_W.to_string());
    let mut c = g.clone();
    for v in &mut c.tensors.get_mut("features").expect("written above").values {
        *v = f64::from((*v * (1.0 + 1e-7 * (2.0 * rng.next() - 1.0))) as f32);
    }
    for v in &mut c.tensors.get_mut("boxes").expect("written above").values {
        *v = f64::from((*v + 1e-4 * rng.next()) as f32);
    }
    (g, c)
}

/// The value after `flag` in `args`, else `default`; exits with a message on a bad value.
pub fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
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

/// `--threads` (default: every core) and `--dir` (default `$BUTD_CACHE/<name>`, else the temp
/// directory's).
pub fn threads_and_dir(args: &[String], name: &str) -> (usize, PathBuf) {
    let threads = arg(
        args,
        "--threads",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let cache = std::env::var_os("BUTD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    (threads, arg(args, "--dir", cache.join(name)))
}

/// The generated data in `dir` is kept between runs, stamped with its parameters `want` in
/// `params.txt`: returns `None` when the stamp matches (the data can be reused), else removes
/// the stale stamp (an interrupted generation is never reused) and returns a [`Stamp`] to
/// [`Stamp::write`] once the data is complete.
pub fn stale(dir: &Path, want: String) -> std::io::Result<Option<Stamp>> {
    let path = dir.join("params.txt");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()) {
        println!("reusing {}", dir.display());
        return Ok(None);
    }
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::remove_file(&path);
    Ok(Some(Stamp { path, want }))
}

pub struct Stamp {
    path: PathBuf,
    want: String,
}

impl Stamp {
    pub fn write(self) -> std::io::Result<()> {
        std::fs::write(&self.path, self.want)
    }
}

/// A target's verdict as the benchmarks print it.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The parity gate's verdict as the benchmarks print it.
pub fn gate(passed: bool) -> &'static str {
    if passed {
        "passed"
    } else {
        "FAILED"
    }
}
