#!/usr/bin/env bash
# The README's test command: set-up (idempotent), the whole workspace's tests in release mode
# (one build profile shared with the binaries), a bounded fuzz run of the caffemodel decoder,
# and the parity gate of the reference network against the shared golden Caffe outputs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
BUTD_SKIP_BUILD=1 bash scripts/setup.sh
source scripts/env.sh
cargo test --release --workspace --no-fail-fast 2>&1
if [ -x scripts/golden-check.sh ]; then bash scripts/golden-check.sh; fi
if [ -x scripts/fuzz.sh ]; then bash scripts/fuzz.sh "${BUTD_FUZZ_SECONDS:-60}"; fi
