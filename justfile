# Common jobs. Each recipe is also written out in the README for people without `just`.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Install libtorch (PyTorch wheel in a cached venv), Python test deps, build everything
setup:
    bash scripts/setup.sh

# Put `butd` and `butd-extract` on PATH (links in ~/.cargo/bin; COPY=1 copies)
install:
    bash scripts/install.sh

# The main job on the embedded sample: synthetic model → inspect → convert → extract → verify
demo:
    bash scripts/demo.sh

# All tests, a bounded fuzz run and the golden parity gate (what CI runs)
test:
    bash scripts/test.sh

# Parity gate of the reference network against the golden Caffe outputs in golden/
golden-check:
    bash scripts/golden-check.sh

# Fuzz the caffemodel decoder for SECONDS
fuzz seconds="60":
    bash scripts/fuzz.sh {{seconds}}

# Every benchmark (the seven below, in this order)
bench:
    bash scripts/bench.sh all

bench-read:
    bash scripts/bench.sh read

bench-convert:
    bash scripts/bench.sh convert

bench-extract:
    bash scripts/bench.sh extract

bench-verify:
    bash scripts/bench.sh verify

bench-verify-tsv:
    bash scripts/bench.sh verify-tsv

bench-host:
    bash scripts/bench.sh host

bench-resize:
    bash scripts/bench.sh resize

# Exact vs --precision bf16 on the golden images: speed-up and parity with Caffe, one process
bench-precision:
    bash scripts/bench-precision.sh

# The prepared GPU check; `--device cpu` is its dry run here (docs/model.md, "Fast modes")
gpu-check device="cuda":
    bash scripts/gpu-check.sh --device {{device}}

# Write the synthetic BUTD caffemodel of golden/SYNTHETIC.md to FILE
synth file="synthetic.caffemodel":
    cargo run -q --release -p butd -- synth -o {{file}}

# Winoground walk-through: verify against an LXMERT TSV and a UNITER img_db
winoground:
    bash scripts/winoground-walkthrough.sh
