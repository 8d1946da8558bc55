"""Loading LVIS annotation files (v0.5 and v1) with errors that name the file and the field.

Two entry points, for two jobs:

- :func:`load_lvis` parses the whole file, checks every record for the keys the ``lvis`` API
  needs, and returns an official ``lvis.LVIS`` object (datasets, evaluation).
- :func:`read_tables` decodes only what statistics need (ids, areas, XYWH boxes, federated label
  lists) with typed ``msgspec`` structs, skipping the polygons, into pandas DataFrames. On an
  LVIS-v1-train-sized file it is several times faster and smaller than ``lvis.LVIS`` (see
  ``benchmarks/RESULTS.md``).

Image paths: LVIS v0.5 images carry ``file_name`` (relative to the split's image folder); v1
images carry none, and the path is the last two parts of ``coco_url``, e.g.
``http://images.cocodataset.org/train2017/000000391895.jpg`` -> ``train2017/000000391895.jpg``
under an image root (as detectron2 and mmdetection resolve it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import lvis


REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "images": ("id", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "segmentation", "area", "bbox"),
    "categories": ("id", "name", "frequency"),
}


class LVISFormatError(ValueError):
    """An annotation file that is not valid LVIS; the message names the file and the field."""


# ----------------------------------------------------------------------------- raw JSON


def _read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LVIS annotation file not found: {path}")
    return path.read_bytes()


def _decode_error(path: Path, data: bytes, error: msgspec.DecodeError) -> LVISFormatError:
    """Turn msgspec's message (with a byte offset or a ``$.annotations[3]`` path) into ours."""
    message = str(error)
    if "(byte " in message:
        offset = int(message.rsplit("(byte ", 1)[1].rstrip(")"))
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        return LVISFormatError(f"{path}: invalid JSON at line {line}, column {column}: {message}")
    if " - at `$" in message:
        what, where = message.split(" - at `", 1)
        return LVISFormatError(f"{path}: {where.rstrip('`')}: {what}")
    return LVISFormatError(f"{path}: {message}")


