//! Fuzzes the caffemodel decoder: any input must give a model or an error, never a panic,
//! and a model's blobs must all be readable (see `exercise`). Run with `scripts/fuzz.sh`.
#![no_main]

#[path = "../../crates/caffe/tests/common/exercise.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exercise::exercise(data);
});
