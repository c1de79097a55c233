"""The install itself: one libtorch with torch in either import order, the `butd` command of
the same install, and the README's Python quickstart, run as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_butd

ONE_LIBTORCH = """
import {first}, {second}
paths = {{line.split()[-1] for line in open("/proc/self/maps") if "libtorch_cpu.so" in line}}
assert len(paths) == 1, paths
import torch
x = torch.ones(3)
assert butd.Extractor and float(x.sum()) == 3.0
print(paths.pop())
"""


@pytest.mark.parametrize("first,second", [("torch", "butd"), ("butd", "torch")])
def test_torch_and_butd_share_one_libtorch_in_either_import_order(first, second):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    p = subprocess.run([sys.executable, "-c", ONE_LIBTORCH.format(first=first, second=second)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    import torch

    assert Path(p.stdout.strip()).parent == Path(torch.__file__).parent / "lib"


def test_the_butd_command_comes_with_the_package(caffemodel, golden, tmp_path):
    assert run_butd("--version").stdout.startswith("butd ")
    assert "conv1" in run_butd("inspect", caffemodel).stdout
    assert "--weights" in run_butd("extract", "--help").stdout
    # Errors keep the command's exit statuses: 2 for usage and start-up errors.
    p = run_butd("extract", "--weights", tmp_path / "missing.safetensors", "--out", tmp_path,
                 golden / "images" / "chelsea_tiny.png", ok=(2,))
    assert "error:" in p.stderr
    run_butd("no-such-command", ok=(2,))


def readme_quickstart() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README.md: no ```python block in the Python section"
    return blocks[0]


def test_the_readme_quickstart_runs_as_written(cli_weights, golden, tmp_path):
    (tmp_path / "weights.safetensors").symlink_to(cli_weights)
    (tmp_path / "golden").symlink_to(golden)
    p = subprocess.run([sys.executable, "-c", readme_quickstart()], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(2, 36, 2048)" in p.stdout
    assert "True {" in p.stdout  # the gate passed on the two images
    assert len(list((tmp_path / "records").glob("*.safetensors"))) == 2
