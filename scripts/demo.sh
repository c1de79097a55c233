#!/usr/bin/env bash
# The README's main-job command, on the embedded sample: regenerate the synthetic BUTD
# caffemodel from ../shared/golden, inspect it, convert it to the Hugging Face layout, extract
# region features for the golden images and verify them against the real Caffe outputs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
source scripts/env.sh
shared="${BUTD_SHARED:-$here/../shared}"
butd="$here/target/release/butd"
model="$BUTD_CACHE/synthetic.caffemodel"
weights="$BUTD_CACHE/synthetic-hf.safetensors"
out="$BUTD_CACHE/demo-records"

[ -f "$model" ] || { python3 "$shared/golden/make_synthetic_caffemodel.py" "$model.tmp" && mv "$model.tmp" "$model"; }
"$butd" inspect "$model"
"$butd" convert "$model" --map mappings/caffe-to-hf-frcnn.toml -o "$weights"
# extract exits 1 because chelsea_micro has no proposals (Caffe itself crashes on it): it gets an
# empty record and a failures.tsv line, and verify checks exactly that.
"$butd" extract --weights "$weights" --dump-activations --out "$out" "$shared"/golden/images/* || [ $? -eq 1 ]
"$butd" verify --golden "$shared/golden" --candidate "$out" --report demo
