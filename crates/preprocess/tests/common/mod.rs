#![allow(dead_code)] // each test binary uses its own part of these helpers
//! Finding and reading the golden files of the repository's `golden/` (written by the real
//! cv2 + Caffe).

use std::path::PathBuf;

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../golden")
}

/// Every golden record: (stem, image file name), from `index.json`'s image list.
pub fn golden_images() -> Vec<(String, String)> {
    let dir = golden_dir().join("images");
    let mut images: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .map(|file| (file.rsplit_once('.').unwrap().0.to_string(), file))
        .collect();
    images.sort();
    images
}

/// One tensor of a golden file: shape, dtype name and raw little-endian bytes.
pub struct Tensor {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub bytes: Vec<u8>,
}

pub fn read_tensor(stem: &str, name: &str) -> Option<Tensor> {
    let path = golden_dir().join(format!("{stem}.safetensors"));
    let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&file).expect("golden safetensors parses");
    let t = st.tensor(name).ok()?;
    Some(Tensor {
        shape: t.shape().to_vec(),
        dtype: format!("{:?}", t.dtype()),
        bytes: t.data().to_vec(),
    })
}

impl Tensor {
    pub fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.dtype, "F32");
        self.bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}
