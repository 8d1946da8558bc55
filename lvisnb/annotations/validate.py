"""Checking an LVIS annotation file (v0.5 and v1) once, where it is read, and loading it.

- :func:`validate_dataset` checks a decoded file (dicts, as
  :func:`lvisnb.annotations.json_file.load_json` returns them), :func:`validate_parsed` the
  msgspec structs of :func:`lvisnb.annotations.tables.read_tables`, with the same checks and
  messages: a bad value is an :class:`~lvisnb.annotations.json_file.LVISFormatError` naming the
  file, the section and record index, the record's id and the field. Both return the columns
  they read (:class:`AnnotationColumns`).
- :func:`load_lvis` parses, checks and returns an official ``lvis.LVIS`` object (datasets,
  evaluation), marked (:func:`is_validated`) so that entry points given it do not check it again.

Every entry point that reads an annotation file (:func:`load_lvis`, ``tables.read_tables``,
``ground_truth.load_ground_truth``, ``scene.load_scene``, ``dataset.LVISDetection``) runs these
same checks once. Records arrive as dicts or msgspec structs;
:class:`lvisnb.annotations.records.Records` reads both the same way, and the checks run
column-wise with numpy, record by record only over the few a vectorised pass flags
(segmentations: :mod:`lvisnb.annotations.segmentation_checks`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypedDict

import msgspec
import numpy as np

from lvisnb.annotations import segmentation_checks
from lvisnb.annotations.image_paths import image_path_field, image_relpath, outside_root
from lvisnb.annotations.json_file import (
    ABSENT,
    INT,
    LABEL_LISTS,
    NUMBER,
    REQUIRED_KEYS,
    Absent,
    LVISFormatError,
    as_float64,
    gc_paused,
    load_json,
    short,
)
from lvisnb.annotations.masks import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from lvisnb.annotations.records import Records, id_values, missing_key

if TYPE_CHECKING:
    import lvis  # type hints only: lvis imports matplotlib (load_lvis loads it)

FREQUENCIES = ("r", "c", "f")
_CHUNK = 65_536  # annotations whose segmentations are checked together (bounds the memory)
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
    scores it), but statistics (:func:`lvisnb.annotations.tables.read_tables`) and training
    need annotations too."""
    for section in sections:
        if not sizes[section]:
            raise LVISFormatError(f"{path}: no {section} (the '{section}' list is empty)")


def _check_images(images: Records) -> tuple[np.ndarray, np.ndarray]:
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
    _check_image_paths(images, file_name, coco_url)
    for key in LABEL_LISTS:
        _check_label_list(images, key)
    return sides["height"], sides["width"]


def _check_image_paths(images: Records, file_name: list, coco_url: list) -> None:
    """No image path leaves the image root (:func:`~lvisnb.annotations.image_paths.outside_root`):
    ``file_name`` ``../x.jpg`` or ``/etc/x.jpg``, a ``coco_url`` ending in ``../x.jpg``."""
    for index, (name, url) in enumerate(zip(file_name, coco_url, strict=True)):
        record = {"file_name": name, "coco_url": url if type(url) is str else None}
        reason = outside_root(image_relpath(record))
        if reason is not None:
            raise images.fault(index, image_path_field(record), reason)


def _check_optional(records: Records) -> None:
    for key, (kinds, what) in _OPTIONAL[records.section].items():
        records.of_types(records.optional(key), kinds | {Absent}, what, key)


def _check_label_list(images: Records, key: str) -> None:
    """``key`` (``neg_category_ids`` / ``not_exhaustive_category_ids``), where present, is a
    list of 64-bit integers. Ids that are no category of the file are allowed: ``LVISEval``
    only tests membership in these lists (``cat_id in img_nl[img_id]``), so an unknown id
    changes nothing, and :mod:`lvisnb.evaluation.ground_truth` drops them likewise."""
    lists = images.optional(key)
    images.of_types(lists, frozenset({list, Absent}), "a list of category ids", key)
    lists = [[] if v is ABSENT else v for v in lists]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = list(chain.from_iterable(lists))
    owner = np.repeat(np.arange(len(lists)), lengths)
    wrong = set(map(type, flat)) - INT
    if not wrong:
        try:
            np.array(flat, dtype=np.int64)
            return
        except OverflowError:
            pass
    bad = next(j for j, v in enumerate(flat) if type(v) is not int or not -(2**63) <= v < 2**63)
    index = int(owner[bad])
    raise images.fault(
        index, key, f"must be a list of integer category ids, got {short(lists[index])}"
    )


def _check_categories(categories: Records) -> None:
    """``name`` a string, ``frequency`` one of 'r', 'c', 'f'; optional keys' types."""
    categories.of_types(categories.values("name"), frozenset({str}), "a string", "name")
    frequency = categories.values("frequency")
    if not all(type(f) is str for f in frequency) or not set(frequency) <= set(FREQUENCIES):
        index = next(i for i, f in enumerate(frequency) if f not in FREQUENCIES)
        raise categories.fault(
            index, "frequency", f"is {short(frequency[index])}; expected 'r', 'c' or 'f'"
        )
    _check_optional(categories)


