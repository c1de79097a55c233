//! The synthetic BUTD model of `golden/SYNTHETIC.md`, generated on demand into
//! `$BUTD_CACHE` by the shared generator. (Also used by the `butd inspect` tests.)
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `shared/` beside the repository (CI clones it there), or `$BUTD_SHARED`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("BUTD_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("BUTD_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME or BUTD_CACHE")).join(".cache")
        });
    base.join("butd")
}

/// `(file name, --format, --dtype, size in bytes from SYNTHETIC.md §1)`.
pub const V2_FLOAT: (&str, &str, &str, u64) = ("synthetic.caffemodel", "v2", "float", 270_617_013);
pub const V1_FLOAT: (&str, &str, &str, u64) =
    ("synthetic_v1.caffemodel", "v1", "float", 338_256_987);
pub const V2_DOUBLE: (&str, &str, &str, u64) =
    ("synthetic_double.caffemodel", "v2", "double", 541_196_421);

static GENERATING: Mutex<()> = Mutex::new(());

/// The path of a synthetic model, generated first when missing or of the wrong size. Written
/// to a temporary name and renamed, so concurrent test processes never see a partial file.
pub fn synthetic_model((name, format, dtype, size): (&str, &str, &str, u64)) -> PathBuf {
    let _guard = GENERATING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir();
    let path = dir.join(name);
    if std::fs::metadata(&path).map(|m| m.len()).ok() == Some(size) {
        return path;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    let script = shared_dir().join("golden/make_synthetic_caffemodel.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&tmp)
        .args(["--format", format, "--dtype", dtype])
        .output()
        .unwrap_or_else(|e| panic!("running python3 {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        size,
        "{} has an unexpected size",
        path.display()
    );
    path
}
