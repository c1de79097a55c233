#!/usr/bin/env bash
# The parity gate: convert the synthetic caffemodel with the built-in HF mapping, extract every
# golden image with the reference network (CPU, exact mode, all activations), and verify the
# records against the real Caffe outputs in golden/ with the thresholds of parity.toml.
# Exit status: 0 when every image is within tolerance (tie-explained divergences are reported),
# 1 when the gate is breached.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BUTD_ROOT"
butd_build
out="$BUTD_CACHE/golden-check"
weights=$(FRESH=1 synthetic_weights)
rm -rf "$out"
# extract exits 1 when an image fails; chelsea_micro must (Caffe itself crashes on it), and the
# verifier checks that its record is the expected "no proposals" one. Exit 2 (could not start) stops here.
"$BUTD" extract --weights "$weights" --dump-activations --out "$out" "$BUTD_GOLDEN/images" || [ $? -eq 1 ]
"$BUTD" verify --golden "$BUTD_GOLDEN" --candidate "$out" --thresholds parity.toml --report golden-check
