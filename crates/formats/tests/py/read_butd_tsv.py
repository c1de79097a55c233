"""Reads a BUTD TSV as bottom-up-attention's tools/read_tsv.py and the VQA converters do.

usage: read_butd_tsv.py TSV RECORDS_DIR ID_MAP_JSON
"""
import base64
import csv
import json
import sys

import numpy as np

from common import Checker, load_records

FIELDNAMES = ["image_id", "image_w", "image_h", "num_boxes", "boxes", "features"]


def main(tsv, records_dir, id_map):
    ids = json.load(open(id_map))
    records = load_records(records_dir)
    check = Checker("butd-tsv")
    csv.field_size_limit(2**31 - 1)
    with open(tsv, "r") as f:
        rows = list(csv.DictReader(f, delimiter="\t", fieldnames=FIELDNAMES))
    check.same("row count", len(rows), len(records))
    raw = open(tsv, "rb").read()
    check.same("line terminators", raw.count(b"\r\n"), len(records))
    for item, r in zip(rows, records):
        for key in ["image_id", "image_w", "image_h", "num_boxes"]:
            item[key] = int(item[key])
        n = item["num_boxes"]
        boxes = np.frombuffer(base64.b64decode(item["boxes"]), dtype=np.float32).reshape((n, -1))
        features = np.frombuffer(base64.b64decode(item["features"]), dtype=np.float32).reshape((n, -1))
        where = r["stem"]
        check.same(f"{where} image_id", item["image_id"], int(ids[r["stem"]]))
        check.same(f"{where} image_w", item["image_w"], r["orig_w"])
        check.same(f"{where} image_h", item["image_h"], r["orig_h"])
        check.same(f"{where} num_boxes", n, r["boxes"].shape[0])
        check.equal(f"{where} boxes", boxes, r["boxes"])
        check.equal(f"{where} features", features, r["features"])
        check.same(f"{where} feature width", features.shape[1], 2048)
        check.checked.append(where)
    check.done()


if __name__ == "__main__":
    main(*sys.argv[1:])
