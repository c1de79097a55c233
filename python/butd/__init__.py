"""butd: the Bottom-Up-Attention Faster R-CNN, computed as Caffe computed it, from Python.

    import butd
    ex = butd.Extractor("weights.safetensors")        # from `butd convert` / butd.convert
    f = ex.extract("photo.jpg")                         # a path, a cv2 BGR array or a PIL image
    f.boxes, f.features, f.objects_id                   # numpy arrays; f.torch() for tensors

The work is done by the butd Rust crates (the extension module ``butd._butd``), which link the
libtorch of the installed ``torch`` wheel: ``torch`` is imported first so that one libtorch
serves both, whichever of ``import torch`` / ``import butd`` comes first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch  # noqa: F401  (before _butd: the libtorch it links is torch's)

from . import _butd
from ._butd import ButdError

__all__ = [
    "ButdError",
    "Extractor",
    "Features",
    "FeatureFile",
    "Report",
    "convert",
    "hf_state_dict",
    "open_features",
    "verify",
]

PathLike = Union[str, "os.PathLike[str]"]

# What `Features` holds, in the record's names (and LXMERT's TSV fields).
_ARRAYS = ("boxes", "features", "objects_id", "objects_conf", "attrs_id", "attrs_conf",
           "keep", "max_conf")


@dataclass
class Features:
    """One image's regions: K boxes (x1, y1, x2, y2 in image pixels), their 2048-d features,
    object / attribute ids (0-based over the 1600 / 400 Visual Genome classes) and
    confidences, generate_tsv's ``keep`` (roi indices) and ``max_conf`` (per roi); ``objects``
    and ``attributes``: the ids as words (Visual Genome's object names; attributes read
    ``attr#i``, no attribute vocabulary ships)."""

    boxes: np.ndarray
    features: np.ndarray
    objects_id: np.ndarray
    objects_conf: np.ndarray
    attrs_id: np.ndarray
    attrs_conf: np.ndarray
    keep: np.ndarray
    max_conf: np.ndarray
    image_h: int
    image_w: int
    im_scale: float
    num_rois: int
    objects: list = field(default_factory=list)
    attributes: list = field(default_factory=list)
    path: Optional[str] = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def _from(cls, d: dict, path: Optional[str] = None) -> "Features":
        return cls(path=path, **d)

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    def torch(self) -> dict:
        """The arrays as torch tensors sharing their memory (``torch.from_numpy``, no copy)."""
        return {name: torch.from_numpy(getattr(self, name)) for name in _ARRAYS}


def _bgr_array(image: Any) -> tuple[np.ndarray, str]:
    """A cv2-style H×W×3 uint8 BGR array and a name, from a numpy array or a PIL image."""
    if isinstance(image, np.ndarray):
        return image, ""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image.Image
        rgb = np.asarray(image.convert("RGB"))
        name = os.path.basename(getattr(image, "filename", "") or "")
        return np.ascontiguousarray(rgb[:, :, ::-1]), name
    raise TypeError(
        f"extract() takes a path, an H×W×3 uint8 BGR numpy array or a PIL image, "
        f"not {type(image).__name__}")


class Extractor:
    """The reference network, loaded once, run per image.

    ``weights``: safetensors in the HF FRCNN layout (``butd convert MODEL --map
    caffe-to-hf-frcnn`` or ``butd.convert(..., output=...)``). ``device``: ``cpu``, ``cuda`` or
    ``cuda:N``. ``precision``: ``exact`` (float32, Caffe's figures), or the fast modes of
    ``butd extract --precision`` (docs/model.md). Selection as ``butd extract``: between
    ``min_boxes`` and ``max_boxes`` boxes
    above ``conf_thresh`` (generate_tsv's 10–100 at 0.2), or exactly ``fixed`` (LXMERT: 36).
    """

    def __init__(self, weights: PathLike, device: str = "cpu", *, precision: str = "exact",
                 min_boxes: int = 10, max_boxes: int = 100, conf_thresh: float = 0.2,
                 fixed: Optional[int] = None, roi_chunk: Optional[int] = None,
                 threads: Optional[int] = None):
        self._ex = _butd._Extractor(os.fspath(weights), device, precision=precision,
                                    min_boxes=min_boxes,
                                    max_boxes=max_boxes, conf_thresh=conf_thresh, fixed=fixed,
                                    roi_chunk=roi_chunk, threads=threads)

    def extract(self, image: Any, record: Optional[PathLike] = None) -> Features:
        """Regions of one image: a path (decoded as ``cv2.imread`` decodes it), an H×W×3 uint8
        BGR numpy array (as ``cv2.imread`` returns it) or a PIL image (converted to BGR). With
        ``record``, also writes the image's record there, as ``butd extract`` does.
        Raises ``ButdError`` when the image cannot be read or has no proposals."""
        rec = None if record is None else os.fspath(record)
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            return Features._from(self._ex.extract_path(path, rec), path)
        array, name = _bgr_array(image)
        return Features._from(self._ex.extract_array(array, name, rec))

    def extract_many(self, paths: Sequence[PathLike], *, out: Optional[PathLike] = None,
                     progress: bool = True, errors: str = "raise") -> Iterator[Features]:
        """Yields the ``Features`` of each image in turn, with a progress bar on stderr.
        ``out``: also write ``<stem>.safetensors`` records there. ``errors="skip"``: report a
        failing image on stderr and go on (``"raise"``: raise ``ButdError``). Ctrl-C stops
        between images. For resumable dataset runs (shards, failures.tsv) use ``butd extract``."""
        if errors not in ("raise", "skip"):
            raise ValueError(f'errors={errors!r}: expected "raise" or "skip"')
        it = _butd._ExtractMany(self._ex, [os.fspath(p) for p in paths],
                                None if out is None else os.fspath(out), progress)
        for path, result in it:
            if isinstance(result, dict):
                yield Features._from(result, os.fspath(path))
            elif errors == "raise":
                raise ButdError(result)
            else:
                import sys
                print(f"{path}: {result}", file=sys.stderr)


def convert(caffemodel: PathLike, mapping: str = "caffe-to-hf-frcnn", *,
            output: Optional[PathLike] = None, dtype: str = "f32",
            tensors: bool = True) -> Optional[dict]:
    """A caffemodel through a mapping (a TOML file or a built-in name), as ``butd convert``:
    returns ``{key: torch.Tensor}`` in the target's order (``tensors=False``: nothing) and,
    with ``output``, writes the safetensors file (floats as ``dtype``, ``f32`` or ``f16``)."""
    arrays = _butd.convert(os.fspath(caffemodel), mapping,
                           None if output is None else os.fspath(output), dtype, tensors)
    if arrays is None:
        return None
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def hf_state_dict(caffemodel: PathLike) -> dict:
    """The BUTD caffemodel as a state_dict for the Hugging Face FRCNN of the LXMERT demo
    (``GeneralizedRCNN.load_state_dict(sd, strict=True)``). What no mapping can fix in HF's
    code (preprocessing, box conventions, its selection) is listed in mappings/README.md."""
    return convert(caffemodel, "caffe-to-hf-frcnn")


class Report(dict):
    """The parity report, the same object as ``parity.json`` (a dict), with shortcuts."""

    @property
    def passed(self) -> bool:
        """Whether the gate passed."""
        return bool(self["summary"]["gate_passed"])

    @property
    def summary(self) -> dict:
        return self["summary"]

    @property
    def tensors(self) -> list:
        """Per tensor: its gated error figure across images (parity.json's ``layers``)."""
        return self["layers"]

    @property
    def images(self) -> dict:
        """Image id → status: ``pass``, ``tie`` (a divergence a near-tie explains) or ``fail``."""
        return {img["image"]: img["status"] for img in self["images"]}


def verify(golden: PathLike, candidate: PathLike, *, thresholds: Optional[PathLike] = None,
           golden_format: Optional[str] = None, candidate_format: Optional[str] = None,
           id_map: Optional[PathLike] = None, name_prefix: str = "",
           golden_label_base: int = 0, candidate_label_base: int = 0,
           sample: Optional[int] = None, seed: int = 0, detail: int = 1000,
           require_all: bool = False, common_only: bool = False, jobs: Optional[int] = None,
           report_dir: Optional[PathLike] = None) -> Report:
    """``butd verify --golden G --candidate C``: each side a records folder or a feature file
    (TSV, img_db, npz folder, HDF5). Thresholds from ``thresholds``, else ``./parity.toml``,
    else the built-in ones. ``common_only``: golden images the candidate lacks are counted,
    not failed. ``report_dir``: also write parity.json and parity.html there."""
    fspath = lambda p: None if p is None else os.fspath(p)  # noqa: E731
    text = _butd.verify(os.fspath(golden), os.fspath(candidate),
                        thresholds=fspath(thresholds), golden_format=golden_format,
                        candidate_format=candidate_format, id_map=fspath(id_map),
                        name_prefix=name_prefix, golden_label_base=golden_label_base,
                        candidate_label_base=candidate_label_base, sample=sample, seed=seed,
                        detail=detail, require_all=require_all, common_only=common_only,
                        jobs=jobs,
                        report_dir=fspath(report_dir))
    return Report(json.loads(text))


def _array(value: Any) -> Any:
    if isinstance(value, tuple):
        dtype, shape, data = value
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)
    return value


