"""butd.Extractor against `butd extract`: the same record, bit for bit, from a path, a numpy
array or a PIL image; errors are Python exceptions and the interpreter lives on."""

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import butd
from conftest import record_metadata

# What both give for every image: the record's final tensors.
FINAL = ("boxes", "features", "objects_id", "objects_conf", "attrs_id", "attrs_conf", "keep",
         "max_conf")


def assert_same_as_record(features: butd.Features, record: dict):
    for name in FINAL:
        ours, theirs = getattr(features, name), record[name]
        assert ours.dtype == theirs.dtype, name
        assert ours.shape == theirs.shape, name
        assert ours.tobytes() == theirs.tobytes(), f"{name} differs from the CLI's record"


def test_extract_gives_the_cli_record_bit_for_bit_on_every_golden_image(
        extractor, cli_records, golden_images):
    checked = 0
    for image in golden_images:
        record = load_file(cli_records / f"{image.stem}.safetensors")
        if record["keep"].size == 0:
            # The CLI wrote a "no proposals" record; the library raises the same reason.
            with pytest.raises(butd.ButdError, match="no proposals"):
                extractor.extract(image)
            continue
        f = extractor.extract(image)
        assert_same_as_record(f, record)
        meta = record_metadata(cli_records / f"{image.stem}.safetensors")
        assert (f.image_h, f.image_w) == (int(meta["orig_h"]), int(meta["orig_w"]))
        checked += 1
    assert checked >= 8


@pytest.fixture(scope="module")
def tiny(golden) -> Path:
    return golden / "images" / "chelsea_tiny.png"


@pytest.fixture(scope="module")
def tiny_from_file(extractor, tiny) -> butd.Features:
    return extractor.extract(tiny)


def test_a_bgr_array_gives_what_the_file_gives(extractor, golden, tiny_from_file):
    # The golden image_bgr is what cv2.imread gave Caffe for this file.
    bgr = load_file(golden / "chelsea_tiny.safetensors")["image_bgr"]
    from_array = extractor.extract(bgr)
    for name in FINAL:
        assert getattr(from_array, name).tobytes() == getattr(tiny_from_file, name).tobytes(), name
    # A non-contiguous array is taken as well.
    strided = np.asfortranarray(bgr)
    assert extractor.extract(strided).features.tobytes() == tiny_from_file.features.tobytes()


def test_a_pil_image_is_converted_to_bgr(extractor, tiny, tiny_from_file):
    Image = pytest.importorskip("PIL.Image")
    from_pil = extractor.extract(Image.open(tiny))
    assert from_pil.features.tobytes() == tiny_from_file.features.tobytes()


def test_torch_tensors_share_the_numpy_memory(tiny_from_file):
    f = tiny_from_file
    t = f.torch()
    assert t["features"].data_ptr() == f.features.ctypes.data
    assert tuple(t["features"].shape) == (f.num_boxes, 2048)


def test_a_bad_image_raises_and_the_interpreter_lives_on(extractor, tiny, tiny_from_file,
                                                        tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(butd.ButdError, match="bad.jpg"):
        extractor.extract(bad)
    with pytest.raises(butd.ButdError, match="cannot read"):
        extractor.extract(tmp_path / "missing.png")
    with pytest.raises(butd.ButdError, match="H×W×3 uint8"):
        extractor.extract(np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(TypeError):
        extractor.extract(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(TypeError):
        extractor.extract(42)
    # Still alive, and still right.
    assert extractor.extract(tiny).features.tobytes() == tiny_from_file.features.tobytes()


def test_bad_weights_and_options_are_errors_with_the_cli_messages(cli_weights, tmp_path):
    with pytest.raises(butd.ButdError, match="missing.safetensors"):
        butd.Extractor(tmp_path / "missing.safetensors")
    with pytest.raises(butd.ButdError, match="expected cpu, cuda or cuda:N"):
        butd.Extractor(cli_weights, device="tpu")
    with pytest.raises(butd.ButdError, match="--min-boxes 50 is larger than --max-boxes 20"):
        butd.Extractor(cli_weights, min_boxes=50, max_boxes=20)


def test_extract_many_writes_the_cli_records_and_fixed_36_gives_36(cli_weights, golden, tmp_path):
    images = [golden / "images" / "chelsea_tiny.png", golden / "images" / "chelsea_micro.png"]
    ex = butd.Extractor(cli_weights, fixed=36)
    got = list(ex.extract_many(images, out=tmp_path, progress=False, errors="skip"))
    assert [f.path for f in got] == [str(images[0])]
    assert got[0].features.shape == (36, 2048)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chelsea_micro.safetensors", "chelsea_tiny.safetensors"]
    assert_same_as_record(got[0], load_file(tmp_path / "chelsea_tiny.safetensors"))
    with pytest.raises(butd.ButdError, match="no proposals"):
        list(ex.extract_many(images[1:], progress=False))


def test_ctrl_c_stops_extract_many_between_images(extractor, golden, tmp_path):
    images = [golden / "images" / "chelsea_tiny.png"] * 3
    out = tmp_path / "records"
    # SIGINT arrives while the first image runs (the GIL is released): the image finishes,
    # its record is written, and KeyboardInterrupt comes before the second one starts.
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    seen = []
    # Python's own Ctrl-C handler, also where this runs with SIGINT ignored (a background job).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            timer.start()
            for f in extractor.extract_many(images, out=out, progress=False):
                seen.append(f)
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert len(seen) <= 1
    assert [p.name for p in Path(out).iterdir()] == ["chelsea_tiny.safetensors"]
