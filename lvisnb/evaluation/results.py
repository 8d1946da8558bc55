"""LVIS results (detections): reading, validating and capping, column-wise with numpy.

An LVIS results file is a JSON list of records, one per detection::

    {"image_id": int, "category_id": int (LVIS id), "score": float,
     "bbox": [x, y, w, h] (XYWH, pixels; optional when "segmentation" is given),
     "segmentation": {"size": [height, width], "counts": str} (compressed COCO RLE; optional
                     for box-only results)}

:func:`validate_detections` checks every record with a few vectorised passes (no per-record
Python work beyond pulling the fields out of the dicts) and raises ``ValueError`` naming the
first offending record by index and field; :func:`mask_areas` checks the RLEs of the
detections that get evaluated and measures them (:func:`lvisnb.annotations.masks.rle_areas`, no
masks built). :func:`cap_per_image` and :func:`cap_per_class`
return the kept detections *in the order the reference implementations produce*, so that ties
in score are broken identically by every evaluation backend.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from lvisnb.annotations import masks

MAX_DETS_PER_IMAGE = 300  # LVIS's official per-image limit (LVISResults' max_dets)


@dataclass
class Detections:
    """Validated LVIS results, one row per detection, in input order.

    - ``image_id``, ``category_id``: int64 (N,), LVIS ids (not contiguous labels).
    - ``score``: float64 (N,), finite.
    - ``bbox``: float64 (N, 4), XYWH in pixels, finite, ``w, h >= 0``; ``None`` when the
      results carry no boxes (masks only) or boxes were not asked for.
    - ``segmentation``: the records' compressed RLEs (references, not copies): dicts
      ``{"size", "counts"}``, :class:`RLE` structs when the file was decoded typed (see
      :func:`read_results`), or one :class:`RLEColumns` when it was read column-wise
      (:mod:`lvisnb.evaluation.result_columns`); :func:`rle_dicts` gives dicts; ``None`` when masks
      were not asked for.
    - ``source``: the file name, or ``"<list>"``, for messages.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray | None
    segmentation: list[dict] | RLEColumns | None
    source: str = "<list>"
    image_row: np.ndarray | None = None
    category_col: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)

    def pair_keys(self, num_categories: int) -> np.ndarray:
        """(N,) int64 ``image_row * K + category_col``: each detection's (image, category)
        pair key in the ground truth it was validated against (see ``GroundTruth``)."""
        return self.image_row * num_categories + self.category_col


# ----------------------------------------------------------------------------- reading


class RLE(msgspec.Struct, frozen=True, gc=False):
    """A compressed COCO RLE as decoded from a results file: ``size`` [height, width] and the
    ``counts`` string (cheaper to decode and to hold than a dict)."""

    size: tuple[int, int]
    counts: str


class MaskRecord(msgspec.Struct, gc=False):
    """One well-typed LVIS result record without its box, as decoded by :func:`read_results`
    with ``boxes=False`` (unknown keys, ``bbox`` included, are skipped; ``segmentation`` is
    ``msgspec.UNSET`` when absent)."""

    image_id: int
    category_id: int
    score: float
    segmentation: msgspec.UnsetType | RLE = msgspec.UNSET


class Record(MaskRecord, gc=False):
    """:class:`MaskRecord` with its ``bbox`` (``msgspec.UNSET`` when absent)."""

    bbox: msgspec.UnsetType | tuple[float, float, float, float] = msgspec.UNSET


class BoxRecord(msgspec.Struct, gc=False):
    """One well-typed LVIS result record without its mask, as decoded by :func:`read_results`
    with ``masks=False`` (``segmentation`` is skipped, neither decoded nor held)."""

    image_id: int
    category_id: int
    score: float
    bbox: msgspec.UnsetType | tuple[float, float, float, float] = msgspec.UNSET


@dataclass
class RLEColumns:
    """Compressed COCO RLEs held column-wise, as :mod:`lvisnb.evaluation.result_columns` reads them:
    ``sizes`` int64 (N, 2) ``[height, width]``, ``ends`` int64 (N,) the end offset of each
    string in ``data`` (ASCII bytes, the strings concatenated; bytes or a memoryview).
    Indexing gives :class:`RLE`."""

    sizes: np.ndarray
    ends: np.ndarray
    data: bytes | memoryview

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> RLE:
        start = int(self.ends[index - 1]) if index else 0
        height, width = self.sizes[index].tolist()
        return RLE((height, width), str(self.data[start : int(self.ends[index])], "ascii"))

    def rle_areas(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`lvisnb.annotations.masks.rle_areas` of RLEs ``indices`` (``(area, total, ok)``,
        the same values), computed from the bytes by the C reader's ``rle_stats`` in one pass: the
        string checks of :func:`lvisnb.annotations.masks.rle_totals`, pycocotools' area (the sum of
        the odd runs) and hotcoco's refusal of negative runs."""
        reader, indices, ends = self._c_arguments(indices)
        total, foreground, flags = reader.rle_stats(self.data, ends, indices)
        total = np.frombuffer(total, dtype=np.int64)
        flags = np.frombuffer(flags, dtype=np.uint8)
        sizes = self.sizes[indices]
        ok = (flags & 1).astype(bool) & (total < 2**32)  # hotcoco counts pixels in 32 bits
        legal = ok & (total == sizes[:, 0] * sizes[:, 1]) & (sizes >= 0).all(axis=1)
        ok &= ~(legal & (flags & 2).astype(bool))  # a negative run: hotcoco refuses it
        area = np.where(legal & ok, np.frombuffer(foreground, dtype=np.int64), 0)
        return area, total, ok

    def subset(self, indices: np.ndarray) -> RLEColumns:
        """The same N RLEs with all but ``indices`` (increasing) emptied (their counts ``""``),
        in a buffer holding only those: what evaluation keeps once it knows which masks it
        evaluates (a tenth of them at LVIS scale)."""
        reader, indices, ends = self._c_arguments(indices)
        data, ends = reader.rle_subset(self.data, ends, indices)
        return RLEColumns(self.sizes, np.frombuffer(ends, dtype=np.int64), memoryview(data))

    def counts(self, indices: np.ndarray) -> list[str]:
        """The ``counts`` strings of RLEs ``indices``, in that order."""
        return self._objects(indices, with_size=False)

    def dicts(self, indices: np.ndarray) -> list[dict]:
        """RLEs ``indices`` as dicts ``{"size": [h, w], "counts": str}``, in that order."""
        return self._objects(indices, with_size=True)

    def _objects(self, indices: np.ndarray, with_size: bool) -> list:
        reader, indices, ends = self._c_arguments(indices)
        sizes = np.ascontiguousarray(self.sizes, dtype=np.int64) if with_size else None
        return reader.rle_objects(self.data, ends, sizes, indices)

    def _c_arguments(self, indices: np.ndarray) -> tuple:
        """``(lvisnb.evaluation._results_json, indices, ends)``, both as the C helpers take them
        (contiguous int64)."""
        from lvisnb.evaluation import _results_json

        as_int64 = np.ascontiguousarray
        return _results_json, as_int64(indices, dtype=np.int64), as_int64(self.ends, dtype=np.int64)


_DECODERS = {  # (boxes, masks) -> decoder
    (True, True): msgspec.json.Decoder(list[Record]),
    (False, True): msgspec.json.Decoder(list[MaskRecord]),
    (True, False): msgspec.json.Decoder(list[BoxRecord]),
}
_TYPED = (Record, MaskRecord, BoxRecord)


def _results_path(results) -> Path:
    """``results`` as a path to an existing file; ``TypeError`` / ``FileNotFoundError``."""
    if not isinstance(results, str | os.PathLike):
        raise TypeError(
            "results must be a path to an LVIS results JSON file or a list of result records, "
            f"got a {type(results).__name__}"
        )
    path = Path(results)
    if not path.is_file():
        raise FileNotFoundError(f"LVIS results file not found: {path}")
    return path


