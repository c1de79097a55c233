//! A bounded, deterministic stand-in for the fuzzer (which needs nightly and runs through
//! `scripts/fuzz.sh`): small valid models of every encoding, mutated at random with a fixed
//! seed, must each parse or fail cleanly, and a parsed model's blobs must all be readable.

#[path = "common/encode.rs"]
mod encode;
#[path = "common/exercise.rs"]
mod exercise;

use encode::*;
use exercise::exercise;

const ITERATIONS: usize = 60_000;

/// Valid models covering the encodings the reader accepts.
fn seeds() -> Vec<Vec<u8>> {
    let values = [1.0f32, -0.5, 0.25, 3.0, 2.0, -1.0];
    vec![
        net(&[
            layer(
                "conv1",
                "Convolution",
                &[blob(&[2, 1, 1, 3], &values), blob(&[2], &values[..2])],
            ),
            layer("relu", "ReLU", &[]),
            layer("scalar", "Scale", &[blob(&[], &[0.75])]),
        ]),
        net(&[
            layer(
                "d",
                "X",
                &[[shape(&[3]), packed_f64(8, &[0.1, 0.2, 0.3])].concat()],
            ),
            layer(
                "u",
                "X",
                &[[shape(&[2, 1]), unpacked_f64(8, &[1.0, 2.0])].concat()],
            ),
            layer(
                "m",
                "X",
                &[[
                    shape(&[3]),
                    packed_f32(5, &[1.0]),
                    unpacked_f32(5, &[2.0, 3.0]),
                ]
                .concat()],
            ),
        ]),
        v1_net(&[
            v1_layer("conv", Some(4), &[legacy_blob([1, 1, 2, 3], &values)]),
            v1_layer(
                "bn",
                None,
                &[
                    legacy_blob([1, 1, 1, 2], &values[..2]),
                    legacy_blob([1, 1, 1, 1], &[2.0]),
                ],
            ),
        ]),
    ]
}

/// xorshift64*: a fixed-seed generator, so every run tests the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit: flip a bit, overwrite a byte with an interesting value, insert, delete,
/// truncate, or duplicate a range.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    const INTERESTING: [u8; 6] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a];
    let len = bytes.len();
    match rng.below(6) {
        0 if len > 0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            bytes[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => {
            let i = rng.below(len + 1);
            bytes.insert(i, rng.next() as u8);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(8.min(len - i));
            bytes.drain(i..i + n);
        }
        4 => bytes.truncate(rng.below(len + 1)),
        _ if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(16.min(len - i));
            let at = rng.below(len + 1);
            let piece = bytes[i..i + n].to_vec();
            bytes.splice(at..at, piece);
        }
        _ => {}
    }
}

#[test]
fn seeds_are_valid_models() {
    for seed in seeds() {
        assert!(exercise(&seed));
    }
}

#[test]
fn mutated_models_parse_or_fail_cleanly() {
    let seeds = seeds();
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut parsed = 0;
    for _ in 0..ITERATIONS {
        let mut bytes = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut bytes, &mut rng);
        }
        if exercise(&bytes) {
            parsed += 1;
        }
    }
    // Both outcomes must be exercised for the test to mean anything.
    assert!(
        parsed > ITERATIONS / 50 && parsed < ITERATIONS - ITERATIONS / 50,
        "{parsed} of {ITERATIONS} parsed"
    );
}

/// Writes the seeds as a fuzzing corpus into `$BUTD_FUZZ_SEEDS` (used by scripts/fuzz.sh).
#[test]
#[ignore = "writes files; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let dir =
        std::env::var_os("BUTD_FUZZ_SEEDS").expect("set BUTD_FUZZ_SEEDS to the corpus folder");
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    for (i, seed) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}.caffemodel")), seed).unwrap();
    }
}
