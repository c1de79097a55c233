"""butd.open_features on each format `butd export` writes: the exported values come back."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

import butd
from conftest import run_butd


@pytest.fixture(scope="session")
def records(cli_records) -> dict:
    """Stem → the CLI's record, for the images with detections (the formats hold no others)."""
    out = {}
    for path in sorted(cli_records.glob("*.safetensors")):
        r = load_file(path)
        if r["keep"].size:
            out[path.stem] = r
    assert len(out) >= 8
    return out


@pytest.fixture(scope="session")
def int_ids(records, work) -> tuple:
    """BUTD TSV and VQA HDF5 need integer image ids: an --id-map of the stems."""
    ids = {stem: 100 + i for i, stem in enumerate(records)}
    path = work / "ids.json"
    path.write_text(json.dumps(ids))
    return path, {str(v): k for k, v in ids.items()}


def export(cli_records, out, fmt, *extra):
    run_butd("export", "--records", cli_records, "--format", fmt, "-o", out, *extra)
    return out


def assert_equal(a, b, what):
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert a.tobytes() == b.tobytes(), what


def test_a_records_folder_gives_every_tensor_of_each_record(cli_records, records):
    ff = butd.open_features(cli_records)
    assert ff.format == "records"
    assert sorted(records) == sorted(k for k in ff if k in records)
    for stem, record in records.items():
        got = ff[stem]
        for name, value in record.items():
            assert_equal(got[name], value, f"{stem}/{name}")
        assert not got["features"].flags.writeable  # read-only


def test_an_lxmert_tsv_gives_the_exported_values(cli_records, records, work):
    ff = butd.open_features(export(cli_records, work / "obj36.tsv", "lxmert-tsv"))
    assert ff.format == "lxmert-tsv" and sorted(ff) == sorted(records)
    for stem, record in records.items():
        got = ff[stem]
        for name in ("boxes", "features", "objects_id", "objects_conf", "attrs_id",
                     "attrs_conf"):
            assert_equal(got[name], record[name], f"{stem}/{name}")


def test_a_butd_tsv_gives_the_exported_values(cli_records, records, int_ids, work):
    id_map, stems = int_ids
    ff = butd.open_features(export(cli_records, work / "butd.tsv", "butd-tsv", "--id-map", id_map))
    assert ff.format == "butd-tsv" and sorted(ff) == sorted(stems)
    for image_id, stem in stems.items():
        got = ff[int(image_id)]  # ints are looked up as their text
        for name in ("boxes", "features"):
            assert_equal(got[name], records[stem][name], f"{stem}/{name}")


@pytest.mark.parametrize("fmt", ["uniter-npz", "uniter-lmdb"])
def test_uniter_gives_the_exported_float16_values(cli_records, records, work, fmt):
    ff = butd.open_features(export(cli_records, work / fmt, fmt, "--without-soft-labels"))
    assert ff.format == fmt and sorted(ff) == sorted(records)
    for stem, record in records.items():
        got = ff[stem]
        assert_equal(got["features"], record["features"].astype(np.float16), f"{stem}/features")
        assert got["norm_bb"].shape == (record["boxes"].shape[0], 6)


def test_a_vqa_hdf5_gives_the_exported_values(cli_records, records, int_ids, work):
    id_map, stems = int_ids
    path = export(cli_records, work / "vqa.h5", "vqa-hdf5", "--id-map", id_map,
                  "--hdf5-layout", "adaptive")
    ff = butd.open_features(path)
    assert ff.format == "vqa-hdf5" and sorted(ff) == sorted(stems)
    for image_id, stem in stems.items():
        got = ff[image_id]
        assert_equal(got["image_features"], records[stem]["features"], f"{stem}/features")
        assert_equal(got["image_bb"], records[stem]["boxes"], f"{stem}/boxes")


def test_unknown_ids_and_paths_are_errors(cli_records, tmp_path):
    ff = butd.open_features(cli_records)
    with pytest.raises(KeyError):
        ff["no-such-image"]
    with pytest.raises(butd.ButdError, match="nowhere"):
        butd.open_features(tmp_path / "nowhere")


def test_a_tsv_holding_an_id_twice_is_refused(tmp_path):
    row = "\t".join(["7", "2", "3", "1", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAA=="])
    path = tmp_path / "twice.tsv"
    path.write_text(f"{row}\n{row}\n")
    with pytest.raises(butd.ButdError, match="line 2: image id 7 appears twice"):
        butd.open_features(path)


def test_a_feature_file_serves_a_torch_dataloader(cli_records, records):
    import torch

    class Regions(torch.utils.data.Dataset):
        def __init__(self, path):
            self.ff = butd.open_features(path)
            self.ids = sorted(records)

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            r = self.ff[self.ids[i]]
            return torch.from_numpy(r["features"].copy()), self.ids[i]

    batches = list(torch.utils.data.DataLoader(Regions(cli_records), batch_size=None))
    assert [i for _, i in batches] == sorted(records)
    assert all(f.shape[1] == 2048 for f, _ in batches)
