"""Shared fixtures: the synthetic caffemodel (scripts make it), its HF-layout weights and the
CLI's records of every golden image, made once per session with the `butd` command of the same
install (so the CLI of the Python package is exercised too).

Inputs, from the environment (scripts/test-python.sh sets them):
- BUTD_CAFFEMODEL: the synthetic caffemodel (default $BUTD_CACHE/synthetic.caffemodel);
- BUTD_GOLDEN: the golden folder, records + images/ (default: the repository's golden/).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "butd"
    return Path(os.environ.get("BUTD_CACHE", default))


def butd_command() -> list:
    """The `butd` console script installed beside this interpreter."""
    script = Path(sys.executable).with_name("butd")
    assert script.is_file(), f"{script}: the butd command is not installed (scripts/install-python.sh)"
    return [str(script)]


def run_butd(*args, ok=(0,)) -> subprocess.CompletedProcess:
    p = subprocess.run(butd_command() + [str(a) for a in args], capture_output=True, text=True)
    assert p.returncode in ok, f"butd {' '.join(map(str, args))}: exit {p.returncode}\n{p.stderr}"
    return p


@pytest.fixture(scope="session")
def caffemodel() -> Path:
    path = Path(os.environ.get("BUTD_CAFFEMODEL", _cache() / "synthetic.caffemodel"))
    assert path.is_file(), f"{path}: no synthetic caffemodel (scripts/test-python.sh makes it)"
    return path


@pytest.fixture(scope="session")
def golden() -> Path:
    path = Path(os.environ.get("BUTD_GOLDEN", REPO / "golden"))
    assert (path / "images").is_dir(), f"{path}: no golden set (records + images/)"
    return path


@pytest.fixture(scope="session")
def golden_images(golden) -> list:
    return sorted((golden / "images").iterdir())


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("butd")


@pytest.fixture(scope="session")
def cli_weights(caffemodel, work) -> Path:
    """`butd convert`'s safetensors file (the CLI of this install)."""
    out = work / "cli-hf.safetensors"
    run_butd("convert", caffemodel, "--map", "caffe-to-hf-frcnn", "-o", out)
    return out


@pytest.fixture(scope="session")
def extractor(cli_weights):
    import butd

    return butd.Extractor(cli_weights)


@pytest.fixture(scope="session")
def cli_records(cli_weights, golden_images, work) -> Path:
    """`butd extract` on every golden image. Exit 1: chelsea_micro has no proposals (Caffe
    itself crashes on it) and gets a "no proposals" record."""
    out = work / "cli-records"
    run_butd("extract", "--weights", cli_weights, "--out", out, *golden_images, ok=(0, 1))
    return out


def record_metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return f.metadata()


@pytest.fixture()
def copy_of(tmp_path):
    def copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy
