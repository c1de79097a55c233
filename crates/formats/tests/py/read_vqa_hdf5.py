"""Reads a VQA HDF5 feature file as bottom-up-attention-vqa's dataset.py (fixed) or ban-vqa's
dataset.py (adaptive) does, against what the converters store.

usage: read_vqa_hdf5.py H5 RECORDS_DIR ID_MAP_JSON fixed|adaptive
"""
import json
import os
import pickle
import sys

import h5py
import numpy as np

from common import Checker, load_records, normalized_boxes


def main(h5_path, records_dir, id_map, layout):
    ids = json.load(open(id_map))
    records = load_records(records_dir)
    check = Checker(f"vqa-hdf5-{layout}")
    stem = os.path.splitext(h5_path)[0]
    img_id2idx = pickle.load(open(f"{stem}_imgid2idx.pkl", "rb"))
    check.same("index", img_id2idx, {int(ids[r["stem"]]): i for i, r in enumerate(records)})
    with h5py.File(h5_path, "r") as hf:
        names = sorted(hf.keys())
        want_names = ["image_bb", "image_features", "spatial_features"] + (["pos_boxes"] if layout == "adaptive" else [])
        check.same("datasets", names, sorted(want_names))
        features = np.array(hf.get("image_features"))
        spatials = np.array(hf.get("spatial_features"))
        bbs = np.array(hf.get("image_bb"))
        pos_boxes = np.array(hf.get("pos_boxes")) if layout == "adaptive" else None
    for name, arr in [("image_features", features), ("spatial_features", spatials), ("image_bb", bbs)]:
        check.same(f"{name} dtype", arr.dtype, np.dtype("float32"))
    if layout == "adaptive":
        check.same("pos_boxes dtype", pos_boxes.dtype, np.dtype("int32"))
        check.same("pos_boxes shape", pos_boxes.shape, (len(records), 2))
        # contiguous, non-overlapping, ending at total_boxes
        ends = np.concatenate([[0], pos_boxes[:, 1]])
        check.same("pos_boxes contiguous", bool(np.all(pos_boxes[:, 0] == ends[:-1])), True)
        check.same("pos_boxes end", int(pos_boxes[-1, 1]), features.shape[0])
    else:
        k = records[0]["boxes"].shape[0]
        check.same("image_features shape", features.shape, (len(records), k, 2048))
    for r in records:
        idx = img_id2idx[int(ids[r["stem"]])]
        if layout == "adaptive":
            s, e = pos_boxes[idx]
            got = (features[s:e, :], spatials[s:e, :], bbs[s:e, :])
        else:
            got = (features[idx], spatials[idx], bbs[idx])
        want = (r["features"], normalized_boxes(r["boxes"], r["orig_w"], r["orig_h"]), r["boxes"])
        for key, g, w in zip(["image_features", "spatial_features", "image_bb"], got, want):
            check.equal(f"{r['stem']} {key}", g, w)
        check.checked.append(r["stem"])
    check.done()


if __name__ == "__main__":
    main(*sys.argv[1:])