def load_json(path: str | os.PathLike) -> dict:
    """Parse an LVIS annotation file into plain Python objects (dicts and lists).

    Raises ``FileNotFoundError`` for a missing file and :class:`LVISFormatError` (with line and
    column) for invalid JSON.
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        raise _decode_error(path, data, error) from None


def validate_dataset(dataset: object, path: str | os.PathLike = "<dict>") -> None:
    """Check that ``dataset`` has the sections and keys the ``lvis`` API reads.

    Raises :class:`LVISFormatError` naming the file, the section, the record's index and id, and
    the missing key, for the first offending record.
    """
    if not isinstance(dataset, dict):
        raise LVISFormatError(
            f"{path}: top level must be a JSON object, got {type(dataset).__name__}"
        )
    for section, keys in REQUIRED_KEYS.items():
        records = dataset.get(section)
        if not isinstance(records, list):
            found = "missing" if records is None else type(records).__name__
            raise LVISFormatError(f"{path}: '{section}' must be a list of objects ({found})")
        required = frozenset(keys)
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise LVISFormatError(f"{path}: {section}[{index}] is not a JSON object")
            if not required.issubset(record.keys()):
                missing = next(k for k in keys if k not in record)
                raise LVISFormatError(
                    f"{path}: {section}[{index}] (id={record.get('id')!r}) "
                    f"is missing required key '{missing}'"
                )
    for index, image in enumerate(dataset["images"]):
        if "file_name" not in image and "coco_url" not in image:
            raise LVISFormatError(
                f"{path}: images[{index}] (id={image['id']!r}) has neither 'file_name' (LVIS v0.5) "
                "nor 'coco_url' (LVIS v1), so its image file cannot be found"
            )


def load_lvis(path: str | os.PathLike) -> lvis.LVIS:
    """Load an LVIS v0.5 or v1 annotation file as an official ``lvis.LVIS`` object.

    The file is parsed once, validated with :func:`validate_dataset`, then indexed by the ``lvis``
    API unchanged (``.dataset``, ``.anns``, ``.imgs``, ``.cats``, ``.get_ann_ids`` ...).
    """
    dataset = load_json(path)
    validate_dataset(dataset, path)
    from lvisnb.lvis_api import LVISFromDict  # lvis imports matplotlib: only when needed

    return LVISFromDict(dataset, source=str(path))


def image_relpath(image: dict) -> str:
    """Path of an LVIS image relative to the image root.

    v0.5: ``file_name``; v1: the last two parts of ``coco_url`` (``train2017/000000391895.jpg``).
    """
    if image.get("file_name"):
        return image["file_name"]
    parts = image["coco_url"].rstrip("/").split("/")
    return "/".join(parts[-2:])


def default_image_root(ann_file: str | os.PathLike) -> Path:
    """Where images resolve when no root is given: two levels above the annotation file
    (``ROOT/annotations/lvis_v1_val.json`` -> ``ROOT``, the layout of LVIS and toy-LVIS)."""
    return Path(ann_file).resolve().parents[1]


def image_path(image: dict, image_root: str | os.PathLike) -> Path:
    """Absolute location of an LVIS image under ``image_root`` (see :func:`image_relpath`)."""
    return Path(image_root) / image_relpath(image)


# ----------------------------------------------------------------------------- fast tables


class _Image(msgspec.Struct, gc=False):
    id: int
    width: int
    height: int
    neg_category_ids: list[int] = []
    not_exhaustive_category_ids: list[int] = []
    file_name: str | None = None
    coco_url: str | None = None


class _Annotation(msgspec.Struct, gc=False):
    id: int
    image_id: int
    category_id: int
    area: float
    bbox: tuple[float, float, float, float]
    segmentation: msgspec.Raw  # required, but left undecoded: a view into the file's bytes


class _Category(msgspec.Struct, gc=False):
    id: int
    name: str
    frequency: str
    synset: str | None = None
    image_count: int | None = None
    instance_count: int | None = None


class _LVISFile(msgspec.Struct, gc=False):
    images: list[_Image]
    annotations: list[_Annotation]
    categories: list[_Category]


@dataclass
class LVISTables:
    """An LVIS annotation file as three DataFrames (no polygons).

    - ``images``: ``id``, ``width``, ``height`` (pixels), ``path`` (relative, see
      :func:`image_relpath`), ``neg_category_ids`` and ``not_exhaustive_category_ids`` (lists of
      LVIS category ids).
    - ``annotations``: ``id``, ``image_id``, ``category_id`` (LVIS id), ``area`` (mask area,
      pixels^2), ``x``, ``y``, ``w``, ``h`` (the XYWH box, pixels).
    - ``categories``: ``id``, ``name``, ``synset``, ``frequency`` (r/c/f as in the file),
      ``image_count`` and ``instance_count`` as stored in the file (<NA> when absent).
    """

    images: pd.DataFrame
    annotations: pd.DataFrame
    categories: pd.DataFrame
    source: str = "<memory>"


def _column(records: list, field: str, dtype) -> np.ndarray:
    return np.fromiter((getattr(r, field) for r in records), dtype=dtype, count=len(records))


def read_tables(path: str | os.PathLike) -> LVISTables:
    """Decode an LVIS annotation file into :class:`LVISTables`, skipping segmentations.

    Required keys are checked while decoding (``segmentation`` included); an error names the file
    and the JSON path of the record, e.g. ``$.annotations[12]``.
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        parsed = msgspec.json.decode(data, type=_LVISFile)
    except msgspec.ValidationError as error:
        raise _decode_error(path, data, error) from None
    except msgspec.DecodeError as error:
        raise _decode_error(path, data, error) from None
    del data

    anns = parsed.annotations
    boxes = np.array([a.bbox for a in anns], dtype=np.float64).reshape(-1, 4)
    annotations = pd.DataFrame(
        {
            "id": _column(anns, "id", np.int64),
            "image_id": _column(anns, "image_id", np.int64),
            "category_id": _column(anns, "category_id", np.int64),
            "area": _column(anns, "area", np.float64),
            "x": boxes[:, 0],
            "y": boxes[:, 1],
            "w": boxes[:, 2],
            "h": boxes[:, 3],
        }
    )
    parsed.annotations = []
    del anns, boxes

    for index, image in enumerate(parsed.images):
        if not image.file_name and not image.coco_url:
            raise LVISFormatError(
                f"{path}: $.images[{index}] (id={image.id}) has neither 'file_name' (LVIS v0.5) "
                "nor 'coco_url' (LVIS v1)"
            )
    images = pd.DataFrame(
        {
            "id": _column(parsed.images, "id", np.int64),
            "width": _column(parsed.images, "width", np.int64),
            "height": _column(parsed.images, "height", np.int64),
            "path": [
                image_relpath({"file_name": i.file_name, "coco_url": i.coco_url})
                for i in parsed.images
            ],
            "neg_category_ids": [i.neg_category_ids for i in parsed.images],
            "not_exhaustive_category_ids": [i.not_exhaustive_category_ids for i in parsed.images],
        }
    )
    for index, category in enumerate(parsed.categories):
        if category.frequency not in ("r", "c", "f"):
            raise LVISFormatError(
                f"{path}: $.categories[{index}].frequency is {category.frequency!r}; "
                "expected 'r', 'c' or 'f'"
            )
    categories = pd.DataFrame(
        {
            "id": [c.id for c in parsed.categories],
            "name": [c.name for c in parsed.categories],
            "synset": [c.synset for c in parsed.categories],
            "frequency": pd.Categorical(
                [c.frequency for c in parsed.categories], categories=["r", "c", "f"]
            ),
            "image_count": pd.array([c.image_count for c in parsed.categories], dtype="Int64"),
            "instance_count": pd.array(
                [c.instance_count for c in parsed.categories], dtype="Int64"
            ),
        }
    )
    return LVISTables(
        images=images, annotations=annotations, categories=categories, source=str(path)
    )
