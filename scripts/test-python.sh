#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest): installs the package from this checkout
# into the project's venv (scripts/install-python.sh), then runs pytest against the synthetic
# caffemodel and the repository's golden/ (override with BUTD_CAFFEMODEL / BUTD_GOLDEN).
# pytest prints its own closing line ("N passed, N failed in …"); exit status is pytest's, and
# "no tests collected" (pytest's 5) is a failure: this suite is never empty.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BUTD_ROOT"
python="$BUTD_VENV/bin/python"
bash scripts/install-python.sh "$python"
butd_build
export BUTD_CAFFEMODEL="${BUTD_CAFFEMODEL:-$(synthetic_model)}"
export BUTD_GOLDEN="${BUTD_GOLDEN:-$BUTD_ROOT/golden}"

status=0
"$python" -m pytest -p no:cacheprovider -q python/tests "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test-python: pytest collected no tests (python/tests is never empty): failing" >&2
fi
exit "$status"
