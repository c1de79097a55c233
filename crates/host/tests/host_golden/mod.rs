//! Reading the repository's `golden/` for the host-layer parity tests (proposal layer,
//! selection).
//!
//! Each test binary uses a different subset of these helpers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../golden")
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

    /// Shape and values of a tensor of the given dtype, `N`-byte little-endian.
    fn typed<T, const N: usize>(
        &self,
        tensor: &str,
        dtype: Dtype,
        from_le: fn([u8; N]) -> T,
    ) -> (Vec<usize>, Vec<T>) {
        let view = self.view();
        let t = view
            .tensor(tensor)
            .unwrap_or_else(|e| panic!("{}: {tensor}: {e:?}", self.name));
        assert_eq!(t.dtype(), dtype, "{}: {tensor} dtype", self.name);
        let values = t
            .data()
            .chunks_exact(N)
            .map(|c| from_le(c.try_into().unwrap()))
            .collect();
        (t.shape().to_vec(), values)
    }

    pub fn f32(&self, tensor: &str) -> (Vec<usize>, Vec<f32>) {
        self.typed(tensor, Dtype::F32, f32::from_le_bytes)
    }

    pub fn f64(&self, tensor: &str) -> (Vec<usize>, Vec<f64>) {
        self.typed(tensor, Dtype::F64, f64::from_le_bytes)
    }

    pub fn i64(&self, tensor: &str) -> (Vec<usize>, Vec<i64>) {
        self.typed(tensor, Dtype::I64, i64::from_le_bytes)
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

/// Runs `check` (which lists an image's mismatches) on every image of `goldens` and fails with
/// all of them, each named by its image, under `heading`.
pub fn assert_no_mismatch(goldens: &[Golden], heading: &str, check: fn(&Golden) -> Vec<String>) {
    let failures: Vec<String> = goldens
        .iter()
        .flat_map(|g| {
            check(g)
                .into_iter()
                .map(move |e| format!("{}: {e}", g.name))
        })
        .collect();
    assert!(failures.is_empty(), "{heading}:\n{}", failures.join("\n"));
}
