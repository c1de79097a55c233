"""Shared by the consumer-style readers: the canonical records, exact comparison, the report.

Each read_<format>.py reads an exported file the way its consumer's code does (field names,
dtypes, decoding, as docs/formats.md describes them), derives what the consumer should
see from the canonical records with the producer's own NumPy arithmetic, and compares the two
bit for bit. It prints one JSON line {"format", "images", "checked"} and exits 1 on any
mismatch (listed on stderr).
"""
import glob
import json
import os
import sys

import numpy as np
from safetensors import safe_open


def load_records(records_dir):
    """The records with detections, in file-name order (the order `butd export` writes)."""
    records = []
    for path in sorted(glob.glob(os.path.join(records_dir, "*.safetensors"))):
        with safe_open(path, "np") as f:
            keys = set(f.keys())
            meta = f.metadata() or {}
            if "boxes" not in keys or f.get_tensor("boxes").shape[0] == 0:
                continue  # crash record / no kept boxes: export skips it
            r = {k: f.get_tensor(k) for k in keys}
        name = meta.get("image_name") or os.path.basename(path)
        r["stem"] = os.path.splitext(os.path.basename(name))[0]
        r["orig_h"] = int(meta["orig_h"])
        r["orig_w"] = int(meta["orig_w"])
        records.append(r)
    return records


class Checker:
    def __init__(self, fmt):
        self.fmt = fmt
        self.mismatches = []
        self.checked = []

    def equal(self, where, got, want):
        """Same dtype, same shape, same bytes (so -0.0 vs 0.0 and NaN payloads count)."""
        got, want = np.asarray(got), np.asarray(want)
        if got.dtype != want.dtype or got.shape != want.shape:
            self.mismatches.append(f"{where}: got {got.dtype} {got.shape}, want {want.dtype} {want.shape}")
        elif np.ascontiguousarray(got).tobytes() != np.ascontiguousarray(want).tobytes():
            diff = int(np.sum(np.ascontiguousarray(got).view(np.uint8) != np.ascontiguousarray(want).view(np.uint8)))
            self.mismatches.append(f"{where}: {diff} differing bytes")

    def same(self, where, got, want):
        if got != want:
            self.mismatches.append(f"{where}: got {got!r}, want {want!r}")

    def done(self):
        for m in self.mismatches:
            print(m, file=sys.stderr)
        print(json.dumps({"format": self.fmt, "images": len(self.checked), "checked": self.checked}))
        sys.exit(1 if self.mismatches else 0)


def normalized_boxes(bboxes, image_w, image_h):
    """The spatial features of bottom-up-attention-vqa's detection_features_converter.py (and
    BUTD-UNITER-NLVR2's generate_npz.py, which repeats it): float32 boxes divided by Python
    floats, right edges as sums of the rounded quotients."""
    image_w = float(image_w)
    image_h = float(image_h)
    box_width = bboxes[:, 2] - bboxes[:, 0]
    box_height = bboxes[:, 3] - bboxes[:, 1]
    scaled_width = box_width / image_w
    scaled_height = box_height / image_h
    scaled_x = bboxes[:, 0] / image_w
    scaled_y = bboxes[:, 1] / image_h
    scaled_width = scaled_width[..., np.newaxis]
    scaled_height = scaled_height[..., np.newaxis]
    scaled_x = scaled_x[..., np.newaxis]
    scaled_y = scaled_y[..., np.newaxis]
    return np.concatenate(
        (scaled_x, scaled_y, scaled_x + scaled_width, scaled_y + scaled_height, scaled_width, scaled_height),
        axis=1,
    )
