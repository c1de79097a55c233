//! Shared test helpers. The synthetic model comes from butd-synth (one generator, one cache for
//! the whole workspace); the protobuf encoder is the caffe crate's test helper.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

#[path = "../../../caffe/tests/common/encode.rs"]
mod encode;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The synthetic BUTD model (golden/SYNTHETIC.md), `--format v2` or `v1`, f32 data.
pub fn synthetic_model(format: &str) -> PathBuf {
    let variant = match format {
        "v2" => butd_synth::Variant::V2_FLOAT,
        "v1" => butd_synth::Variant::V1_FLOAT,
        other => panic!("no synthetic model format {other}"),
    };
    butd_synth::cached(variant).expect("the synthetic model is written")
}

/// `(layer name, type, blobs as (shape, values))`.
pub type TinyLayer<'a> = (&'a str, &'a str, Vec<(Vec<usize>, Vec<f32>)>);

/// A tiny V2 caffemodel in memory.
pub fn tiny_model(layers: &[TinyLayer]) -> butd_caffe::CaffeModel {
    let layers: Vec<Vec<u8>> = layers
        .iter()
        .map(|(name, kind, blobs)| {
            let blobs: Vec<Vec<u8>> = blobs
                .iter()
                .map(|(shape, values)| {
                    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                    encode::blob(&dims, values)
                })
                .collect();
            encode::layer(name, kind, &blobs)
        })
        .collect();
    butd_caffe::CaffeModel::from_vec(encode::net(&layers)).expect("tiny model parses")
}

/// splitmix64: a small deterministic random source for test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32) * (1.0 / 8_388_608.0) - 1.0
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }
}
