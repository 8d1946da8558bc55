"""Loading LVIS annotation files (v0.5 and v1) with errors that name the file and the field.

Two entry points, for two jobs:

- :func:`load_lvis` parses the whole file, checks it (:func:`validate_dataset`) and returns an
  official ``lvis.LVIS`` object (datasets, evaluation).
- :func:`read_tables` decodes only what statistics need (ids, areas, XYWH boxes, federated label
  lists) with typed ``msgspec`` structs, keeping no polygons, into pandas DataFrames. On an
  LVIS-v1-train-sized file it is several times faster and smaller than ``lvis.LVIS`` (see
  ``benchmarks/RESULTS.md``).

Every entry point that reads an annotation file (these two, ``ground_truth.load_ground_truth``,
``scene.load_scene``, ``dataset.LVISDetection``) checks it once with the same checks
(:func:`validate_dataset`): a bad value is an :class:`LVISFormatError` naming the file, the
section and record index, the record's id and the field.

Image paths (:func:`image_relpath`): the last two parts of ``coco_url``, e.g.
``http://images.cocodataset.org/train2017/000000391895.jpg`` -> ``train2017/000000391895.jpg``
under an image root (as detectron2 resolves it); real v0.5 records carry a ``coco_url`` too, and
a COCO 2014 ``file_name`` that names no COCO 2017 file. Without ``coco_url``, ``file_name`` with
its ``COCO_<split>2014_`` prefix stripped (as mmdetection's ``LVISV05Dataset``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from dataclasses import dataclass
from functools import partial
from itertools import chain
from operator import attrgetter, itemgetter, methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import msgspec
import numpy as np
import pandas as pd

from lvisnb.annotations import masks

if TYPE_CHECKING:
    import lvis


REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "images": ("id", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "segmentation", "area", "bbox"),
    "categories": ("id", "name", "frequency"),
}


class ImageReadError(RuntimeError):
    """An image file that is missing or cannot be decoded; names the path and the image id."""


class LVISFormatError(ValueError):
    """An annotation file that is not valid LVIS; the message names the file and the field."""


# ----------------------------------------------------------------------------- raw JSON


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while building or walking millions of JSON
    objects (they hold no cycles; reference counting frees them): its repeated full
    collections otherwise cost as much as the decoding itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LVIS annotation file not found: {path}")
    return path.read_bytes()


_NON_JSON_LITERALS = (b"NaN", b"Infinity", b"-Infinity")  # what Python's json.dump writes


def json_problem(data: bytes, message: str) -> str:
    """msgspec's JSON error ``message`` on ``data``, said in words: an empty file, a UTF-16 or
    UTF-8-BOM encoding, or a ``NaN`` / ``Infinity`` literal (Python's ``json.dump`` writes them
    for float nan/inf; JSON has no such values), else the line and column of the error."""
    if not data.strip():
        return "the file is empty"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and 0 in data[:2]):
        return "the file is UTF-16 encoded; JSON files must be UTF-8"
    if data.startswith(b"\xef\xbb\xbf"):
        return "the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without one"
    if "truncated" in message:
        return "the JSON ends early: the file is cut short (an interrupted write or copy?)"
    if "(byte " not in message:
        return message
    offset = int(message.rsplit("(byte ", 1)[1].rstrip(")"))
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    where = f"line {line}, column {column}"
    for literal in _NON_JSON_LITERALS:
        if data.startswith(literal, offset) or data.startswith(literal, offset - 1):
            return (
                f"{literal.decode()} at {where} is not JSON (Python's json writes it for a "
                "non-finite float): every number must be finite"
            )
    return f"invalid JSON at {where}: {message}"


def _decode_error(path: Path, data: bytes, error: msgspec.DecodeError) -> LVISFormatError:
    """Turn msgspec's message (with a byte offset or a ``$.annotations[3]`` path) into ours."""
    message = str(error)
    if "(byte " in message or "truncated" in message or not data.strip():
        return LVISFormatError(f"{path}: {json_problem(data, message)}")
    if "[...]" in message:  # e.g. 1e999 (no float) in an untyped decode: where exactly?
        message = _located(data) or message
    if " - at `$" in message:
        what, where = message.split(" - at `", 1)
        return LVISFormatError(f"{path}: {where.rstrip('`')}: {what}")
    return LVISFormatError(f"{path}: {message}")


def _where_schema():
    """A type that decodes an LVIS file's sections as TypedDicts of ``Any``, so that msgspec's
    error path names the section, the index and the key (``$.annotations[3].area``) where an
    untyped decode only says ``$[...][3][...]``."""
    keys = {
        "images": (*REQUIRED_KEYS["images"], "file_name", "coco_url", *LABEL_LISTS),
        "annotations": REQUIRED_KEYS["annotations"],
        "categories": (*REQUIRED_KEYS["categories"], "synset", "image_count", "instance_count"),
    }
    records = {
        section: list[TypedDict(f"_Where_{section}", dict.fromkeys(names, Any), total=False)]
        for section, names in keys.items()
    }
    return TypedDict("_WhereFile", records, total=False)


