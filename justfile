# Common jobs. Each recipe is also written out in the README for people without `just`.
set shell := ["bash", "-euo", "pipefail", "-c"]

# Install libtorch (PyTorch wheel in a cached venv), Python test deps, build everything
setup:
    bash scripts/setup.sh

# The main job on the embedded sample: synthetic model → inspect → convert → extract → verify
demo:
    bash scripts/demo.sh

# All tests, a bounded fuzz run and the golden parity gate (what CI runs)
test:
    bash scripts/test.sh

# Parity gate of the reference network against ../shared/golden
golden-check:
    bash scripts/golden-check.sh

# Fuzz the caffemodel decoder for SECONDS
fuzz seconds="60":
    bash scripts/fuzz.sh {{seconds}}

# Every benchmark
bench: bench-read bench-convert bench-extract bench-verify bench-verify-tsv

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

# Winoground walk-through: verify against an LXMERT TSV and a UNITER img_db
winoground:
    bash scripts/winoground-walkthrough.sh
