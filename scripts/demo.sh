#!/usr/bin/env bash
# The README's main-job command, on the embedded sample: write the synthetic BUTD caffemodel
# (`butd synth`, the file the golden Caffe outputs in golden/ were computed from), inspect it,
# convert it to the Hugging Face layout, extract region features for the golden images and
# verify them against the real Caffe outputs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh"
source "$here/scripts/lib.sh"
cd "$BUTD_ROOT"
out="$BUTD_CACHE/demo-records"

model=$(synthetic_model)
"$BUTD" inspect "$model"
weights=$(FRESH=1 synthetic_weights)
# extract exits 1 because chelsea_micro has no proposals (Caffe itself crashes on it): it gets an
# empty record and a failures.tsv line, and verify checks exactly that.
"$BUTD" extract --weights "$weights" --dump-activations --out "$out" "$BUTD_GOLDEN/images" || [ $? -eq 1 ]
"$BUTD" verify --golden "$BUTD_GOLDEN" --candidate "$out" --report demo
