# Sourced by the scripts (not run): the repository root, the libtorch environment of env.sh,
# and the steps several scripts share. Everything a script reads is inside the repository
# (golden/, mappings/) or in the cache ($BUTD_CACHE).
BUTD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$BUTD_ROOT/scripts/env.sh"
BUTD_GOLDEN="$BUTD_ROOT/golden"
BUTD="$BUTD_ROOT/target/release/butd"

# butd_build: the `butd` and `butd-extract` binaries (cargo rebuilds what is stale).
butd_build() {
  (cd "$BUTD_ROOT" && cargo build -q --release -p butd -p butd-extract)
}

# synthetic_model: prints the path of the synthetic caffemodel of golden/SYNTHETIC.md in the
# cache, written by `butd synth` when missing (about a second; bit for bit the golden run's file).
synthetic_model() {
  local model="$BUTD_CACHE/synthetic.caffemodel"
  if [ ! -s "$model" ]; then
    mkdir -p "$BUTD_CACHE"
    "$BUTD" synth -o "$model" >&2
  fi
  echo "$model"
}

# synthetic_weights: prints the path of the synthetic model converted to the Hugging Face
# layout with the built-in mapping; converted afresh when FRESH=1 or missing.
synthetic_weights() {
  local weights="$BUTD_CACHE/synthetic-hf.safetensors" model
  model=$(synthetic_model)
  if [ "${FRESH:-0}" = 1 ] || [ ! -s "$weights" ]; then
    "$BUTD" convert "$model" --map "$BUTD_ROOT/mappings/caffe-to-hf-frcnn.toml" -o "$weights" >&2
  fi
  echo "$weights"
}
