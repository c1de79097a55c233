#!/usr/bin/env bash
# Benchmarks, each printing its figures next to the target and the yardstick.
#   scripts/bench.sh read|convert|extract|verify|verify-tsv|host|resize|all
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
source scripts/env.sh
what="${1:-all}"
run() { echo "== bench $1"; shift; "$@"; }
case "$what" in
  read|all)    run read    cargo run -q --release -p butd-caffe   --example bench_read ;;&
  convert|all) run convert cargo run -q --release -p butd-mapping --example bench_convert ;;&
  extract|all) run extract cargo run -q --release -p butd-model   --example bench_extract ;;&
  verify|all)  run verify  cargo run -q --release -p butd-verify  --example bench_verify ;;&
  verify-tsv|all) run verify-tsv cargo run -q --release -p butd-verify --example bench_verify_tsv ;;&
  host|all)    run host    cargo run -q --release -p butd-model   --example bench_host_layers ;;&
  resize|all)  run resize  cargo bench -q -p butd-preprocess --bench resize ;;&
  read|convert|extract|verify|verify-tsv|host|resize|all) ;;
  *) echo "usage: scripts/bench.sh read|convert|extract|verify|verify-tsv|host|resize|all" >&2; exit 2 ;;
esac
