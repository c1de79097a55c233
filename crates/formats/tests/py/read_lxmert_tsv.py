"""Reads an LXMERT obj36 TSV as airsplay/lxmert's src/utils.py load_obj_tsv does, then applies
the box checks of its data loaders (src/tasks/vqa_data.py and siblings).

usage: read_lxmert_tsv.py TSV RECORDS_DIR
"""
import base64
import csv
import sys

import numpy as np

from common import Checker, load_records

FIELDNAMES = ["img_id", "img_h", "img_w", "objects_id", "objects_conf",
              "attrs_id", "attrs_conf", "num_boxes", "boxes", "features"]


def load_obj_tsv(fname):
    data = []
    csv.field_size_limit(2**31 - 1)
    with open(fname) as f:
        reader = csv.DictReader(f, FIELDNAMES, delimiter="\t")
        for item in reader:
            for key in ["img_h", "img_w", "num_boxes"]:
                item[key] = int(item[key])
            boxes = item["num_boxes"]
            decode_config = [
                ("objects_id", (boxes,), np.int64),
                ("objects_conf", (boxes,), np.float32),
                ("attrs_id", (boxes,), np.int64),
                ("attrs_conf", (boxes,), np.float32),
                ("boxes", (boxes, 4), np.float32),
                ("features", (boxes, -1), np.float32),
            ]
            for key, shape, dtype in decode_config:
                item[key] = np.frombuffer(base64.b64decode(item[key]), dtype=dtype)
                item[key] = item[key].reshape(shape)
                item[key].setflags(write=False)
            data.append(item)
    return data


def main(tsv, records_dir):
    records = load_records(records_dir)
    check = Checker("lxmert-tsv")
    data = load_obj_tsv(tsv)
    check.same("row count", len(data), len(records))
    check.same("line terminators", open(tsv, "rb").read().count(b"\r\n"), len(records))
    for item, r in zip(data, records):
        where = r["stem"]
        obj_num = item["num_boxes"]
        feats = item["features"].copy()
        boxes = item["boxes"].copy()
        assert obj_num == len(boxes) == len(feats)
        # The data loaders' normalisation and range assertions.
        boxes[:, (0, 2)] /= item["img_w"]
        boxes[:, (1, 3)] /= item["img_h"]
        np.testing.assert_array_less(boxes, 1 + 1e-5)
        np.testing.assert_array_less(-boxes, 0 + 1e-5)
        check.same(f"{where} img_id", item["img_id"], r["stem"])
        check.same(f"{where} img_h", item["img_h"], r["orig_h"])
        check.same(f"{where} img_w", item["img_w"], r["orig_w"])
        for key in ["objects_id", "objects_conf", "attrs_id", "attrs_conf", "boxes", "features"]:
            check.equal(f"{where} {key}", item[key], r[key])
        check.checked.append(where)
    check.done()


if __name__ == "__main__":
    main(*sys.argv[1:])
