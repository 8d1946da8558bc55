"""LVIS results checked against a ground truth: :func:`validate_detections` (the records) and
:func:`mask_areas` (the RLE runs of the detections that get evaluated).

:func:`validate_detections` checks every record with a few vectorised passes (no per-record
Python work beyond pulling the fields out of the dicts) and raises ``ValueError`` naming the
first offending record by index and field; :func:`mask_areas` checks the RLEs of the
detections that get evaluated and measures them (:func:`lvisnb.annotations.masks.rle_areas`, no
masks built). :func:`result_areas` gives each result's area per IoU type.
"""

from __future__ import annotations

import contextlib
from itertools import chain
from operator import attrgetter

import msgspec
import numpy as np

from lvisnb.annotations import masks
from lvisnb.evaluation.results import (
    RECORD_TYPES,
    RLE,
    BoxRecord,
    Detections,
    MaskRecord,
    RLEColumns,
)


class _Invalid(Exception):
    """Carries (record index, field, reason) of the first bad record found by one check."""

    def __init__(self, index: int, field: str, reason: str):
        super().__init__(index, field, reason)
        self.index, self.field, self.reason = index, field, reason


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _field(records: list, name: str) -> list:
    """``[r[name] for r in records]``; the first record that is not a dict or lacks the key
    raises :class:`_Invalid`. :class:`Record` lists (all records typed) are read by attribute.
    """
    if _typed(records):
        values = list(map(attrgetter(name), records))
        if name in ("bbox", "segmentation") and msgspec.UnsetType in set(map(type, values)):
            missing = _first(np.fromiter((v is msgspec.UNSET for v in values), bool, len(values)))
            raise _Invalid(missing, name, "is missing")
        return values
    try:
        return [r[name] for r in records]
    except (KeyError, TypeError):
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise _Invalid(index, "", f"is a {type(record).__name__}, not an object") from None
            if name not in record:
                raise _Invalid(index, name, "is missing") from None
        raise


def _typed(records: list) -> bool:
    """Whether ``records`` came from the typed decoder of
    :func:`lvisnb.evaluation.result_records.read_results` (all
    :class:`~lvisnb.evaluation.results.Record`)."""
    return bool(records) and type(records[0]) in RECORD_TYPES and type(records[-1]) in RECORD_TYPES


def _integers(records: list, name: str) -> np.ndarray:
    if _typed(records):  # ints by construction
        with contextlib.suppress(OverflowError):  # beyond int64: as lists below
            return np.fromiter(map(attrgetter(name), records), dtype=np.int64, count=len(records))
    values = _field(records, name)
    try:
        array = np.array(values)
    except (ValueError, OverflowError):  # ragged (lists among them) or beyond any C integer
        array = np.array([], dtype=object)
    if array.ndim == 1 and array.dtype.kind == "i" and bool not in set(map(type, values)):
        return array.astype(np.int64, copy=False)
    for index, value in enumerate(values):
        if not isinstance(value, int | np.integer) or isinstance(value, bool):
            raise _Invalid(index, name, f"must be an integer, got {value!r}")
        if not -(2**63) <= value < 2**63:
            raise _Invalid(index, name, f"is {value}, beyond 64-bit integers")
    return array.astype(np.int64)  # pragma: no cover - every element passed the scan


def _scores(records: list) -> np.ndarray:
    if _typed(records):  # floats by construction
        values = None
        array = np.fromiter(map(attrgetter("score"), records), np.float64, count=len(records))
    else:
        values = _field(records, "score")
        try:
            array = np.array(values)
        except (ValueError, OverflowError):  # ragged, or integers beyond any C type
            array = np.array([], dtype=object)
    numeric = array.ndim == 1 and len(array) == len(records) and array.dtype.kind in "iuf"
    if not numeric or bool in set(map(type, values or ())):
        for index, value in enumerate(values):
            if not _is_number(value):
                raise _Invalid(index, "score", f"must be a number, got {value!r}")
    array = array.astype(np.float64, copy=False)
    bad = _first(~np.isfinite(array))
    if bad is not None:
        raise _Invalid(bad, "score", f"must be finite, got {array[bad]!r}")
    return array