def read_result_records(results: str | os.PathLike | list) -> tuple[list[dict], str]:
    """The records of an LVIS results file as plain dicts (or ``results`` itself if it is a
    list), with ``source`` naming the file for messages; errors as :func:`read_results`."""
    if isinstance(results, list):
        return results, "<list>"
    path = _results_path(results)
    data = path.read_bytes()
    try:
        records = msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        from lvisnb.annotations.json_file import json_problem

        raise ValueError(f"{path}: {json_problem(data, str(error))}") from None
    except RecursionError:
        from lvisnb.annotations.json_file import TOO_DEEP

        raise ValueError(f"{path}: {TOO_DEEP}") from None
    if not isinstance(records, list):
        raise ValueError(
            f"{path}: an LVIS results file is a JSON list of detections, "
            f"got a {type(records).__name__}"
        )
    return records, str(path)


def read_results(
    results: str | os.PathLike | list, boxes: bool = True, masks: bool = True
) -> tuple[list, str]:
    """The records of an LVIS results file (parsed with msgspec), or ``results`` itself if it is
    already a list. Returns ``(records, source)``; ``source`` names the file for messages.

    A well-typed file is decoded straight into :class:`Record` structs, faster and smaller than
    dicts: :class:`MaskRecord` (boxes skipped) when not ``boxes``, :class:`BoxRecord` (masks
    skipped: a third of the time and half the memory) when not ``masks``, unless the records
    have no ``bbox`` (boxes then come from the masks). Any other file is decoded into plain
    dicts, so that :func:`validate_detections` can name its first offending record and field.
    """
    if not (boxes or masks):
        raise ValueError("read_results needs boxes, masks or both")
    if isinstance(results, list):
        return results, "<list>"
    path = _results_path(results)
    with _mapped(path) as data:  # no copy of the file: the decoded structs hold their own
        try:
            records = _DECODERS[bool(boxes), bool(masks)].decode(data)
            if not masks and records and records[0].bbox is msgspec.UNSET:
                records = _DECODERS[True, True].decode(data)  # mask-only: boxes from masks
            return records, str(path)
        except (msgspec.DecodeError, RecursionError):  # ill-typed: decoded generically
            pass
    return read_result_records(path)


@contextlib.contextmanager
def _mapped(path: Path):
    """The file's bytes, memory-mapped read-only (``b""`` for an empty file)."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


# ----------------------------------------------------------------------------- validation


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
    """Whether ``records`` came from :func:`read_results`' typed decoder (all :class:`Record`)."""
    return bool(records) and type(records[0]) in _TYPED and type(records[-1]) in _TYPED


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
        if isinstance(record, _TYPED):
            image = record.image_id
        message = _message(source, error.index, image, error.field, error.reason)
        if (error.field, error.reason) == ("segmentation", "is missing"):
            message += "; results without masks are evaluated for boxes only: --iou-types bbox"
        raise ValueError(message) from None
    return Detections(image_id, category_id, score, boxes, segms, source, row, column)


def read_detections(
    results: str | os.PathLike | list,
    image_ids: np.ndarray,
    image_sizes: np.ndarray,
    category_ids: np.ndarray,
    need_boxes: bool,
    need_masks: bool,
) -> Detections:
    """:func:`read_results` then :func:`validate_detections` (the general path: every legal
    form of results, and the message naming the record and field of what is not legal)."""
    records, source = read_results(results, boxes=need_boxes, masks=need_masks)
    return validate_detections(
        records, image_ids, image_sizes, category_ids, need_boxes, need_masks, source
    )


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


def rle_dicts(det: Detections, indices: np.ndarray) -> list[dict]:
    """The RLEs of detections ``indices`` as dicts ``{"size": [h, w], "counts": str}`` (the
    records' own dicts, or new ones for :class:`RLE` structs and :class:`RLEColumns`), for
    pycocotools-style APIs."""
    segms = det.segmentation
    if isinstance(segms, RLEColumns):
        return segms.dicts(indices)
    return [
        {"size": list(s.size), "counts": s.counts} if type(s) is RLE else s
        for s in (segms[i] for i in np.asarray(indices).tolist())
    ]


def boxes_from_masks(det: Detections, indices: np.ndarray) -> np.ndarray:
    """XYWH boxes (float64, ``(len(indices), 4)``, pixels) of the RLEs of detections
    ``indices`` (checked by :func:`mask_areas` first), by
    :func:`lvisnb.annotations.masks.rle_boxes`, as ``lvis.LVISResults`` gives mask-only results
    their boxes."""
    return masks.rle_boxes(rle_dicts(det, indices))


