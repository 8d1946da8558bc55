"""An LVIS annotation file as three DataFrames, decoded fast (statistics, notebook 01).

:func:`read_tables` decodes only what statistics need (ids, areas, XYWH boxes, federated label
lists) with typed ``msgspec`` structs, keeping no polygons, into pandas DataFrames
(:class:`LVISTables`), and checks the file as every entry point does
(:func:`lvisnb.annotations.validate.validate_parsed`). On an LVIS-v1-train-sized file it is
several times faster and smaller than ``lvis.LVIS`` (see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pandas as pd

from lvisnb.annotations.images import image_relpath
from lvisnb.annotations.json_file import LVISFormatError, decode_error, gc_paused, read_bytes
from lvisnb.annotations.validate import FREQUENCIES, validate_dataset, validate_parsed


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
    ignore: msgspec.Raw = None  # refused unless 0 (validate._check_no_ignore)


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
      :func:`lvisnb.annotations.images.image_relpath`), ``neg_category_ids`` and
      ``not_exhaustive_category_ids`` (lists of LVIS category ids).
    - ``annotations``: ``id``, ``image_id``, ``category_id`` (LVIS id), ``area`` (mask area,
      pixels^2), ``x``, ``y``, ``w``, ``h`` (the XYWH box, pixels).
    - ``categories``: ``id``, ``name``, ``synset``, ``frequency`` (r/c/f as in the file),
      ``image_count`` and ``instance_count`` as stored in the file (<NA> when absent).
    """

    images: pd.DataFrame
    annotations: pd.DataFrame
    categories: pd.DataFrame
    source: str = "<memory>"


def read_tables(path: str | os.PathLike) -> LVISTables:
    """Decode an LVIS annotation file into :class:`LVISTables` (no segmentations kept).

    The file is decoded with typed ``msgspec`` structs (keys and types checked while decoding)
    and checked as :func:`validate_dataset` checks it (:func:`validate_parsed`), segmentations
    included (decoded from their raw bytes a chunk at a time, then dropped); an error is the one
    every other entry point gives for the file. Statistics need annotations: a file without any
    is refused (``<file>: no annotations``), as one without images or categories.
    """
    path = Path(path)
    data = read_bytes(path)
    with gc_paused():
        try:
            parsed = msgspec.json.decode(data, type=_LVISFile)
        except msgspec.ValidationError as error:  # a key or a type: found again as everywhere
            raise _found_untyped(path, data, error) from None
        except msgspec.DecodeError as error:
            raise decode_error(path, data, error) from None
        del data
        try:
            columns = validate_parsed(parsed, path)
        except LVISFormatError as error:
            raise _found_untyped(path, read_bytes(path), error) from None
    boxes = columns.bbox
    annotations = pd.DataFrame(
        {
            "id": columns.ann_id,
            "image_id": columns.ann_image,
            "category_id": columns.ann_category,
            "area": columns.area,
            "x": boxes[:, 0],
            "y": boxes[:, 1],
            "w": boxes[:, 2],
            "h": boxes[:, 3],
        }
    )
    parsed.annotations = []
    images = pd.DataFrame(
        {
            "id": columns.image_id,
            "width": columns.width,
            "height": columns.height,
            "path": [
                image_relpath({"file_name": i.file_name, "coco_url": i.coco_url})
                for i in parsed.images
            ],
            "neg_category_ids": [i.neg_category_ids for i in parsed.images],
            "not_exhaustive_category_ids": [i.not_exhaustive_category_ids for i in parsed.images],
        }
    )
    categories = pd.DataFrame(
        {
            "id": columns.category_id,
            "name": [c.name for c in parsed.categories],
            "synset": [c.synset for c in parsed.categories],
            "frequency": pd.Categorical(
                [c.frequency for c in parsed.categories], categories=list(FREQUENCIES)
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


def _found_untyped(path: Path, data: bytes, error: Exception) -> Exception:
    """The error for a file :func:`read_tables` refused (the typed decoder: a missing key, a
    value of the wrong type; or a check on the typed values, which print unlike the file's,
    ``1.0`` for ``1``): found again by :func:`lvisnb.annotations.json_file.load_json` and
    :func:`validate_dataset`, so that the message is the one of every other entry point;
    ``error`` if they find nothing. Runs only on a bad file."""
    try:
        dataset = msgspec.json.decode(data)
    except msgspec.DecodeError as untyped:
        return decode_error(path, data, untyped)
    try:
        validate_dataset(dataset, path)
    except LVISFormatError as found:
        return found
    if isinstance(error, msgspec.DecodeError):
        return decode_error(path, data, error)
    return error
