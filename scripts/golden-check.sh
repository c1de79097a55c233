#!/usr/bin/env bash
# The parity gate: convert the synthetic caffemodel with the built-in HF mapping, extract every
# golden image with the reference network (CPU, exact mode, all activations), and verify the
# records against the real Caffe outputs in ../shared/golden with the thresholds of parity.toml.
# Exit status: 0 when every image is within tolerance (tie-explained divergences are reported),
# 1 when the gate is breached.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
source scripts/env.sh
shared="${BUTD_SHARED:-$here/../shared}"
cargo build -q --release -p butd -p butd-extract
butd="$here/target/release/butd"
model="$BUTD_CACHE/synthetic.caffemodel"
weights="$BUTD_CACHE/synthetic-hf.safetensors"
out="$BUTD_CACHE/golden-check"

[ -f "$model" ] || { python3 "$shared/golden/make_synthetic_caffemodel.py" "$model.tmp.$$" && mv "$model.tmp.$$" "$model"; }
"$butd" convert "$model" --map mappings/caffe-to-hf-frcnn.toml -o "$weights"
rm -rf "$out"
# extract exits 1 when an image fails; chelsea_micro must (Caffe itself crashes on it), and the
# verifier checks that its record is the expected "no proposals" one. Exit 2 (could not start) stops here.
"$butd" extract --weights "$weights" --dump-activations --out "$out" "$shared"/golden/images/* || [ $? -eq 1 ]
"$butd" verify --golden "$shared/golden" --candidate "$out" --thresholds parity.toml --report golden-check