def _located(data: bytes) -> str | None:
    """msgspec's message for ``data`` with its path spelled out (:func:`_where_schema`), or
    ``None`` if that decode finds nothing. Runs only on a bad file."""
    try:
        msgspec.json.decode(data, type=_where_schema())
    except msgspec.DecodeError as error:
        return None if "[...]" in str(error) else str(error)
    return None


def load_json(path: str | os.PathLike) -> dict:
    """Parse an LVIS annotation file into plain Python objects (dicts and lists).

    Raises ``FileNotFoundError`` for a missing file and :class:`LVISFormatError` (with line and
    column) for invalid JSON.
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        with gc_paused():
            return msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        raise _decode_error(path, data, error) from None
    except RecursionError:
        raise LVISFormatError(f"{path}: {TOO_DEEP}") from None


TOO_DEEP = "the JSON is nested too deeply to be an LVIS file (lists within lists ...)"


# ----------------------------------------------------------------------------- validation
#
# Every entry point (load_lvis, read_tables, ground_truth.load_ground_truth, scene.load_scene,
# dataset.LVISDetection) runs these same checks once, where the file is read. Records arrive as
# dicts (load_json) or msgspec structs (read_tables); _Records reads both the same way, and the
# checks run column-wise with numpy, record by record only over the few a vectorised pass flags.

FREQUENCIES = ("r", "c", "f")
MAX_IMAGE_SIDE = 2**31 - 1  # pycocotools keeps mask sizes in 32 bits
MAX_IMAGE_PIXELS = 2**32 - 1  # ... and run lengths, so height x width must fit too
_CHUNK = 65_536  # annotations whose segmentations are checked together (bounds the memory)


class _Absent:
    """The value of an optional key that a record does not have (``null`` is not absent)."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()
_INT = frozenset({int})
_NUMBER = frozenset({int, float})
_NONE = type(None)
# optional keys: the types a present value may have (as the msgspec structs of read_tables)
_OPTIONAL: dict[str, dict[str, tuple[frozenset, str]]] = {
    "images": {
        "file_name": (frozenset({str, _NONE}), "a string"),
        "coco_url": (frozenset({str, _NONE}), "a string"),
    },
    "categories": {
        "synset": (frozenset({str, _NONE}), "a string"),
        "image_count": (frozenset({int, _NONE}), "an integer"),
        "instance_count": (frozenset({int, _NONE}), "an integer"),
    },
}
LABEL_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing_key(records: list, section: str, path) -> LVISFormatError:
    """The error for the first record of ``section`` without one of its required keys."""
    keys = REQUIRED_KEYS[section]
    for index, record in enumerate(records):
        missing = [key for key in keys if key not in record]
        if missing:
            return LVISFormatError(
                f"{path}: {section}[{index}] (id={record.get('id')!r}) "
                f"is missing required key '{missing[0]}'"
            )
    return LVISFormatError(f"{path}: a record of '{section}' is missing a required key")


@dataclass
class _Records:
    """One section of an LVIS file, dicts (``typed=False``) or msgspec structs, read column by
    column; ``ids`` (int64, record order) once :meth:`set_ids` has checked them."""

    section: str
    records: list
    path: str
    typed: bool
    ids: np.ndarray | None = None

    def values(self, key: str) -> list:
        """Every record's required ``key`` (a missing one raises, naming the record)."""
        try:
            return list(map(attrgetter(key) if self.typed else itemgetter(key), self.records))
        except KeyError:
            raise _missing_key(self.records, self.section, self.path) from None

    def optional(self, key: str) -> list:
        """Every record's optional ``key``; ``_ABSENT`` where a dict lacks it."""
        if self.typed:
            return list(map(attrgetter(key), self.records))
        return list(map(methodcaller("get", key, _ABSENT), self.records))

    def fault(self, index: int, key: str, reason: str) -> LVISFormatError:
        """The error naming the file, ``section[index]``, the record's id and ``key``."""
        return LVISFormatError(
            f"{self.path}: {self.section}[{index}] (id={int(self.ids[index])}) "
            f"field '{key}' {reason}"
        )

    def of_types(self, values: list, kinds: frozenset, what: str, key: str) -> None:
        """Raise for the first value whose type is not in ``kinds`` (``bool`` is not ``int``)."""
        if set(map(type, values)) <= kinds:
            return
        index = next(i for i, v in enumerate(values) if type(v) not in kinds)
        raise self.fault(index, key, f"must be {what}, got {_short(values[index])}")

    def integers(self, key: str) -> np.ndarray:
        """int64 of the required integer ``key``."""
        values = self.values(key)
        self.of_types(values, _INT, "an integer", key)
        try:
            return np.fromiter(values, dtype=np.int64, count=len(values))
        except OverflowError:
            index = next(i for i, v in enumerate(values) if not -(2**63) <= v < 2**63)
            raise self.fault(index, key, f"is {values[index]}, beyond 64-bit integers") from None

    def numbers(self, key: str) -> np.ndarray:
        """float64 of the required number ``key`` (an integer too large for a float is inf)."""
        values = self.values(key)
        self.of_types(values, _NUMBER, "a number", key)
        return _as_float64(values)

    def set_ids(self) -> np.ndarray:
        """Check the ``id`` of every record (:func:`check_ids`) and keep them."""
        self.ids = _id_values(self.values("id"), self.section, self.path)
        return self.ids


