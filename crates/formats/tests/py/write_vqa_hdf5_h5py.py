"""Writes a VQA HDF5 file from a BUTD TSV the way the converters do, with h5py's defaults:
bottom-up-attention-vqa's tools/detection_features_converter.py (`fixed`: (N, K, D) datasets,
Python 2 cPickle protocol 0 index), jnhwkim/ban-vqa's tools/adaptive_detection_features_converter.py
(`adaptive`: (total boxes, D) datasets + pos_boxes, Python 3 pickle), or `chunked`: the fixed
layout with chunked, shuffled, gzip-compressed datasets and enough attributes to push the object
headers into continuation chunks. Like the converters, the datasets are allocated before they
are filled, one image (and, adaptive, 5 box rows) larger than what is written.

usage: write_vqa_hdf5_h5py.py TSV OUT_H5 fixed|adaptive|chunked
"""
import base64
import csv
import json
import os
import pickle
import sys

import h5py
import numpy as np

from common import normalized_boxes as spatial  # the converters' arithmetic

FIELDNAMES = ["image_id", "image_w", "image_h", "num_boxes", "boxes", "features"]


def rows(tsv):
    csv.field_size_limit(sys.maxsize)
    with open(tsv, "r") as f:
        for item in csv.DictReader(f, delimiter="\t", fieldnames=FIELDNAMES):
            k = int(item["num_boxes"])
            boxes = np.frombuffer(base64.b64decode(item["boxes"]), dtype=np.float32).reshape((k, -1))
            feats = np.frombuffer(base64.b64decode(item["features"]), dtype=np.float32).reshape((k, -1))
            yield int(item["image_id"]), float(item["image_w"]), float(item["image_h"]), boxes, feats


def main(tsv, out, mode):
    items = list(rows(tsv))
    n = len(items) + 1
    d = items[0][4].shape[1]
    h = h5py.File(out, "w")
    indices = {}
    if mode in ("fixed", "chunked"):
        k = items[0][3].shape[0]
        extra = dict(chunks=True, compression="gzip", shuffle=True) if mode == "chunked" else {}
        feats = h.create_dataset("image_features", (n, k, d), "f", **extra)
        bb = h.create_dataset("image_bb", (n, k, 4), "f", **extra)
        sp = h.create_dataset("spatial_features", (n, k, 6), "f", **extra)
        if mode == "chunked":
            for ds in (h, feats, bb, sp):
                for i in range(40):
                    ds.attrs[f"note_{i:02d}_" + "x" * 40] = np.arange(8) + i
        for i, (image_id, w, hh, boxes, f) in enumerate(items):
            indices[image_id] = i
            bb[i, :, :] = boxes
            feats[i, :, :] = f
            sp[i, :, :] = spatial(boxes, w, hh)
        protocol = 0  # Python 2's cPickle.dump default
    else:
        total = sum(it[3].shape[0] for it in items) + 5
        feats = h.create_dataset("image_features", (total, d), "f")
        bb = h.create_dataset("image_bb", (total, 4), "f")
        sp = h.create_dataset("spatial_features", (total, 6), "f")
        pos = h.create_dataset("pos_boxes", (n, 2), dtype="int32")
        start = 0
        for i, (image_id, w, hh, boxes, f) in enumerate(items):
            k = boxes.shape[0]
            indices[image_id] = i
            pos[i, :] = np.array([start, start + k])
            bb[start:start + k, :] = boxes
            feats[start:start + k, :] = f
            sp[start:start + k, :] = spatial(boxes, w, hh)
            start += k
        protocol = pickle.DEFAULT_PROTOCOL
    h.close()
    with open(os.path.splitext(out)[0] + "_imgid2idx.pkl", "wb") as f:
        pickle.dump(indices, f, protocol=protocol)
    with h5py.File(out, "r") as r:
        superblock = r.id.get_create_plist().get_version()[0]
    print(json.dumps({"images": len(items), "superblock": superblock}))


if __name__ == "__main__":
    main(*sys.argv[1:])
