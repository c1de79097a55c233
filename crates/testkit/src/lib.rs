//! Test helpers shared by the model's and extract's tests and the extract benchmark: the
//! repository's `golden/`, and the synthetic weights converted with the built-in Hugging Face
//! mapping (generated once into `$BUTD_CACHE`).
//!
//! ```no_run
//! let weights = butd_testkit::synthetic_hf_weights();
//! assert!(weights.exists());
//! println!("{} golden images", butd_testkit::golden_images().len());
//! ```
//!
//! # Design
//! A dev-dependency crate instead of a module each test binary includes by path
//! (`#[path = "../../model/tests/support/mod.rs"]`): one compiled copy, ordinary imports, no
//! `dead_code` allowance. It links no libtorch; the tests that use it bring the model.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden")
}

/// A unique temporary name beside `path`, renamed over it when complete, so concurrent test
/// binaries never read half a file.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The synthetic caffemodel of `golden/SYNTHETIC.md`, written by `butd-synth` when missing.
pub fn synthetic_caffemodel() -> PathBuf {
    butd_synth::cached(butd_synth::Variant::V2_FLOAT)
        .unwrap_or_else(|e| panic!("the synthetic caffemodel: {e}"))
}

/// The synthetic model converted by butd-mapping with the built-in `caffe-to-hf-frcnn`
/// mapping: what `butd convert MODEL --map mappings/caffe-to-hf-frcnn.toml` writes. Converted
/// afresh once per test process (0.3 s), so the tests always exercise the current mapping and
/// converter, never a stale cached file; written under a temporary name and renamed, so
/// concurrent test processes never read half a file.
pub fn synthetic_hf_weights() -> PathBuf {
    static CONVERTED: OnceLock<PathBuf> = OnceLock::new();
    CONVERTED
        .get_or_init(|| {
            let caffemodel = synthetic_caffemodel();
            let path = butd_synth::cache_dir().join("synthetic-hf-frcnn.safetensors");
            let model = butd_caffe::CaffeModel::open(&caffemodel).unwrap();
            let mapping = butd_mapping::Mapping::builtin("caffe-to-hf-frcnn").unwrap();
            let target = mapping.target_manifest().unwrap();
            let plan =
                butd_mapping::Plan::new(&mapping, &butd_mapping::Inventory::of(&model), &target);
            let tmp = temp_beside(&path);
            plan.write_safetensors(
                &mapping,
                &model,
                &tmp,
                &butd_mapping::WriteOptions::default(),
            )
            .unwrap_or_else(|e| panic!("converting {}: {e}", caffemodel.display()));
            std::fs::rename(&tmp, &path).unwrap();
            path
        })
        .clone()
}

/// The golden images (`index.json` order) with their tier.
pub fn golden_images() -> Vec<(String, u64)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden_dir().join("index.json")).unwrap()).unwrap();
    index["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["image"].as_str().unwrap().to_string(),
                e["tier"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// CPU time (user + system) of this process so far, in seconds: on a shared machine a
/// steadier figure than wall time.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
}
