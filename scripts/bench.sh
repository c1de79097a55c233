#!/usr/bin/env bash
# Benchmarks, each printing its figures next to the target and the yardstick.
#   scripts/bench.sh read|convert|extract|verify|verify-tsv|host|resize|all
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BUTD_ROOT"
what="${1:-all}"
# read and convert time the synthetic model in the cache: write it first when missing.
case "$what" in read|convert|all) butd_build; synthetic_model >/dev/null ;; esac
run() { echo "== bench $1"; shift; "$@"; }
case "$what" in
  read|all)    run read    cargo run -q --release -p butd-caffe   --example bench_read ;;&
  convert|all) run convert cargo run -q --release -p butd-mapping --example bench_convert ;;&
  extract|all) run extract cargo run -q --release -p butd-model   --example bench_extract ;;&
  verify|all)  run verify  cargo run -q --release -p butd-verify  --example bench_verify ;;&
  verify-tsv|all) run verify-tsv cargo run -q --release -p butd-verify --example bench_verify_tsv ;;&
  host|all)    run host    cargo run -q --release -p butd-host    --example bench_host_layers ;;&
  resize|all)  run resize  cargo bench -q -p butd-preprocess --bench resize ;;&
  read|convert|extract|verify|verify-tsv|host|resize|all) ;;
  *) echo "usage: scripts/bench.sh read|convert|extract|verify|verify-tsv|host|resize|all" >&2; exit 2 ;;
esac
