#!/usr/bin/env bash
# The README's test command: set-up (idempotent), the whole workspace's tests in release mode
# (one build profile shared with the binaries), a bounded fuzz run of the caffemodel decoder,
# and the parity gate of the reference network against the golden Caffe outputs in golden/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh   # also builds every binary (the extract tests run `butd` too)
source scripts/env.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace --no-fail-fast 2>&1 | tee "$log" || status=1
bash scripts/golden-check.sh || status=1
bash scripts/fuzz.sh "${BUTD_FUZZ_SECONDS:-60}" || status=1
# One closing line for the whole run: cargo's per-binary "test result" lines summed.
awk '/^test result:/ {p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$log"
exit "$status"