# ----------------------------------------------------------------------------- caps


def _grouped_top(
    group: np.ndarray, score: np.ndarray, limit: int, sort_all: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Indices kept when each group keeps its ``limit`` best scores, groups in order of first
    appearance. A group is sorted by descending score (stable: ties keep input order) when
    ``sort_all`` or when it exceeds ``limit``; otherwise it keeps its input order.
    Returns ``(kept indices in output order, size of each group in order of first appearance)``.
    """
    n = len(group)
    _, first, inverse, sizes = np.unique(
        group, return_index=True, return_inverse=True, return_counts=True
    )
    appearance = np.argsort(first, kind="stable")
    rank = np.empty(len(first), dtype=np.int64)
    rank[appearance] = np.arange(len(first))
    sort_group = np.full(len(first), sort_all) | (sizes > limit)
    key = np.where(sort_group[inverse], -score, 0.0)
    order = np.lexsort((np.arange(n), key, rank[inverse]))
    sizes_in_order = sizes[appearance]
    starts = np.cumsum(sizes_in_order) - sizes_in_order
    within = np.arange(n) - starts[rank[inverse][order]]
    return order[within < limit], sizes_in_order


def _contiguous_group_sizes(group: np.ndarray) -> np.ndarray | None:
    """Sizes of the runs of equal values of ``group`` when each value forms one run (records
    written group by group, as every detector writes them per image), else ``None``."""
    starts = np.flatnonzero(np.diff(group)) + 1
    heads = group[np.concatenate([[0], starts])]
    if len(np.unique(heads)) != len(heads):
        return None
    return np.diff(np.concatenate([[0], starts, [len(group)]]))


def cap_per_image(
    det: Detections, max_dets: int = MAX_DETS_PER_IMAGE, sort: bool = False
) -> tuple[np.ndarray, dict]:
    """Indices of the detections kept by LVIS's per-image limit, in ``lvis.LVISResults`` order:
    the one top-``max_dets`` cut of the kit (evaluation and the scene of notebook 04).

    ``LVISResults.limit_dets_per_image``: detections grouped by image (images in order of first
    appearance, input order within an image); an image with more than ``max_dets`` detections
    keeps its ``max_dets`` best scores, sorted by descending score, ties in input order (Python's
    stable ``sorted(..., reverse=True)``). With ``sort``, every image's detections are sorted
    so (the same ones kept). ``max_dets < 0`` keeps everything (still grouped). Returns
    ``(indices, info)``: int64 ``(kept,)`` and ``info`` = ``{"images_over_limit",
    "most_on_one_image", "dropped"}``.
    """
    limit = len(det) if max_dets < 0 else max_dets
    sizes = None if sort else _contiguous_group_sizes(det.image_id)
    if sizes is not None and sizes.max() <= limit:  # grouped by image already, none over
        kept = np.arange(len(det))
    else:
        kept, sizes = _grouped_top(det.image_id, det.score, limit, sort_all=sort)
    info = {
        "images_over_limit": int((sizes > limit).sum()),
        "most_on_one_image": int(sizes.max()),
        "dropped": int(len(det) - len(kept)),
    }
    return kept, info


def cap_per_class(det: Detections, dets_per_class: int) -> tuple[np.ndarray, dict]:
    """Indices of the ``dets_per_class`` best-scored detections of each category over the whole
    results (Dave et al. 2021's AP-fixed protocol, as their ``evaluate_ap_fixed.py``): grouped
    by category in order of first appearance, each sorted by descending score (stable), top
    ``dets_per_class`` kept. Returns ``(indices, info)`` with ``info`` =
    ``{"classes_over_limit", "classes_under_limit", "dropped"}`` (under: fewer detections than
    the budget, which lowers AP-fixed; the paper's detectors output the full budget).
    """
    kept, sizes = _grouped_top(det.category_id, det.score, dets_per_class, sort_all=True)
    info = {
        "classes_over_limit": int((sizes > dets_per_class).sum()),
        "classes_under_limit": int((sizes < dets_per_class).sum()),
        "dropped": int(len(det) - len(kept)),
    }
    return kept, info
