#!/usr/bin/env bash
# Sharded extraction on one machine, the way a scheduler runs it (docs/extract.md §3): N
# independent `butd extract --shard i/N` processes, each into its own folder, then `butd
# merge`. Kill any shard (even with kill -9) and run this script again: every shard resumes
# where it stopped. Under Slurm, Kubernetes or Ray only the launching changes (docs/extract.md).
#
#   scripts/shard-example.sh [IMAGES_FOLDER] [N]      (default: golden/images, 2)
#
# Weights: $WEIGHTS, else the synthetic model converted into $BUTD_CACHE (as scripts/demo.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BUTD_ROOT"
images="${1:-$BUTD_GOLDEN/images}"
n="${2:-2}"
butd="$BUTD"
butd_build
weights="${WEIGHTS:-$(synthetic_weights)}"
out="${OUT:-$BUTD_CACHE/shard-example}"

# On one CPU machine the shards share its cores: give each its share of libtorch's threads.
cores=$(nproc)
threads=$(( cores / n > 0 ? cores / n : 1 ))
pids=()
for ((i = 0; i < n; i++)); do
    # What one Slurm array task / Kubernetes Job index / Ray task runs:
    "$butd" extract --weights "$weights" "$images" --threads "$threads" \
        --shard "$i/$n" --out "$out/shard-$i" --log-every 10 \
        2> >(sed "s/^/[shard $i] /" >&2) &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?   # 1 = some images failed (listed in failures.tsv); 2 = error
done
[ "$status" -le 1 ] || { echo "a shard failed with status $status" >&2; exit "$status"; }
"$butd" merge "$out"/shard-* --out "$out/merged"
echo "records: $(ls "$out/merged" | grep -c '\.safetensors$'); failures: $(($(wc -l < "$out/merged/failures.tsv") - 1))"