class FeatureFile(Mapping):
    """A feature file as a read-only mapping id → record (``dict`` of read-only numpy arrays
    and ints): ``len``, ``in``, iteration over ids in file order, ``ff[id]``. In a torch
    ``Dataset``, open it in each DataLoader worker (e.g. lazily in ``__getitem__``)."""

    def __init__(self, path: PathLike):
        self._file = _butd._FeatureFile(os.fspath(path))
        self._ids = self._file.ids()

    @property
    def format(self) -> str:
        """``records``, ``butd-tsv``, ``lxmert-tsv``, ``uniter-lmdb``, ``uniter-npz`` or
        ``vqa-hdf5``."""
        return self._file.format

    def __getitem__(self, image_id: Any) -> dict:
        record = self._file.get(str(image_id))
        return {k: _array(v) for k, v in record.items()}

    def __contains__(self, image_id: object) -> bool:
        return str(image_id) in self._file

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __repr__(self) -> str:
        return f"FeatureFile({self._file.path!r}, format={self.format!r}, {len(self)} images)"


def open_features(path: PathLike) -> FeatureFile:
    """Opens a records folder, BUTD / LXMERT TSV, UNITER img_db (LMDB) or npz folder, or VQA
    HDF5 file (format detected by content) as a read-only mapping id → record."""
    return FeatureFile(path)
