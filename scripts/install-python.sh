#!/usr/bin/env bash
# Installs the Python package `butd` (import butd + the `butd` command) from this repository
# into a Python environment that has torch==2.11.0: by default the project's venv
# (scripts/setup.sh makes it), else the interpreter given as $1 (e.g. your venv's python).
#
#   scripts/install-python.sh                       # into ~/.cache/butd/venv-torch-2.11.0
#   scripts/install-python.sh ~/venvs/vqa/bin/python
#
# It is `pip install --no-build-isolation .` with scripts/env.sh's libtorch variables: the
# extension links the libtorch of the installed torch wheel (tch finds it through that
# interpreter's `import torch`), which pip's isolated build environment would not have.
# Shares target/ (release) with the workspace build, so nothing but the bindings is rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/scripts/env.sh"
python="${1:-$BUTD_VENV/bin/python}"
"$python" -c "import torch" 2>/dev/null || {
  echo "install-python: $python cannot import torch (pip install torch==$BUTD_TORCH_VERSION first, or run scripts/setup.sh)" >&2
  exit 2
}
"$python" -m pip install -q "maturin>=1.9,<2"
# tch's build script runs `python` to find torch: the target interpreter's folder goes first.
PATH="$(dirname "$python"):$PATH" "$python" -m pip install -q --no-build-isolation --no-deps "$here"
"$python" -c "import butd; print('install-python: butd installed in', butd.__file__)" >&2
