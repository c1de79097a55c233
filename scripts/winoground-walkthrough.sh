#!/usr/bin/env bash
# The Winoground walk-through of docs/verify.md, on the synthetic golden set: a UNITER user's
# Caffe features (an LXMERT obj36 TSV and a UNITER img_db, written here by butd's own writers
# from the golden records), checked against a port's features with `butd verify`; three
# perturbed ports (boxes reordered, a box dropped, float16 features) and what verify says about
# each; then downstream accuracy parity with `butd verify scores`.
#
#   scripts/winoground-walkthrough.sh          (KEEP=1 keeps the work directory)
#
# Every step checks verify's exit status (0 = gate passed, 1 = gate failed); the script fails
# if one is not what the walk-through says.
set -euo pipefail
BUTD_OVERRIDE="${BUTD:-}"
source "$(dirname "$0")/lib.sh"
cd "$BUTD_ROOT"
BUTD="${BUTD_OVERRIDE:-$BUTD}"
[ -x "$BUTD" ] || cargo build --release -p butd
golden="$BUTD_GOLDEN"
work=$(mktemp -d "${TMPDIR:-/tmp}/butd-winoground.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
reports="$work/reports"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# expect STATUS COMMAND…: runs the command (its output shown) and checks its exit status.
expect() {
  local want=$1 rc=0
  shift
  echo "\$ ${*/#$BUTD/butd}"
  "$@" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "walk-through: expected exit status $want, got $rc" >&2
    exit 1
  fi
}
verify() { expect "$1" "$BUTD" verify --quiet --reports-dir "$reports" "${@:2}"; }

step "1. The Caffe features a UNITER / LXMERT user already has"
# A real user has these files from the Caffe extraction their model was trained on.
"$BUTD" export --records "$golden" --format lxmert-tsv -o "$work/caffe_obj36.tsv"
"$BUTD" export --records "$golden" --format uniter-lmdb -o "$work/img_db"
ls -l "$work/caffe_obj36.tsv" "$work/img_db"/*

step "2. A port's features for the same images (here: the same run's records) — no difference"
verify 0 --golden "$work/caffe_obj36.tsv" --candidate "$golden" --report same-run-tsv
verify 0 --golden "$work/img_db" --candidate "$golden" --report same-run-img-db

step "3. Three perturbed ports (one image, coffee, changed in each)"
# The record's tensors whose rows are the final regions, as the record contract names them.
"$BUTD" show "$golden/coffee.safetensors" --tensors --json >"$work/coffee_tensors.json"
python3 - "$golden" "$work" "$work/coffee_tensors.json" <<'EOF'
import json, os, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

golden, work, tensors = sys.argv[1:4]
STEM = "coffee"
with open(tensors) as f:
    FINAL = [t["name"] for t in json.load(f) if t["role"] == "final"]

def load():
    with safe_open(f"{golden}/{STEM}.safetensors", "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()

def variant(name, edit):
    d = f"{work}/{name}"
    os.makedirs(d)
    for fn in sorted(os.listdir(golden)):
        if fn.endswith(".safetensors") and fn != f"{STEM}.safetensors":
            os.symlink(os.path.abspath(f"{golden}/{fn}"), f"{d}/{fn}")
    tensors, meta = load()
    edit(tensors)
    save_file(tensors, f"{d}/{STEM}.safetensors", metadata=meta)
    print(f"{d}: {STEM} {name}")

def rows(t, idx):
    for k in FINAL:
        if k in t:
            t[k] = np.ascontiguousarray(t[k][idx])

k = len(load()[0]["keep"])
variant("reordered", lambda t: rows(t, [1, 0] + list(range(2, k))))   # first two boxes swapped
variant("dropped", lambda t: rows(t, [i for i in range(k) if i != 3]))  # box 3 lost
def fp16(t):
    t["features"] = t["features"].astype(np.float16).astype(np.float32)
variant("fp16", fp16)                                                   # features via float16
EOF
# The first two ports deliver LXMERT TSVs, like the Caffe one: two TSVs, the larger streamed.
for v in reordered dropped; do
  "$BUTD" export --records "$work/$v" --format lxmert-tsv -o "$work/${v}_obj36.tsv"
done

step "3a. Boxes in another order: the same regions, matched up to reordering; the order is what fails"
verify 1 --golden "$work/caffe_obj36.tsv" --candidate "$work/reordered_obj36.tsv" --report reordered

step "3b. A box dropped: one golden region without a match"
verify 1 --golden "$work/caffe_obj36.tsv" --candidate "$work/dropped_obj36.tsv" --report dropped

step "3c. float16 features: beyond the float32 tolerance of the TSV ..."
verify 1 --golden "$work/caffe_obj36.tsv" --candidate "$work/fp16" --report fp16-vs-tsv
step "    ... but within the float16 bound of the img_db, which stores float16 itself"
verify 0 --golden "$work/img_db" --candidate "$work/fp16" --report fp16-vs-img-db

step "4. A COCO-sized file is checked on a reproducible random subset"
verify 0 --golden "$work/caffe_obj36.tsv" --candidate "$golden" --sample 3 --seed 7 --report sample

step "5. Downstream accuracy parity: the same model's Winoground scores on both feature sets"
python3 - "$work" <<'EOF'
import json, random, sys
work = sys.argv[1]
# 400 examples, s(caption, image) for the 2×2 pairs. B = the same model on the port's
# features: scores move by a little, and a few near-ties flip.
rng = random.Random(8)
with open(f"{work}/scores_caffe.jsonl", "w") as a, open(f"{work}/scores_port.jsonl", "w") as b:
    for i in range(400):
        s = {k: rng.gauss(0, 1) for k in ("c0_i0", "c0_i1", "c1_i0", "c1_i1")}
        a.write(json.dumps({"id": f"ex_{i}", **s}) + "\n")
        t = {k: v + rng.gauss(0, 0.02) for k, v in s.items()}
        b.write(json.dumps({"id": f"ex_{i}", **t}) + "\n")
EOF
expect 0 "$BUTD" verify scores --a "$work/scores_caffe.jsonl" --b "$work/scores_port.jsonl" \
  --task winoground --json "$work/scores.json"
step "    --require-equal fails when any example's outcome changes"
expect 1 "$BUTD" verify scores --a "$work/scores_caffe.jsonl" --b "$work/scores_port.jsonl" \
  --task winoground --require-equal

step "walk-through complete: every verdict as expected"
