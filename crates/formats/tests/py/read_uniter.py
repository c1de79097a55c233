"""Reads UNITER image features as its tools do, against what they should hold.

  read_uniter.py npz  NPZ_DIR   RECORDS_DIR PREFIX
      each <PREFIX><stem>.npz as convert_imgdir.py's load_npz opens it (np.load), against the
      arrays BUTD-UNITER-NLVR2's generate_npz.py saves (save_to_npz arithmetic, float16), and
      each member's bytes against np.save's;
  read_uniter.py lmdb SPLIT_DIR RECORDS_DIR PREFIX CONF_TH MAX_BB MIN_BB [compressed]
      the img_db as UNITER's data/data.py DetectFeatLmdb opens and decodes it (DB and nbb
      file named from conf_th/max_bb/min_bb; msgpack with msgpack_numpy, or npz when
      compressed), against convert_imgdir.py's conversion of those npz arrays; msgpack values
      also byte for byte against msgpack.dumps(dump, use_bin_type=True).
"""
import io
import json
import os
import sys
import zipfile

import lmdb
import msgpack
import msgpack_numpy
import numpy as np

from common import Checker, load_records, normalized_boxes

msgpack_numpy.patch()


def generate_npz_arrays(r):
    """save_to_npz's arrays for one record: max_conf[keep] and cls_prob[keep] as
    get_detections_from_im passes them (float64 / float32), then its casts."""
    n = r["boxes"].shape[0]
    confidence = r["max_conf"][r["keep"]].reshape((n, -1)).astype(np.float32)
    soft_labels = r["cls_prob"][r["keep"]].reshape((n, -1))
    normalized_bbox = normalized_boxes(r["boxes"], r["orig_w"], r["orig_h"])
    return {
        "norm_bb": normalized_bbox.astype(np.float16),
        "features": r["features"].astype(np.float16),
        "conf": confidence.astype(np.float16),
        "soft_labels": soft_labels.astype(np.float16),
    }


def convert_imgdir_dump(img_dump, conf_th, max_bb, min_bb):
    """convert_imgdir.py's load_npz: nbb from conf, float32 → float16, first nbb rows."""
    num_bb = max(min_bb, (img_dump["conf"] > conf_th).sum())
    nbb = int(min(max_bb, num_bb))
    dump = {}
    for key, arr in img_dump.items():
        if arr.dtype == np.float32:
            arr = arr.astype(np.float16)
        if arr.ndim == 2:
            dump[key] = arr[:nbb, :]
        elif arr.ndim == 1:
            dump[key] = arr[:nbb]
        else:
            raise ValueError("wrong ndim")
    return dump, nbb


def check_npz(npz_dir, records, prefix):
    check = Checker("uniter-npz")
    names = sorted(os.listdir(npz_dir))
    check.same("files", names, sorted(f"{prefix}{r['stem']}.npz" for r in records))
    for r in records:
        name = f"{prefix}{r['stem']}.npz"
        path = os.path.join(npz_dir, name)
        want = generate_npz_arrays(r)
        img_dump = np.load(path, allow_pickle=True)
        check.same(f"{name} keys", list(img_dump.keys()), list(want.keys()))
        members = zipfile.ZipFile(path)
        for key, arr in want.items():
            check.equal(f"{name} {key}", img_dump[key], arr)
            saved = io.BytesIO()
            np.save(saved, arr)
            check.same(f"{name} {key}.npy bytes == np.save", members.read(key + ".npy") == saved.getvalue(), True)
        check.checked.append(name)
    return check


def check_lmdb(split_dir, records, prefix, conf_th, max_bb, min_bb, compressed):
    check = Checker("uniter-lmdb" + ("-compressed" if compressed else ""))
    # DetectFeatLmdb.__init__
    db_name = f"feat_th{conf_th}_max{max_bb}_min{min_bb}"
    nbb_file = f"nbb_th{conf_th}_max{max_bb}_min{min_bb}.json"
    name2nbb = json.load(open(f"{split_dir}/{nbb_file}"))
    if compressed:
        db_name += "_compressed"
    env = lmdb.open(f"{split_dir}/{db_name}", readonly=True, create=False, readahead=True)
    txn = env.begin(buffers=True)
    keys = json.loads(bytes(txn.get(key=b"__keys__")).decode("utf-8"))
    names = [f"{prefix}{r['stem']}.npz" for r in records]
    check.same("__keys__", keys, names)
    check.same("entries", env.stat()["entries"], len(names) + 1)
    want_nbb = {}
    for r, name in zip(records, names):
        # What generate_npz.py would have saved, reopened as convert_imgdir.py opens it.
        saved = io.BytesIO()
        np.savez_compressed(saved, **generate_npz_arrays(r))
        saved.seek(0)
        want, nbb = convert_imgdir_dump(np.load(saved, allow_pickle=True), conf_th, max_bb, min_bb)
        want_nbb[name] = nbb
        raw = txn.get(name.encode("utf-8"))
        # DetectFeatLmdb.get_dump / __getitem__
        if compressed:
            with io.BytesIO(raw) as reader:
                img_dump = np.load(reader, allow_pickle=True)
                img_dump = {k: img_dump[k] for k in img_dump.files}
        else:
            img_dump = msgpack.loads(raw, raw=False)
            check.same(f"{name} msgpack bytes == msgpack.dumps", bytes(raw) == msgpack.dumps(want, use_bin_type=True), True)
        check.same(f"{name} keys", list(img_dump.keys()), list(want.keys()))
        for key, arr in want.items():
            check.equal(f"{name} {key}", img_dump[key], arr)
        nbb = name2nbb[name]
        feat = img_dump["features"][:nbb, :].astype(np.float32)
        bb = img_dump["norm_bb"][:nbb, :].astype(np.float32)
        check.same(f"{name} __getitem__ shapes", (feat.shape, bb.shape), ((min(nbb, len(r["boxes"])), 2048), (min(nbb, len(r["boxes"])), 6)))
        check.checked.append(name)
    check.same("nbb file", name2nbb, want_nbb)
    env.close()
    return check


def main(mode, path, records_dir, prefix, *args):
    records = load_records(records_dir)
    if mode == "npz":
        check = check_npz(path, records, prefix)
    else:
        conf_th, max_bb, min_bb = float(args[0]), int(args[1]), int(args[2])
        check = check_lmdb(path, records, prefix, conf_th, max_bb, min_bb, "compressed" in args[3:])
    check.done()


if __name__ == "__main__":
    main(*sys.argv[1:])
