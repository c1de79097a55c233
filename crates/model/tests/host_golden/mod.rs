//! Reading `shared/golden` for the host-layer parity tests (proposal layer, selection).
//!
//! Each test binary uses a different subset of these helpers.
//!
//! The shared folder is `../shared` beside the repository (as CI clones it), or `$BUTD_SHARED`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

pub fn golden_dir() -> PathBuf {
    let shared = std::env::var_os("BUTD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("golden")
}

/// One golden file: its bytes, metadata and `index.json` entry.
pub struct Golden {
    pub name: String,
    bytes: Vec<u8>,
    pub metadata: HashMap<String, String>,
    pub index: serde_json::Value,
}

/// Every image of `index.json`, in its order.
pub fn all_golden() -> Vec<Golden> {
    let dir = golden_dir();
    let index_path = dir.join("index.json");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&index_path).unwrap_or_else(|e| panic!("{}: {e}", index_path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", index_path.display()));
    let images = index["images"]
        .as_array()
        .expect("index.json: `images` array");
    assert!(!images.is_empty(), "index.json lists no image");
    images
        .iter()
        .map(|entry| {
            let file = entry["file"].as_str().expect("index.json: `file`");
            let path = dir.join(file);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (_, meta) = SafeTensors::read_metadata(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            let metadata = meta.metadata().clone().unwrap_or_default();
            Golden {
                name: file.trim_end_matches(".safetensors").to_string(),
                bytes,
                metadata,
                index: entry.clone(),
            }
        })
        .collect()
}

impl Golden {
    fn view(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap_or_else(|e| panic!("{}: {e:?}", self.name))
    }

    pub fn has(&self, tensor: &str) -> bool {
        self.view().names().iter().any(|n| n.as_str() == tensor)
    }

    pub fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .unwrap_or_else(|| panic!("{}: metadata key `{key}` missing", self.name))
    }

    /// Shape and raw little-endian bytes of a tensor of the given dtype.
    fn raw(&self, tensor: &str, dtype: Dtype) -> (Vec<usize>, Vec<u8>) {
        let view = self.view();
        let t = view
            .tensor(tensor)
            .unwrap_or_else(|e| panic!("{}: {tensor}: {e:?}", self.name));
        assert_eq!(t.dtype(), dtype, "{}: {tensor} dtype", self.name);
        (t.shape().to_vec(), t.data().to_vec())
    }

    pub fn f32(&self, tensor: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, b) = self.raw(tensor, Dtype::F32);
        (
            shape,
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    pub fn f64(&self, tensor: &str) -> (Vec<usize>, Vec<f64>) {
        let (shape, b) = self.raw(tensor, Dtype::F64);
        (
            shape,
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    pub fn i64(&self, tensor: &str) -> (Vec<usize>, Vec<i64>) {
        let (shape, b) = self.raw(tensor, Dtype::I64);
        (
            shape,
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    /// Golden `rois[:, 1:5]` as boxes.
    pub fn rois(&self) -> Vec<[f32; 4]> {
        let (shape, v) = self.f32("rois");
        assert_eq!(shape[1], 5, "{}: rois must be R × 5", self.name);
        v.chunks_exact(5)
            .map(|r| [r[1], r[2], r[3], r[4]])
            .collect()
    }
}
