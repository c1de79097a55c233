//! The mappings and manifests of `mappings/`, compiled in so the binary works from anywhere.

/// Built-in mapping names (file stems in `mappings/`).
pub const MAPPING_NAMES: [&str; 1] = ["caffe-to-hf-frcnn"];

/// The text of a built-in mapping.
pub fn mapping(name: &str) -> Option<&'static str> {
    match name.strip_suffix(".toml").unwrap_or(name) {
        "caffe-to-hf-frcnn" => Some(include_str!("../../../mappings/caffe-to-hf-frcnn.toml")),
        _ => None,
    }
}

/// The text of a built-in target manifest, by file name.
pub fn manifest(file: &str) -> Option<&'static str> {
    match file {
        "hf-frcnn.manifest.json" => Some(include_str!("../../../mappings/hf-frcnn.manifest.json")),
        _ => None,
    }
}