def _as_float64(values: list) -> np.ndarray:
    """float64 of numbers (type-checked: ``np.fromiter`` would also take ``True`` and ``"4"``);
    an integer beyond the float range becomes inf."""
    try:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:
        return np.array(
            [v if type(v) is float or -1e308 < v < 1e308 else np.inf for v in values],
            dtype=np.float64,
        )


def _check_sections(dataset: object, path) -> None:
    """The top level is an object whose ``images``, ``annotations`` and ``categories`` are
    lists of objects."""
    if not isinstance(dataset, dict):
        raise LVISFormatError(
            f"{path}: top level must be a JSON object, got {type(dataset).__name__}"
        )
    for section in REQUIRED_KEYS:
        records = dataset.get(section)
        if not isinstance(records, list):
            found = "missing" if records is None else type(records).__name__
            raise LVISFormatError(f"{path}: '{section}' must be a list of objects ({found})")
        if not set(map(type, records)) <= {dict}:
            index = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
            if index is not None:
                raise LVISFormatError(f"{path}: {section}[{index}] is not a JSON object")


def _check_not_empty(sizes: dict[str, int], path, sections=("images", "categories")) -> None:
    """``sections`` have records. Nothing can be trained, evaluated, counted or drawn from a
    file without images or categories; one without annotations is legal LVIS (``LVISEval``
    scores it), but statistics (:func:`read_tables`) and training need annotations too."""
    for section in sections:
        if not sizes[section]:
            raise LVISFormatError(f"{path}: no {section} (the '{section}' list is empty)")


def _check_images(images: _Records) -> tuple[np.ndarray, np.ndarray]:
    """``width`` and ``height`` positive integers; ``file_name`` / ``coco_url`` strings, one of
    them non-empty; label lists (:func:`_check_label_list`). Returns (height, width)."""
    sides = {}
    for key in ("height", "width"):
        side = sides[key] = images.integers(key)
        bad = np.flatnonzero((side <= 0) | (side > MAX_IMAGE_SIDE))
        if bad.size:
            raise images.fault(
                int(bad[0]),
                key,
                f"is {side[bad[0]]}; an image side is 1 to {MAX_IMAGE_SIDE} pixels",
            )
    pixels = sides["height"] * sides["width"]
    bad = np.flatnonzero(pixels > MAX_IMAGE_PIXELS)
    if bad.size:
        raise images.fault(
            int(bad[0]),
            "height",
            f"x width is {pixels[bad[0]]} pixels; masks (pycocotools RLE) count pixels in "
            f"32 bits, at most {MAX_IMAGE_PIXELS}",
        )
    _check_optional(images)
    file_name, coco_url = images.optional("file_name"), images.optional("coco_url")
    for index, (name, url) in enumerate(zip(file_name, coco_url, strict=True)):
        if not (type(name) is str and name) and not (type(url) is str and url):
            raise LVISFormatError(
                f"{images.path}: images[{index}] (id={int(images.ids[index])}) has neither "
                "'file_name' (LVIS v0.5) nor 'coco_url' (LVIS v1), so its image file cannot "
                "be found"
            )
    for key in LABEL_LISTS:
        _check_label_list(images, key)
    return sides["height"], sides["width"]


def _check_optional(records: _Records) -> None:
    for key, (kinds, what) in _OPTIONAL[records.section].items():
        records.of_types(records.optional(key), kinds | {_Absent}, what, key)


def _check_label_list(images: _Records, key: str) -> None:
    """``key`` (``neg_category_ids`` / ``not_exhaustive_category_ids``), where present, is a
    list of 64-bit integers. Ids that are no category of the file are allowed: ``LVISEval``
    only tests membership in these lists (``cat_id in img_nl[img_id]``), so an unknown id
    changes nothing, and :mod:`lvisnb.evaluation.ground_truth` drops them likewise."""
    lists = images.optional(key)
    images.of_types(lists, frozenset({list, _Absent}), "a list of category ids", key)
    lists = [[] if v is _ABSENT else v for v in lists]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = list(chain.from_iterable(lists))
    owner = np.repeat(np.arange(len(lists)), lengths)
    wrong = set(map(type, flat)) - _INT
    if not wrong:
        try:
            np.array(flat, dtype=np.int64)
            return
        except OverflowError:
            pass
    bad = next(j for j, v in enumerate(flat) if type(v) is not int or not -(2**63) <= v < 2**63)
    index = int(owner[bad])
    raise images.fault(
        index, key, f"must be a list of integer category ids, got {_short(lists[index])}"
    )


def _check_categories(categories: _Records) -> None:
    """``name`` a string, ``frequency`` one of 'r', 'c', 'f'; optional keys' types."""
    categories.of_types(categories.values("name"), frozenset({str}), "a string", "name")
    frequency = categories.values("frequency")
    if not all(type(f) is str for f in frequency) or not set(frequency) <= set(FREQUENCIES):
        index = next(i for i, f in enumerate(frequency) if f not in FREQUENCIES)
        raise categories.fault(
            index, "frequency", f"is {_short(frequency[index])}; expected 'r', 'c' or 'f'"
        )
    _check_optional(categories)


