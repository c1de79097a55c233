#!/usr/bin/env bash
# Puts `butd` (and `butd-extract`, which `butd extract` runs) on PATH: builds both in release
# mode and links them into BIN_DIR (default ~/.cargo/bin, where rustup already put cargo).
#
#   scripts/install.sh            symlinks: later `cargo build --release` updates them
#   COPY=1 scripts/install.sh     copies instead (the clone can then be moved or deleted)
#
# Neither needs scripts/env.sh afterwards: butd-extract carries the path of the libtorch it was
# built against (its RUNPATH), and `butd extract` says what to do if that libtorch has gone.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -d "$BUTD_VENV" ] || bash "$BUTD_ROOT/scripts/setup.sh"
butd_build
bin="${BIN_DIR:-${CARGO_HOME:-$HOME/.cargo}/bin}"
mkdir -p "$bin"
for exe in butd butd-extract; do
  if [ "${COPY:-0}" = 1 ]; then
    install -m 755 "$BUTD_ROOT/target/release/$exe" "$bin/$exe"
  else
    ln -sf "$BUTD_ROOT/target/release/$exe" "$bin/$exe"
  fi
done
echo "installed butd and butd-extract in $bin"
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "note: $bin is not on PATH; add it, e.g. echo 'export PATH=\"$bin:\$PATH\"' >> ~/.bashrc" ;;
esac
