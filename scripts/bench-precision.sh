#!/usr/bin/env bash
# Exact against fast modes (--precision bf16; tf32 too on CUDA) in one process on the golden
# images: s/image, img/s, GFLOP/s, speed-up, parity with Caffe and the verify gate per mode.
#   scripts/bench-precision.sh [--device cuda] [--quick] [--throughput 600x1000] …
# (arguments: crates/model/examples/bench_precision.rs)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BUTD_ROOT"
echo "== bench precision ($(uptime))"
cargo run -q --release -p butd-model --example bench_precision -- "$@"
