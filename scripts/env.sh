# Sourced by every script: where libtorch lives and how tch finds it.
export BUTD_TORCH_VERSION=2.11.0
export BUTD_CACHE="${BUTD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/butd}"
export BUTD_VENV="$BUTD_CACHE/venv-torch-$BUTD_TORCH_VERSION"
export LIBTORCH_USE_PYTORCH=1
export PATH="$BUTD_VENV/bin:$PATH"
if [ -d "$BUTD_VENV" ]; then
  _torch_lib=$(ls -d "$BUTD_VENV"/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n1)
  [ -n "$_torch_lib" ] && export LD_LIBRARY_PATH="$_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