def _rows(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each of ``values`` in ``ids`` (unsorted, unique) and whether it is there."""
    order = np.argsort(ids, kind="stable")
    found = np.searchsorted(ids[order], values).clip(0, len(ids) - 1)
    return order[found], ids[order[found]] == values


def _check_references(anns: _Records, image_ids: np.ndarray, category_ids: np.ndarray):
    """``image_id`` and ``category_id`` are integers of an image and a category of the file.
    Returns (image_id, category_id, row of the image of each annotation)."""
    image_id = anns.integers("image_id")
    category_id = anns.integers("category_id")
    rows, known = _rows(image_ids, image_id)
    bad = np.flatnonzero(~known)
    if bad.size:
        raise anns.fault(
            int(bad[0]), "image_id", f"is {image_id[bad[0]]}, not an image of the file"
        )
    _, known = _rows(category_ids, category_id)
    bad = np.flatnonzero(~known)
    if bad.size:
        raise anns.fault(
            int(bad[0]), "category_id", f"is {category_id[bad[0]]}, not a category of the file"
        )
    return image_id, category_id, rows


def _check_areas(anns: _Records) -> np.ndarray:
    """``area`` a finite number >= 0 (0 is legal: evaluation ignores such instances, as
    ``LVISEval`` does)."""
    area = anns.numbers("area")
    bad = np.flatnonzero(~(np.isfinite(area) & (area >= 0)))
    if bad.size:
        raise anns.fault(int(bad[0]), "area", f"is {area[bad[0]]}; an area is finite and >= 0")
    return area


def _check_boxes(anns: _Records) -> np.ndarray:
    """``bbox`` 4 finite numbers ``[x, y, width, height]``, width and height >= 0; (N, 4)."""
    boxes = anns.values("bbox")
    what = "4 numbers [x, y, width, height]"
    anns.of_types(boxes, frozenset({list, tuple}), what, "bbox")
    lengths = np.fromiter(map(len, boxes), dtype=np.int64, count=len(boxes))
    bad = np.flatnonzero(lengths != 4)
    if bad.size:
        raise anns.fault(int(bad[0]), "bbox", f"must be {what}, got {_short(boxes[bad[0]])}")
    if set(map(type, chain.from_iterable(boxes))) - _NUMBER:
        index = next(i for i, box in enumerate(boxes) if set(map(type, box)) - _NUMBER)
        raise anns.fault(index, "bbox", f"must be {what}, got {_short(boxes[index])}")
    try:
        xywh = np.fromiter(chain.from_iterable(boxes), dtype=np.float64, count=4 * len(boxes))
    except OverflowError:
        xywh = _as_float64(list(chain.from_iterable(boxes)))
    xywh = xywh.reshape(-1, 4)
    bad = np.flatnonzero(~np.isfinite(xywh).all(axis=1))
    if bad.size:
        raise anns.fault(int(bad[0]), "bbox", f"must be finite, got {_short(boxes[bad[0]])}")
    bad = np.flatnonzero((xywh[:, 2:] < 0).any(axis=1))
    if bad.size:
        index = int(bad[0])
        raise anns.fault(index, "bbox", f"has a negative width or height: {_short(boxes[index])}")
    return xywh


def _check_no_ignore(anns: _Records) -> None:
    """No ``ignore`` flag: LVIS has none, ``LVISEval`` would honour one (a match to an ignored
    instance is ignored) while COCO-style engines know only ``iscrowd``, so the backends
    would disagree. ``"ignore": 0`` is accepted."""
    flags = anns.optional("ignore")
    if anns.typed:  # raw JSON of the structs' rare ignore fields
        flags = [v if v is None else msgspec.json.decode(v) for v in flags]
    bad = next((i for i, v in enumerate(flags) if v is not _ABSENT and v not in (0, None)), None)
    if bad is not None:
        raise anns.fault(
            bad,
            "ignore",
            f"is {_short(flags[bad])}; LVIS annotations have no ignore flag "
            "(remove the instance, or give it area 0, which LVISEval leaves out)",
        )


@dataclass
class AnnotationColumns:
    """The checked values of an LVIS file, column-wise, each section in record order: image
    ``image_id`` / ``height`` / ``width`` (int64, pixels), ``category_id`` (int64), and per
    annotation ``ann_id``, ``ann_image`` / ``ann_category`` (its image and category ids),
    ``area`` (float64, px^2), ``bbox`` ((N, 4) float64, XYWH pixels) and its image's
    ``ann_height`` / ``ann_width``."""

    image_id: np.ndarray
    height: np.ndarray
    width: np.ndarray
    category_id: np.ndarray
    ann_id: np.ndarray
    ann_image: np.ndarray
    ann_category: np.ndarray
    area: np.ndarray
    bbox: np.ndarray  # (N, 4) XYWH
    ann_height: np.ndarray  # of each annotation's image
    ann_width: np.ndarray


def _check_records(
    images: _Records, categories: _Records, annotations: _Records
) -> AnnotationColumns:
    """Every check but the segmentations' (:func:`_check_segmentations`), in this order: ids
    (:func:`check_ids`), images, categories, annotations."""
    image_id, category_id = images.set_ids(), categories.set_ids()
    ann_id = annotations.set_ids()
    height, width = _check_images(images)
    _check_categories(categories)
    ann_image, ann_category, rows = _check_references(annotations, image_id, category_id)
    area = _check_areas(annotations)
    bbox = _check_boxes(annotations)
    _check_no_ignore(annotations)
    return AnnotationColumns(
        image_id,
        height,
        width,
        category_id,
        ann_id,
        ann_image,
        ann_category,
        area,
        bbox,
        height[rows],
        width[rows],
    )


# ----------------------------------------------------------------------------- segmentations


def _is_size(size) -> bool:
    return (
        isinstance(size, list | tuple)
        and len(size) == 2
        and all(type(v) is int and 0 < v <= MAX_IMAGE_SIDE for v in size)
    )


def _segmentation_problem(segmentation, height: int, width: int) -> str | None:
    """Why an annotation's ``segmentation`` is not legal, or ``None``:
    :func:`lvisnb.annotations.masks.segmentation_problem`, and for an RLE a ``size`` of two integers
    and, when compressed, :func:`lvisnb.annotations.masks.compressed_problem`."""
    if isinstance(segmentation, dict) and "counts" in segmentation:
        counts = segmentation["counts"]
        if not isinstance(counts, str | bytes | list):
            return (
                "RLE counts must be a string (compressed) or a list of integers "
                f"(uncompressed), got {type(counts).__name__}"
            )
        if not _is_size(segmentation.get("size")):
            return (
                "RLE size must be [height, width], two positive integers; got "
                f"{_short(segmentation.get('size', _ABSENT))}"
            )
    problem = masks.segmentation_problem(segmentation, height, width)
    if problem is None and isinstance(segmentation, dict):
        if isinstance(segmentation.get("counts"), str | bytes):
            problem = masks.compressed_problem(segmentation, height, width)
    return problem


def _coordinates(parts: list[list], count: int, typed: bool) -> np.ndarray | None:
    """float64 of the ``count`` numbers of ``parts`` flat, or ``None`` if one is no number
    (not checked when ``typed``: msgspec decoded them as floats); one pass over the numbers
    (an LVIS train file has ~40M), two unless typed, no list of them."""
    if not typed and set(map(type, chain.from_iterable(parts))) - _NUMBER:
        return None
    try:
        return np.fromiter(chain.from_iterable(parts), dtype=np.float64, count=count)
    except OverflowError:
        return _as_float64(list(chain.from_iterable(parts)))


def _suspect_polygons(polygons: list, height, width, typed: bool = False) -> np.ndarray:
    """Which polygon segmentations (lists) may break
    :func:`lvisnb.annotations.masks.polygon_problem`'s rules, checked flat: no part, a part not a
    list of numbers, of an odd count or under 6, a vertex not finite or beyond ``POLYGON_MARGIN``
    image sizes. ``typed``: decoded as ``list[list[float]]``, the types need no check."""
    counts = np.fromiter(map(len, polygons), dtype=np.int64, count=len(polygons))
    suspect = counts == 0
    owner = np.repeat(np.arange(len(polygons)), counts)
    parts = list(chain.from_iterable(polygons))
    if set(map(type, parts)) - {list}:
        listed = np.fromiter((type(p) is list for p in parts), dtype=bool, count=len(parts))
        suspect[owner[~listed]] = True
        parts, owner = [p for p, ok in zip(parts, listed, strict=True) if ok], owner[listed]
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    odd = (lengths % 2 == 1) | (lengths < 6)
    if odd.any():  # flagged; left out so that the rest pair up as (x, y)
        suspect[owner[odd]] = True
        parts = [p for p, bad in zip(parts, odd, strict=True) if not bad]
        owner, lengths = owner[~odd], lengths[~odd]
    xy = _coordinates(parts, int(lengths.sum()), typed)
    if xy is None:  # rare: a coordinate that is not a number
        coords = list(chain.from_iterable(parts))
        numeric = np.fromiter((type(c) in _NUMBER for c in coords), dtype=bool, count=len(coords))
        suspect[np.repeat(owner, lengths)[~numeric]] = True
        xy = _as_float64([c if ok else 0.0 for c, ok in zip(coords, numeric, strict=True)])
    suspect |= _far_out(xy.reshape(-1, 2), owner, lengths // 2, height, width)
    return suspect


def _far_out(xy: np.ndarray, owner: np.ndarray, vertices: np.ndarray, height, width):
    """Per polygon segmentation (``height``, ``width`` of its image): whether its vertices
    ``xy`` (parts in order, part ``j`` of segmentation ``owner[j]`` has ``vertices[j]``) reach
    beyond ``POLYGON_MARGIN`` image sizes or are not finite. Compares each segmentation's
    extent (min / max by ``reduceat``), not every vertex."""
    per = np.bincount(owner, weights=vertices, minlength=len(height)).astype(np.int64)
    has = np.flatnonzero(per)
    out = np.zeros(len(height), dtype=bool)
    if not has.size:
        return out
    starts = (np.cumsum(per) - per)[has]
    margin = masks.POLYGON_MARGIN
    for axis, side in ((0, width), (1, height)):
        values, limit = xy[:, axis], side[has].astype(np.float64)
        low = np.minimum.reduceat(values, starts)  # nan propagates: then not >= / <=
        high = np.maximum.reduceat(values, starts)
        out[has] |= ~((low >= -margin * limit) & (high <= (1 + margin) * limit))
    return out


def _suspect_rles(rles: list, height: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Which RLE segmentations (dicts) may be illegal: ``size`` not the image's, ``counts``
    not a string, or a string that :func:`lvisnb.annotations.masks.rle_areas` finds malformed or not
    covering ``height * width`` pixels. Uncompressed RLEs (``counts`` a list, which LVIS files
    do not use) are all left to the exact check."""
    sizes = [s if _is_size(s) else (0, 0) for s in map(methodcaller("get", "size"), rles)]
    size = np.array(sizes, dtype=np.int64).reshape(-1, 2)
    counts = list(map(methodcaller("get", "counts"), rles))
    compressed = np.flatnonzero([type(c) is str for c in counts])
    suspect = (size[:, 0] != height) | (size[:, 1] != width)
    suspect[np.setdiff1d(np.arange(len(rles)), compressed)] = True
    if compressed.size:
        sizes = np.stack([height[compressed], width[compressed]], axis=1)
        _, total, ok = masks.rle_areas(sizes, [counts[i] for i in compressed])
        suspect[compressed] |= ~ok | (total != height[compressed] * width[compressed])
    return suspect


def _suspect_segmentations(segmentations: list, height, width, typed: bool) -> np.ndarray:
    """Boolean per segmentation: not cleared by the vectorised passes (every illegal one is
    among these; :func:`_segmentation_problem` then decides)."""
    kinds = list(map(type, segmentations))
    if set(kinds) == {list}:  # polygons only, as LVIS files
        return _suspect_polygons(segmentations, height, width, typed)
    suspect = np.ones(len(kinds), dtype=bool)
    for kind, check in ((list, partial(_suspect_polygons, typed=typed)), (dict, _suspect_rles)):
        where = np.flatnonzero([k is kind for k in kinds])
        if where.size:
            suspect[where] = check([segmentations[i] for i in where], height[where], width[where])
    return suspect


def _check_segmentations(
    segmentations: list, start: int, columns: AnnotationColumns, anns: _Records
):
    """Annotations ``start, start + 1, ...`` have these legal segmentations of their images
    (:func:`_segmentation_problem`): checked flat with numpy, one by one only where flagged."""
    stop = start + len(segmentations)
    height, width = columns.ann_height[start:stop], columns.ann_width[start:stop]
    suspect = _suspect_segmentations(segmentations, height, width, anns.typed)
    for i in np.flatnonzero(suspect).tolist():
        problem = _segmentation_problem(segmentations[i], int(height[i]), int(width[i]))
        if problem is not None:
            raise anns.fault(start + i, "segmentation", problem)


# ----------------------------------------------------------------------------- entry


def validate_dataset(dataset: object, path: str | os.PathLike = "<dict>") -> AnnotationColumns:
    """Check an LVIS annotation dict (as :func:`load_json` returns it) the way every entry
    point of the kit does, and raise :class:`LVISFormatError` naming the file, the section, the
    record's index and id, and the field, for the first fault found:

    - the top level is an object; ``images``, ``annotations`` and ``categories`` lists of
      objects with their :data:`REQUIRED_KEYS`, images and categories not empty;
    - every ``id`` a positive 64-bit integer, unique in its section (:func:`check_ids`);
    - images: ``width`` / ``height`` positive integers; ``file_name`` (v0.5) or ``coco_url``
      (v1) a non-empty string; ``neg_category_ids`` / ``not_exhaustive_category_ids``, where
      present, lists of integers (ids of no category are allowed, see
      :func:`_check_label_list`);
    - categories: ``name`` a string, ``frequency`` 'r', 'c' or 'f'; ``synset`` a string,
      ``image_count`` / ``instance_count`` integers where present (or null);
    - annotations: ``image_id`` / ``category_id`` integers of an image / category of the file;
      ``area`` a finite number >= 0 (0 is legal); ``bbox`` 4 finite numbers, width and height
      >= 0; ``segmentation`` polygons or an RLE of the annotation's image
      (:func:`lvisnb.annotations.masks.segmentation_problem`,
      :func:`lvisnb.annotations.masks.compressed_problem`).

    Integers are JSON integers: ``1.0``, ``"1"`` and ``true`` are not. Vectorised (numpy) over
    columns; Python work per record only where a pass flags one. Returns the columns it read
    (:class:`AnnotationColumns`), so that callers need not read them again.
    """
    with gc_paused():
        return _validate(dataset, path)


def _validate(dataset: object, path) -> AnnotationColumns:
    _check_sections(dataset, path)
    _check_not_empty({s: len(dataset[s]) for s in REQUIRED_KEYS}, path)
    sections = {s: _Records(s, dataset[s], str(path), typed=False) for s in REQUIRED_KEYS}
    columns = _check_records(sections["images"], sections["categories"], sections["annotations"])
    annotations = dataset["annotations"]
    for start in range(0, len(annotations), _CHUNK):
        chunk = annotations[start : start + _CHUNK]
        try:
            segmentations = list(map(itemgetter("segmentation"), chunk))
        except KeyError:
            raise _missing_key(annotations, "annotations", path) from None
        _check_segmentations(segmentations, start, columns, sections["annotations"])
    return columns


VALIDATED = "lvisnb_validated"  # attribute set on the lvis.LVIS objects load_lvis returns


def is_validated(gt: object) -> bool:
    """Whether ``gt`` is an ``lvis.LVIS`` made by :func:`load_lvis` (its dict already passed
    :func:`validate_dataset`; entry points given it do not check it again)."""
    return getattr(gt, VALIDATED, False) is True


def check_ids(records: list[dict], section: str, path: str | os.PathLike = "<dict>") -> None:
    """Check that the ``id`` of every record of ``section`` is a positive integer, once.

    ``lvis.LVIS`` indexes records by id (a repeated id silently replaces the earlier record)
    and ``LVISEval`` takes a matched id of 0 for "unmatched"; detectron2 and mmdetection assert
    on unique ids. Raises :class:`LVISFormatError` naming the file, the records and the ids.
    """
    _id_values([record["id"] for record in records], section, path)


def _id_values(ids: list, section: str, path) -> np.ndarray:
    """:func:`check_ids` on the ids themselves; returns them as int64."""
    if set(map(type, ids)) - _INT:
        index = next(i for i, v in enumerate(ids) if type(v) is not int)
        raise LVISFormatError(
            f"{path}: {section}[{index}] field 'id' must be an integer, got {ids[index]!r}"
        )
    try:
        values = np.array(ids, dtype=np.int64)
    except OverflowError:
        index = next(i for i, v in enumerate(ids) if not -(2**63) <= v < 2**63)
        raise LVISFormatError(
            f"{path}: {section}[{index}] field 'id' is {ids[index]}, beyond 64-bit integers"
        ) from None
    bad = np.flatnonzero(values <= 0)
    if bad.size:
        index = int(bad[0])
        raise LVISFormatError(
            f"{path}: {section}[{index}] field 'id' is {ids[index]}; ids must be positive "
            f"({bad.size} record(s) of '{section}' have an id <= 0)"
        )
    order = np.argsort(values, kind="stable")
    repeated = np.flatnonzero(values[order][1:] == values[order][:-1])
    if repeated.size:
        first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        raise LVISFormatError(
            f"{path}: {section}[{first}] and {section}[{second}] share the id {ids[first]} "
            f"(field 'id'); ids must be unique ({repeated.size} repeated id(s) in '{section}')"
        )
    return values


def load_lvis(path: str | os.PathLike) -> lvis.LVIS:
    """Load an LVIS v0.5 or v1 annotation file as an official ``lvis.LVIS`` object.

    The file is parsed once, validated with :func:`validate_dataset`, then indexed by the ``lvis``
    API unchanged (``.dataset``, ``.anns``, ``.imgs``, ``.cats``, ``.get_ann_ids`` ...). The
    object is marked (:func:`is_validated`) so that entry points given it do not check it again.
    """
    dataset = load_json(path)
    validate_dataset(dataset, path)
    from lvisnb.annotations.lvis_compat import (
        LVISFromDict,  # lvis imports matplotlib: only when needed
    )

    with gc_paused():  # the index holds no cycles either
        gt = LVISFromDict(dataset, source=str(path))
    setattr(gt, VALIDATED, True)
    return gt


def image_relpath(image: dict) -> str:
    """Path of an LVIS image relative to the image root (the COCO 2017 folder holding
    ``train2017/`` and ``val2017/``).

    - ``coco_url`` present (v1, and every real v0.5 record): its last two parts,
      ``http://images.cocodataset.org/val2017/000000266409.jpg`` -> ``val2017/000000266409.jpg``
      (detectron2's ``lvis.get_file_name``). Real v0.5 records also carry a COCO 2014
      ``file_name`` (``COCO_val2014_000000266409.jpg``) that names no file of COCO 2017.
    - otherwise ``file_name``, with a COCO 2014 prefix ``COCO_<split>2014_`` stripped
      (mmdetection's ``LVISV05Dataset`` keeps ``file_name[-16:]``), relative to the image root:
      for such files give the split's own folder (``.../val2017``) as the root.
    """
    url = image.get("coco_url")
    if url:
        parts = url.rstrip("/").split("/")
        return "/".join(parts[-2:])
    return _COCO_2014_PREFIX.sub("", image["file_name"], count=1)


_COCO_2014_PREFIX = re.compile(r"^COCO_[a-z]+2014_(?=\d+\.\w+$)")


def default_image_root(ann_file: str | os.PathLike) -> Path:
    """Where images resolve when no root is given: two levels above the annotation file
    (``ROOT/annotations/lvis_v1_val.json`` -> ``ROOT``, the layout of LVIS and toy-LVIS); the
    file's own folder when it has no grandparent (a file directly under ``/``)."""
    parents = Path(ann_file).resolve().parents
    return parents[1] if len(parents) > 1 else parents[0]


def image_path(image: dict, image_root: str | os.PathLike) -> Path:
    """Absolute location of an LVIS image under ``image_root`` (see :func:`image_relpath`)."""
    return Path(image_root) / image_relpath(image)


def split_files(
    ann_file: str | os.PathLike | None, image_root: str | os.PathLike | None, split: str
) -> tuple[Path, Path]:
    """``(annotation file, image root)`` of a split as the notebooks and ``lvisnb train`` take
    them: ``ann_file`` with ``image_root`` (default: :func:`default_image_root`), or, when both
    are empty, toy-LVIS's ``split`` ("train" or "val") in
    :func:`lvisnb.annotations.toy.default_root`, made if absent. An ``image_root`` without
    ``ann_file`` is a ``ValueError``: toy-LVIS is never generated into a user's image folder."""
    from lvisnb.annotations import toy  # toy-LVIS is made only when asked for

    if ann_file:
        return Path(ann_file), Path(image_root) if image_root else default_image_root(ann_file)
    if image_root:
        raise ValueError(
            f"an image root ({image_root}) was given without an annotation file: name the LVIS "
            f"annotation file of its {split} images, or give neither to use toy-LVIS (kept in "
            f"its own folder, {toy.default_root()}; LVISNB_TOY_ROOT moves it)"
        )
    paths = toy.ensure_toy_lvis()
    return paths[split], paths["root"]


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
    ignore: msgspec.Raw = None  # refused unless 0 (_check_no_ignore)


class _Category(msgspec.Struct, gc=False):
    id: int
    name: str
    frequency: str
    synset: str | None = None
    image_count: int | None = None
    instance_count: int | None = None


class _RLE(TypedDict, total=False):
    size: Any
    counts: Any


# segmentations as read_tables checks them: polygons typed (so their numbers need no type
# check), RLEs as dicts of their two keys; anything else fails, and is found again untyped
_SEGMENTATIONS = msgspec.json.Decoder(list[list[list[float]] | _RLE])


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


def read_tables(path: str | os.PathLike) -> LVISTables:
    """Decode an LVIS annotation file into :class:`LVISTables` (no segmentations kept).

    The file is decoded with typed ``msgspec`` structs (keys and types checked while decoding)
    and checked as :func:`validate_dataset` checks it, segmentations included (decoded from
    their raw bytes a chunk at a time, then dropped); an error is the one every other entry
    point gives for the file. Statistics need annotations: a file without any is refused
    (``<file>: no annotations``), as one without images or categories.
    """
    path = Path(path)
    data = _read_bytes(path)
    with gc_paused():
        try:
            parsed = msgspec.json.decode(data, type=_LVISFile)
        except msgspec.ValidationError as error:  # a key or a type: found again as everywhere
            raise _found_untyped(path, data, error) from None
        except msgspec.DecodeError as error:
            raise _decode_error(path, data, error) from None
        del data
        try:
            columns = _check_parsed(parsed, path)
        except LVISFormatError as error:
            raise _found_untyped(path, _read_bytes(path), error) from None
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
    ``1.0`` for ``1``): found again by :func:`load_json` and :func:`validate_dataset`, so that
    the message is the one of every other entry point; ``error`` if they find nothing. Runs
    only on a bad file."""
    try:
        dataset = msgspec.json.decode(data)
    except msgspec.DecodeError as untyped:
        return _decode_error(path, data, untyped)
    try:
        validate_dataset(dataset, path)
    except LVISFormatError as found:
        return found
    if isinstance(error, msgspec.DecodeError):
        return _decode_error(path, data, error)
    return error


def _check_parsed(parsed: _LVISFile, path: Path) -> AnnotationColumns:
    """:func:`validate_dataset`'s checks on the structs of :func:`read_tables`; the raw
    segmentations are decoded (``_SEGMENTATIONS``) ``_CHUNK`` annotations at a time, then
    dropped. One that does not decode is found again as by :func:`load_json` and
    :func:`validate_dataset` (:func:`_found_untyped`)."""
    sections = {s: _Records(s, getattr(parsed, s), str(path), typed=True) for s in REQUIRED_KEYS}
    _check_not_empty({s: len(r.records) for s, r in sections.items()}, path, REQUIRED_KEYS)
    columns = _check_records(sections["images"], sections["categories"], sections["annotations"])
    anns = parsed.annotations
    for start in range(0, len(anns), _CHUNK):
        raw = b",".join([a.segmentation for a in anns[start : start + _CHUNK]])
        try:
            segmentations = _SEGMENTATIONS.decode(b"[" + raw + b"]")
        except msgspec.DecodeError as error:
            raise LVISFormatError(f"{path}: {error}") from error  # found again by the caller
        _check_segmentations(segmentations, start, columns, sections["annotations"])
    return columns
