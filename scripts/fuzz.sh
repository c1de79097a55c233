#!/usr/bin/env bash
# Fuzzes the caffemodel decoder (fuzz/fuzz_targets/decode.rs) with cargo-fuzz for a bounded
# time: scripts/fuzz.sh [SECONDS] (default 60). Seeds the corpus with small valid models of
# every encoding (crates/caffe/tests/mutations.rs). Crashes land in fuzz/artifacts/decode/.
#
# libFuzzer needs nightly: `cargo +nightly` when rustup has it; otherwise the stable compiler
# with RUSTC_BOOTSTRAP=1 and no sanitizer (the reader has no unsafe code to instrument).
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
[ -f scripts/env.sh ] && source scripts/env.sh

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

corpus="$root/fuzz/corpus/decode"
mkdir -p "$corpus"
BUTD_FUZZ_SEEDS="$corpus" cargo test --release -q -p butd-caffe --test mutations -- --ignored write_fuzz_seeds >/dev/null

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz run)
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none)
fi
cd fuzz
"${fuzz[@]}" --release decode "$corpus" -- -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
