//! The synthetic BUTD model of `golden/SYNTHETIC.md`, written on demand into `$BUTD_CACHE` by
//! `butd-synth` (the workspace's one generator). Also used by the mapping and `butd` CLI tests.
use std::path::PathBuf;

pub use butd_synth::Variant;
pub const V2_FLOAT: Variant = Variant::V2_FLOAT;
pub const V1_FLOAT: Variant = Variant::V1_FLOAT;
pub const V2_DOUBLE: Variant = Variant::V2_DOUBLE;

/// `$BUTD_CACHE`, else `$XDG_CACHE_HOME/butd`, else `~/.cache/butd` (as `scripts/env.sh`).
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

/// The path of a synthetic model, written first when missing or of the wrong size (to a
/// temporary name, then renamed, so concurrent test processes never see a partial file).
pub fn synthetic_model(variant: Variant) -> PathBuf {
    let path = cache_dir().join(variant.file_name());
    butd_synth::ensure(&path, variant)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}