def _boxes(records: list) -> np.ndarray:
    values = _field(records, "bbox")
    if _typed(records):  # 4 floats each by construction; ~2.5x faster than np.array
        array = np.fromiter(chain.from_iterable(values), np.float64, count=4 * len(values))
        shape_ok = True
    else:
        try:
            array = np.array(values)
            shape_ok = array.ndim == 2 and array.shape[1] == 4 and array.dtype.kind in "iuf"
            shape_ok = shape_ok and bool not in set(map(type, chain.from_iterable(values)))
        except ValueError:  # ragged
            shape_ok = False
    if not shape_ok:
        for index, value in enumerate(values):
            if (
                not isinstance(value, list | tuple | np.ndarray)
                or len(value) != 4
                or not all(_is_number(v) for v in value)
            ):
                raise _Invalid(index, "bbox", f"must be 4 numbers [x, y, w, h], got {value!r}")
    array = array.astype(np.float64, copy=False).reshape(-1, 4)
    bad = _first(~np.isfinite(array).all(axis=1))
    if bad is not None:
        raise _Invalid(bad, "bbox", f"must be finite, got {array[bad].tolist()}")
    bad = _first((array[:, 2:] < 0).any(axis=1))
    if bad is not None:
        raise _Invalid(bad, "bbox", f"has a negative width or height: {array[bad].tolist()}")
    return array


def _rle_fields(segms: list, with_counts: bool = True) -> tuple[np.ndarray, list | None]:
    """``(sizes (N, 2) int64, counts)`` of RLE dicts or :class:`RLE` structs; the first
    malformed one raises. ``counts`` (str or bytes each) is ``None`` for structs when not
    ``with_counts`` (their counts are strings by construction: nothing to check)."""
    if not segms:
        return np.zeros((0, 2), dtype=np.int64), []
    if set(map(type, segms)) == {RLE}:
        flat = chain.from_iterable(map(attrgetter("size"), segms))
        sizes = np.fromiter(flat, dtype=np.int64, count=2 * len(segms)).reshape(-1, 2)
        return sizes, list(map(attrgetter("counts"), segms)) if with_counts else None
    try:
        sizes = np.array([s["size"] for s in segms])
        counts = [s["counts"] for s in segms]
        if (
            sizes.ndim == 2
            and sizes.shape[1] == 2
            and sizes.dtype.kind in "iu"
            and set(map(type, counts)) <= {str, bytes}
        ):
            return sizes.astype(np.int64, copy=False), counts
    except (KeyError, TypeError, IndexError, ValueError):
        pass
    for index, segm in enumerate(segms):
        if not isinstance(segm, dict) or "size" not in segm or "counts" not in segm:
            raise _Invalid(
                index, "segmentation", "must be a compressed RLE {'size': [h, w], 'counts': str}"
            )
        size = segm["size"]
        if not isinstance(size, list | tuple) or len(size) != 2:
            raise _Invalid(index, "segmentation.size", f"must be [height, width], got {size!r}")
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size):
            raise _Invalid(index, "segmentation.size", f"must be integers, got {size!r}")
        if not isinstance(segm["counts"], str | bytes):
            raise _Invalid(
                index,
                "segmentation.counts",
                f"must be a compressed RLE string, got a {type(segm['counts']).__name__}",
            )
    raise AssertionError("unreachable: the scan accepted every RLE")  # pragma: no cover


def _is_compressed(segm) -> bool:
    return type(segm) is RLE or (
        isinstance(segm, dict) and isinstance(segm.get("counts"), str | bytes)
    )


def _converted(segms: list, image_height: np.ndarray, image_width: np.ndarray) -> list:
    """``segms`` with polygons and uncompressed RLEs converted to compressed RLE dicts at their
    image's size, as ``lvis.LVIS.ann_to_rle`` does (a new list; the records are not touched).
    The first one :func:`lvisnb.annotations.masks.segmentation_problem` rejects raises
    :class:`_Invalid`.
    """
    others = [i for i, segm in enumerate(segms) if not _is_compressed(segm)]
    if not others:
        return segms
    segms = list(segms)
    for index in others:
        h, w = int(image_height[index]), int(image_width[index])
        problem = masks.segmentation_problem(segms[index], h, w)
        if problem is not None:
            raise _Invalid(index, "segmentation", problem)
        segms[index] = masks.to_compressed_rle(segms[index], h, w)
    return segms


