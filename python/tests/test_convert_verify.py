"""butd.convert / hf_state_dict against `butd convert`, butd.verify against the golden set."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import butd
from conftest import record_metadata


def test_the_converted_state_dict_equals_the_cli_safetensors_tensor_for_tensor(
        caffemodel, cli_weights):
    ours = butd.convert(caffemodel)
    theirs = load_file(cli_weights)
    assert list(ours) == list(theirs)  # same keys, same (target) order
    for key, value in theirs.items():
        t = ours[key].numpy()
        assert t.dtype == value.dtype and t.shape == value.shape, key
        assert t.tobytes() == value.tobytes(), key


def test_the_written_file_is_the_cli_file_byte_for_byte(caffemodel, cli_weights, tmp_path):
    out = tmp_path / "py.safetensors"
    assert butd.convert(caffemodel, output=out, tensors=False) is None
    assert out.read_bytes() == cli_weights.read_bytes()


def test_hf_state_dict_has_the_hf_layout_keys(caffemodel, cli_weights):
    sd = butd.hf_state_dict(caffemodel)
    assert list(sd) == list(load_file(cli_weights))
    assert all(k.startswith(("backbone.", "proposal_generator.", "roi_heads.")) for k in sd)


def test_a_broken_mapping_is_an_error_naming_every_problem(caffemodel, tmp_path):
    with pytest.raises(butd.ButdError, match="no-such-mapping"):
        butd.convert(caffemodel, "no-such-mapping")


def test_verify_passes_on_the_cli_records_and_fails_on_a_planted_fault(
        golden, cli_records, copy_of, tmp_path):
    report = butd.verify(golden, cli_records, report_dir=tmp_path / "report")
    assert report.passed, report.summary["breaches"]
    assert report.summary["compared"] == len(list(golden.glob("*.safetensors")))
    assert set(report.images.values()) <= {"pass", "tie"}
    # The same object as parity.json.
    assert json.loads((tmp_path / "report" / "parity.json").read_text()) == dict(report)

    faulty = copy_of(cli_records)
    record = faulty / "coffee.safetensors"
    tensors, metadata = load_file(record), record_metadata(record)
    tensors["features"] = tensors["features"].copy()
    tensors["features"][0, :8] += np.float32(0.5)
    save_file(tensors, str(record), metadata=metadata)
    report = butd.verify(golden, faulty)
    assert not report.passed
    assert report.images["coffee"] == "fail"
    assert any("coffee" in b for b in report.summary["breaches"])


def test_verify_errors_are_python_exceptions(golden, tmp_path):
    with pytest.raises(butd.ButdError, match="nowhere"):
        butd.verify(golden, tmp_path / "nowhere")
    with pytest.raises(butd.ButdError, match="expected one of"):
        butd.verify(golden, golden, candidate_format="parquet")
