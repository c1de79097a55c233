#!/usr/bin/env bash
# One-time set-up on a bare machine (rust toolchain, python3, pip): installs libtorch for tch
# (as PyTorch's wheel, in a per-user cache keyed by the torch version), the Python packages
# that tests and golden regeneration need, and builds the workspace.
# Idempotent: a second run reuses the cache and returns in seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/scripts/env.sh"

if [ ! -x "$BUTD_VENV/bin/python" ] || ! "$BUTD_VENV/bin/python" -c "import torch, numpy" 2>/dev/null; then
  echo "setup: creating $BUTD_VENV (torch $BUTD_TORCH_VERSION, a few GB; cached afterwards)" >&2
  python3 -m venv "$BUTD_VENV"
  "$BUTD_VENV/bin/python" -m pip install -q --upgrade pip
  "$BUTD_VENV/bin/python" -m pip install -q "torch==$BUTD_TORCH_VERSION"
fi
"$BUTD_VENV/bin/python" -m pip install -q -r "$here/scripts/requirements-test.txt"

if [ "${BUTD_SKIP_BUILD:-0}" != 1 ]; then
  cd "$here"
  cargo build --release --workspace --bins
fi
echo "setup: done (venv $BUTD_VENV)" >&2