def _masks(records: list, image_height: np.ndarray, image_width: np.ndarray) -> list:
    """The records' segmentations as compressed RLEs (polygons and uncompressed RLEs converted,
    see :func:`_converted`), checked for structure and ``size`` (``image_height`` and
    ``image_width`` per record, pixels). The runs are checked by :func:`mask_areas`."""
    segms = _field(records, "segmentation")
    try:
        sizes, _ = _rle_fields(segms, with_counts=False)
    except _Invalid:  # not all compressed RLEs: convert the others (or name the bad one)
        segms = _converted(segms, image_height, image_width)
        sizes, _ = _rle_fields(segms, with_counts=False)
    bad = _first((sizes[:, 0] != image_height) | (sizes[:, 1] != image_width))
    if bad is not None:
        raise _Invalid(
            bad,
            "segmentation.size",
            f"is {sizes[bad].tolist()} but the image is "
            f"[{image_height[bad]}, {image_width[bad]}] (height, width)",
        )
    return segms


def _has(record, name: str, typed: bool) -> bool:
    return getattr(record, name) is not msgspec.UNSET if typed else name in record


def _message(source: str, index: int, image_id, field: str, reason: str) -> str:
    ident = f" (image_id={image_id!r})" if image_id is not None else ""
    where = f" field '{field}'" if field else ""
    return f"{source}: results[{index}]{ident}{where} {reason}"


def validate_detections(
    records: list,
    image_ids: np.ndarray,
    image_sizes: np.ndarray,
    category_ids: np.ndarray,
    need_boxes: bool,
    need_masks: bool,
    source: str = "<list>",
) -> Detections:
    """Check LVIS result records against the ground truth and return them column-wise.

    ``image_ids`` (sorted, int64) with ``image_sizes`` (same order, ``[height, width]``) and
    ``category_ids`` (sorted) describe the ground truth. Checked with vectorised passes, the
    first offending record reported: every record is an object with ``image_id`` and
    ``category_id`` (integers known to the ground truth) and a finite ``score``; with
    ``need_boxes``, ``bbox`` (4 finite numbers, ``w, h >= 0``) in all records or in none (then
    boxes come from the masks, as ``lvis.LVISResults`` does); with ``need_masks`` (or boxes
    from masks), a compressed RLE ``segmentation`` whose ``size`` is the image's
    ``[height, width]``. The RLE runs themselves are decoded, and checked, by
    :func:`mask_areas` for the detections that are evaluated.

    Raises ``ValueError("<source>: results[<index>] (image_id=...) field '<field>' ...")``.
    """
    if not records:
        raise ValueError(f"{source}: the results hold no detections")
    try:
        image_id = _integers(records, "image_id")
        category_id = _integers(records, "category_id")
        score = _scores(records)
        row = np.searchsorted(image_ids, image_id).clip(0, len(image_ids) - 1)
        bad = _first(image_ids[row] != image_id)
        if bad is not None:
            raise _Invalid(bad, "image_id", f"{image_id[bad]} is not an image of the ground truth")
        column = np.searchsorted(category_ids, category_id).clip(0, len(category_ids) - 1)
        bad = _first(category_ids[column] != category_id)
        if bad is not None:
            raise _Invalid(
                bad, "category_id", f"{category_id[bad]} is not a category of the ground truth"
            )
        boxes = segms = None
        typed = _typed(records)
        if need_boxes and typed and type(records[0]) is MaskRecord:
            raise ValueError("records read without their boxes (read_results(boxes=False))")
        if need_masks and typed and type(records[0]) is BoxRecord:
            raise ValueError("records read without their masks (read_results(masks=False))")
        if need_boxes and _has(records[0], "bbox", typed):
            boxes = _boxes(records)
        elif need_boxes:
            with_box = _first(
                np.fromiter((_has(r, "bbox", typed) for r in records), bool, len(records))
            )
            if with_box is not None:
                raise _Invalid(with_box, "bbox", "is given but results[0] has none (all or none)")
        if need_masks or (need_boxes and boxes is None):
            sizes = image_sizes[row]
            segms = _masks(records, sizes[:, 0], sizes[:, 1])
    except _Invalid as error:
        record = records[error.index]
        image = record.get("image_id") if isinstance(record, dict) else None
        if isinstance(record, RECORD_TYPES):
            image = record.image_id
        message = _message(source, error.index, image, error.field, error.reason)
        if (error.field, error.reason) == ("segmentation", "is missing"):
            message += "; results without masks are evaluated for boxes only: --iou-types bbox"
        raise ValueError(message) from None
    return Detections(image_id, category_id, score, boxes, segms, source, row, column)


