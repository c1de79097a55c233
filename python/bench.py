"""The Python call's time per image next to `butd extract`'s, on the same images.

    python python/bench.py WEIGHTS IMAGE... [--rounds 2]

Each round runs, one after the other on the same images: `butd-extract` (the standalone
command, a process of its own) and a Python process doing `butd.Extractor(WEIGHTS)` and
`extract(path, record=...)` per image — both write the same records, both include loading the
weights (and, for Python, `import torch`). Rounds alternate so that load from other processes
falls on both sides; the best round of each side is compared. Also printed: the in-process time
of `Extractor.extract` alone (loading excluded). Target: Python within 5 % of the command.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PYTHON_SIDE = """
import sys, time
t0 = time.perf_counter()
import butd
ex = butd.Extractor(sys.argv[1])
t1 = time.perf_counter()
for p in sys.argv[3:]:
    ex.extract(p, record=f"{sys.argv[2]}/{p.rsplit('/', 1)[-1].rsplit('.', 1)[0]}.safetensors")
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def timed(cmd: list, out: Path) -> tuple:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd[:2])}: exit {p.returncode}\n{p.stderr}")
    return wall, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cli", default=str(REPO / "target" / "release" / "butd-extract"))
    args = ap.parse_args()
    images = [os.path.abspath(p) for p in args.images]
    n = len(images)
    cli, py, load, extract = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            wall, _ = timed([args.cli, "--weights", args.weights, "--out", f"{tmp}/cli", *images],
                            Path(tmp) / "cli")
            cli.append(wall / n)
            wall, stdout = timed([sys.executable, "-c", PYTHON_SIDE, args.weights,
                                  f"{tmp}/py", *images], Path(tmp) / "py")
            py.append(wall / n)
            l, e = map(float, stdout.split())
            load.append(l)
            extract.append(e / n)
            print(f"round {r + 1}: butd extract {cli[-1]:.2f} s/image, python {py[-1]:.2f} "
                  f"s/image (import + load {l:.2f} s, extract() {e / n:.2f} s/image)",
                  file=sys.stderr)
    best_cli, best_py = min(cli), min(py)
    print(f"{n} images, best of {args.rounds} rounds, whole process incl. loading:")
    print(f"  butd extract (CLI)     {best_cli:.2f} s/image")
    print(f"  butd.Extractor.extract {best_py:.2f} s/image   ({100 * (best_py / best_cli - 1):+.1f} % "
          f"vs the CLI; target within 5 %)")
    print(f"  extract() alone        {min(extract):.2f} s/image (import torch + load: "
          f"{min(load):.2f} s)")


if __name__ == "__main__":
    main()
