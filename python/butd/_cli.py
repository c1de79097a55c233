"""The ``butd`` console script of the Python install: the Rust command line, in-process
(``butd extract`` included: the extension module links libtorch already)."""

import signal
import sys

import torch  # noqa: F401  (first: the extension links torch's libtorch)

from . import _butd


def main() -> int:
    # Behave as the native command: Ctrl-C ends it at once (records are written atomically, and
    # a rerun resumes), and `butd inspect … | head` ends quietly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return _butd.cli_main(["butd", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