def mask_areas(det: Detections, indices: np.ndarray) -> np.ndarray:
    """Foreground area (px^2, float64, ``(len(indices),)``) of the RLEs of detections
    ``indices``, checking them with :func:`lvisnb.annotations.masks.rle_areas` (numpy for the
    strings, hotcoco for the areas; no masks built).

    Raises ``ValueError`` naming the lowest offending index whose string is malformed (or has
    a negative run) or whose runs do not cover exactly ``height * width`` pixels of its
    ``size``. Only evaluated detections need this.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if isinstance(det.segmentation, RLEColumns):
        sizes = det.segmentation.sizes[indices]
        area, total, ok = det.segmentation.rle_areas(indices)
    else:
        sizes, counts = _record_rles(det, indices)
        area, total, ok = masks.rle_areas(sizes, counts)
    bad = np.flatnonzero(~ok | (total != sizes[:, 0] * sizes[:, 1]))
    if bad.size:
        j = int(bad[np.argmin(indices[bad])])
        index = int(indices[j])
        reason = (
            f"is not a valid compressed RLE of a {sizes[j, 0]}x{sizes[j, 1]} mask "
            f"(its runs cover {total[j]} pixels)"
            if ok[j]
            else f"is not a valid compressed RLE string: {_counts(det, index)[:40]!r}"
        )
        image = int(det.image_id[index])
        raise ValueError(_message(det.source, index, image, "segmentation.counts", reason))
    return area.astype(np.float64)


def _counts(det: Detections, index: int) -> str | bytes:
    """The ``counts`` of detection ``index``'s RLE."""
    segm = det.segmentation[index]
    return segm.counts if type(segm) is RLE else segm["counts"]


def _record_rles(det: Detections, indices: np.ndarray) -> tuple[np.ndarray, list]:
    """``(sizes (len(indices), 2) int64, counts)`` of the RLEs of detections ``indices``."""
    sizes, counts = _rle_fields([det.segmentation[i] for i in indices.tolist()])
    return sizes.reshape(-1, 2), counts


def result_areas(
    det: Detections, candidate: np.ndarray, iou_types, segm_area: str = "mask"
) -> dict[str, np.ndarray]:
    """Each result's area (px^2, float64 (N,)) per IoU type, NaN where not ``candidate``.

    The area decides a result's size range (small / medium / large) and whether it is
    evaluated at all: ``LVISEval`` keeps only results of area > 0 (its ``get_ann_ids`` range is
    strict), so an empty mask or a box of width or height 0 is neither a true nor a false
    positive. ``lvis.LVISResults`` takes ``w * h`` of the box when the records have a ``bbox``,
    else the mask's area. Here:

    - ``bbox``: the box's ``w * h``; the mask's area for results without boxes (as
      ``LVISResults``).
    - ``segm``: with ``segm_area="mask"`` (the default) the mask's area, as detectron2 (which
      drops ``bbox`` from results before ``LVISEval`` for segm) and as ``LVISEval`` on
      mask-only results; with ``segm_area="box"``, the box's ``w * h`` when the results have
      boxes, which reproduces raw ``LVISEval`` on records that carry both.

    Masks of candidates are decoded (and their runs checked) by :func:`mask_areas`.
    """
    n = len(det)
    mask_area = np.full(n, np.nan)
    if det.segmentation is not None:
        index = np.flatnonzero(candidate)
        mask_area[index] = mask_areas(det, index)
    box_area = mask_area
    if det.bbox is not None:
        box_area = np.where(candidate, det.bbox[:, 2] * det.bbox[:, 3], np.nan)
    use_box = {"bbox": True, "segm": segm_area == "box"}
    return {t: box_area if use_box[t] else mask_area for t in iou_types}
