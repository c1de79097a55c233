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
# The Python package (py): its own script; pytest's closing line is counted below too.
bash scripts/test-python.sh 2>&1 | tee -a "$log" || status=1
# One closing line for the whole run: cargo's per-binary "test result" lines and pytest's
# closing line ("== 3 failed, 24 passed in 9.1s ==") summed.
awk '/^test result:/ {p += $4; f += $6}
     /^=* ?[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)(,.*)? in [0-9.]+s( \([0-9:]+\))?( =+)?$/ {for (i = 2; i <= NF; i++) {
       if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^(failed|errors?)/) f += $(i-1)}}
     END {printf "tests: %d passed, %d failed\n", p, f}' "$log"
exit "$status"