def _rows(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each of ``values`` in ``ids`` (unsorted, unique) and whether it is there."""
    order = np.argsort(ids, kind="stable")
    found = np.searchsorted(ids[order], values).clip(0, len(ids) - 1)
    return order[found], ids[order[found]] == values


def _check_references(anns: Records, image_ids: np.ndarray, category_ids: np.ndarray):
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


def _check_areas(anns: Records) -> np.ndarray:
    """``area`` a finite number >= 0 (0 is legal: evaluation ignores such instances, as
    ``LVISEval`` does)."""
    area = anns.numbers("area")
    bad = np.flatnonzero(~(np.isfinite(area) & (area >= 0)))
    if bad.size:
        raise anns.fault(int(bad[0]), "area", f"is {area[bad[0]]}; an area is finite and >= 0")
    return area


def _check_boxes(anns: Records) -> np.ndarray:
    """``bbox`` 4 finite numbers ``[x, y, width, height]``, width and height >= 0; (N, 4)."""
    boxes = anns.values("bbox")
    what = "4 numbers [x, y, width, height]"
    anns.of_types(boxes, frozenset({list, tuple}), what, "bbox")
    lengths = np.fromiter(map(len, boxes), dtype=np.int64, count=len(boxes))
    bad = np.flatnonzero(lengths != 4)
    if bad.size:
        raise anns.fault(int(bad[0]), "bbox", f"must be {what}, got {short(boxes[bad[0]])}")
    if set(map(type, chain.from_iterable(boxes))) - NUMBER:
        index = next(i for i, box in enumerate(boxes) if set(map(type, box)) - NUMBER)
        raise anns.fault(index, "bbox", f"must be {what}, got {short(boxes[index])}")
    try:
        xywh = np.fromiter(chain.from_iterable(boxes), dtype=np.float64, count=4 * len(boxes))
    except OverflowError:
        xywh = as_float64(list(chain.from_iterable(boxes)))
    xywh = xywh.reshape(-1, 4)
    bad = np.flatnonzero(~np.isfinite(xywh).all(axis=1))
    if bad.size:
        raise anns.fault(int(bad[0]), "bbox", f"must be finite, got {short(boxes[bad[0]])}")
    bad = np.flatnonzero((xywh[:, 2:] < 0).any(axis=1))
    if bad.size:
        index = int(bad[0])
        raise anns.fault(index, "bbox", f"has a negative width or height: {short(boxes[index])}")
    return xywh


def _check_no_ignore(anns: Records) -> None:
    """No ``ignore`` flag: LVIS has none, ``LVISEval`` would honour one (a match to an ignored
    instance is ignored) while COCO-style engines know only ``iscrowd``, so the backends
    would disagree. ``"ignore": 0`` is accepted."""
    flags = anns.optional("ignore")
    if anns.typed:  # raw JSON of the structs' rare ignore fields
        flags = [v if v is None else msgspec.json.decode(v) for v in flags]
    bad = next((i for i, v in enumerate(flags) if v is not ABSENT and v not in (0, None)), None)
    if bad is not None:
        raise anns.fault(
            bad,
            "ignore",
            f"is {short(flags[bad])}; LVIS annotations have no ignore flag "
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


def _check_records(images: Records, categories: Records, annotations: Records) -> AnnotationColumns:
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


def _check_segmentations(
    segmentations: list, start: int, columns: AnnotationColumns, anns: Records
) -> None:
    """Annotations ``start, start + 1, ...`` have these legal segmentations of their images
    (:func:`lvisnb.annotations.segmentation_checks.first_problem`)."""
    stop = start + len(segmentations)
    height, width = columns.ann_height[start:stop], columns.ann_width[start:stop]
    found = segmentation_checks.first_problem(segmentations, height, width, anns.typed)
    if found is not None:
        index, problem = found
        raise anns.fault(start + index, "segmentation", problem)


# ----------------------------------------------------------------------------- entry


def validate_dataset(dataset: object, path: str | os.PathLike = "<dict>") -> AnnotationColumns:
    """Check an LVIS annotation dict (as :func:`lvisnb.annotations.json_file.load_json`
    returns it) the way every entry point of the kit does, and raise :class:`LVISFormatError`
    naming the file, the section, the record's index and id, and the field, for the first fault
    found:

    - the top level is an object; ``images``, ``annotations`` and ``categories`` lists of
      objects with their :data:`lvisnb.annotations.json_file.REQUIRED_KEYS`, images and
      categories not empty;
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
    sections = {s: Records(s, dataset[s], str(path), typed=False) for s in REQUIRED_KEYS}
    columns = _check_records(sections["images"], sections["categories"], sections["annotations"])
    annotations = dataset["annotations"]
    for start in range(0, len(annotations), _CHUNK):
        chunk = annotations[start : start + _CHUNK]
        try:
            segmentations = list(map(itemgetter("segmentation"), chunk))
        except KeyError:
            raise missing_key(annotations, "annotations", path) from None
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
    id_values([record["id"] for record in records], section, path)


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


# ----------------------------------------------------------------------------- typed records


class _RLE(TypedDict, total=False):
    size: Any
    counts: Any


# segmentations as read_tables checks them: polygons typed (so their numbers need no type
# check), RLEs as dicts of their two keys; anything else fails, and is found again untyped
_SEGMENTATIONS = msgspec.json.Decoder(list[list[list[float]] | _RLE])


def validate_parsed(parsed: msgspec.Struct, path: str | os.PathLike) -> AnnotationColumns:
    """:func:`validate_dataset`'s checks on the msgspec structs of
    :func:`lvisnb.annotations.tables.read_tables` (``parsed.images``, ``.annotations``,
    ``.categories``; each annotation's ``segmentation`` raw JSON bytes), annotations required
    too. The raw segmentations are decoded (``_SEGMENTATIONS``) ``_CHUNK`` annotations at a
    time, then dropped; one that does not decode is an :class:`LVISFormatError` that the caller
    finds again as :func:`lvisnb.annotations.json_file.load_json` and :func:`validate_dataset`
    would (``tables._found_untyped``)."""
    sections = {s: Records(s, getattr(parsed, s), str(path), typed=True) for s in REQUIRED_KEYS}
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
