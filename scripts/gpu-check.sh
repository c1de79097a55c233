#!/usr/bin/env bash
# The GPU check, prepared to run in one call on a lent machine (≤ 5 minutes on a GPU):
#   scripts/gpu-check.sh --pack                 # here: build, copy stripped binaries to .device/bin
#   scripts/gpu-check.sh [--device cuda|cuda:N] # there (carry .device): synthetic weights, then
#                                               # bench_precision (exact, tf32, bf16)
#   scripts/gpu-check.sh --device cpu           # dry run here: the same steps, kept short (2
#                                               # golden images, 300×500, no time limit)
# It prints the device, per mode img/s on the golden images and at 600×1000 with 300 rois
# (batch 1: serial and pipelined; 4 images per Detector::detect_batch), the device memory in use, and the parity of each mode
# against golden/ with the verify gate (parity.toml for exact, --profile fast for the others).
# libtorch: this repository's venv (scripts/env.sh) when present, else the python3 torch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
device=cuda
pack=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --pack) pack=1; shift ;;
    *) echo "usage: scripts/gpu-check.sh [--pack] [--device cpu|cuda|cuda:N]" >&2; exit 2 ;;
  esac
done

source scripts/env.sh
if [ ! -d "$BUTD_VENV" ]; then
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

bin="$root/.device/bin"
if [ "$pack" = 1 ] || [ ! -x "$bin/bench_precision" ]; then
  cargo build -q --release -p butd -p butd-model --example bench_precision
  mkdir -p "$bin"
  strip -o "$bin/butd" target/release/butd
  strip -o "$bin/bench_precision" target/release/examples/bench_precision
  [ "$pack" = 1 ] && { du -sh "$bin"; echo "carry .device to the GPU machine"; exit 0; }
fi

# The synthetic weights, made on this machine (butd synth, then the built-in HF mapping).
mkdir -p "$BUTD_CACHE"
model="$BUTD_CACHE/synthetic.caffemodel"
weights="$BUTD_CACHE/synthetic-hf.safetensors"
[ -s "$model" ] || "$bin/butd" synth -o "$model"
[ -s "$weights" ] || "$bin/butd" convert "$model" --map mappings/caffe-to-hf-frcnn.toml -o "$weights"

echo "== device"
if [ "$device" = cpu ]; then
  lscpu | grep -E '^Model name' || true
  args=(--quick --throughput 300x500 --throughput-images 2 --batch 2)
  limit=0
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  args=(--throughput 600x1000 --throughput-images 20)
  limit=300
fi
echo "== bench_precision --device $device ${args[*]}"
timeout "$limit" "$bin/bench_precision" --device "$device" --weights "$weights" \
  --golden "$root/golden" "${args[@]}"
