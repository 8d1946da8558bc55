"""LVIS results read straight into columns by the kit's C reader, in a background thread.

The general reader (:func:`lvisnb.evaluation.result_records.read_results` then
:func:`lvisnb.evaluation.result_validation.validate_detections`) builds one msgspec struct per
record and pulls each field out of them: about two thirds of a fast evaluation's time at LVIS
val scale. A results file as detectors write it (detectron2's ``coco_instances_results.json``,
mmdetection's ``.segm.json``, the kit's ``predict``) is much simpler than what the general
reader must take, so ``lvisnb.evaluation._results_json`` (C, ``lvisnb/evaluation/_results_json.c``)
reads such a file into int64 / float64 columns and one buffer of RLE strings, with no Python object
per record and the GIL released, while the ground truth loads.

It takes only what the general reader's typed decoding takes, and :func:`to_detections` makes
only checks that the general validation makes too; anything either of them does not take
(a polygon, a missing field, a string id, a negative width, an RLE of the wrong size, a
non-ASCII byte, invalid JSON) sends the file to the general reader, which converts what is
legal and names the file, the record and the field of what is not. So both paths give the
same :class:`~lvisnb.evaluation.results.Detections` values and the same errors; only the time
differs (``tests/evaluation/test_result_columns.py`` compares them on many generated files). Without
the compiled extension (no C compiler at install time) every file takes the general path.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lvisnb.evaluation.results import Detections, RLEColumns

try:
    from lvisnb.evaluation import _results_json  # the optional C reader
except ImportError:  # pragma: no cover - built at install time when a C compiler exists
    _results_json = None

AVAILABLE = _results_json is not None


@dataclass
class ResultColumns:
    """A results file as columns (see ``lvisnb/evaluation/_results_json.c``): ``image_id``,
    ``category_id`` int64 (N,), ``score`` float64 (N,) finite, ``bbox`` float64 (N, 4) XYWH
    pixels finite (``None`` when not asked for or when no record has one), ``rles`` (``None``
    when masks were not asked for) and ``source``, the file name."""

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray | None
    rles: RLEColumns | None
    source: str


def read_columns(
    path: str | os.PathLike, boxes: bool, masks: bool, cancel: bytearray | None = None
) -> ResultColumns | None:
    """The columns of the LVIS results file ``path``, or ``None`` when the file is not one the
    C reader takes (or the extension is missing): then read it with
    :func:`lvisnb.evaluation.result_records.read_results`. ``boxes`` / ``masks``: read ``bbox`` /
    ``segmentation`` (then every record must have a compressed RLE); fields not asked for are
    checked as JSON and skipped. A file that cannot be opened is ``None`` too (the general
    reader says why). Setting ``cancel[0]`` (from another thread) stops the reading: ``None``.
    """
    if _results_json is None:
        return None
    flag = cancel if cancel is not None else bytearray(1)
    scanned = _results_json.scan(os.fspath(path), bool(boxes), bool(masks), flag)
    if scanned is None:
        return None
    _, image_id, category_id, score, bbox, sizes, ends, counts = scanned
    rles = None
    if masks:
        sizes = np.frombuffer(sizes, dtype=np.int64).reshape(-1, 2)
        rles = RLEColumns(sizes, np.frombuffer(ends, dtype=np.int64), memoryview(counts))
    return ResultColumns(
        np.frombuffer(image_id, dtype=np.int64),
        np.frombuffer(category_id, dtype=np.int64),
        np.frombuffer(score, dtype=np.float64),
        None if bbox is None else np.frombuffer(bbox, dtype=np.float64).reshape(-1, 4),
        rles,
        str(path),
    )


class PendingColumns:
    """:func:`read_columns` running in a daemon thread (the C reader releases the GIL, so the
    ground truth can load meanwhile); :meth:`result` waits for it."""

    def __init__(self, path: Path, boxes: bool, masks: bool):
        self._columns: ResultColumns | None = None
        self._cancel = bytearray(1)
        self._thread = threading.Thread(
            target=self._read, args=(path, boxes, masks), name="lvisnb-results", daemon=True
        )
        self._thread.start()

    def _read(self, path: Path, boxes: bool, masks: bool) -> None:
        try:
            self._columns = read_columns(path, boxes, masks, self._cancel)
        except (OSError, ValueError):  # the general reader says what is wrong
            self._columns = None

    def cancel(self) -> None:
        """Stop the reading (when the evaluation fails before it needs the columns): the
        thread ends within one record and frees what it read."""
        self._cancel[0] = 1

    def result(self) -> ResultColumns | None:
        """The columns (handed over: a second call gives ``None``), or ``None``."""
        self._thread.join()
        columns, self._columns = self._columns, None
        return columns


def start_reading(results, boxes: bool, masks: bool) -> PendingColumns | None:
    """Start reading ``results`` column-wise when it names an existing file and the extension
    is built, else ``None`` (a list of records, a missing file: the general path handles
    them and their errors)."""
    if _results_json is None or not isinstance(results, str | os.PathLike):
        return None
    try:
        path = Path(results)
        if not path.is_file():
            return None
    except (OSError, TypeError, ValueError):  # said by the general path, in its order
        return None
    return PendingColumns(path, boxes, masks)


def positions(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(position, found)``: each of ``ids`` located in the sorted unique ``sorted_ids``
    (int64, (N,) each; ``position`` is only meaningful where ``found``). Small non-negative
    ids (LVIS's) use a lookup table, O(N); others ``np.searchsorted``."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    low, high = int(sorted_ids[0]), int(sorted_ids[-1])
    if 0 <= low and high <= 4 * len(sorted_ids) + 1_000_000:
        table = np.full(high + 2, -1, dtype=np.int64)
        table[sorted_ids] = np.arange(len(sorted_ids))
        inside = len(ids) and 0 <= ids.min() and ids.max() <= high + 1
        position = table[ids if inside else np.clip(ids, -1, high + 1)]  # -1, high + 1: absent
        return position, position >= 0
    position = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
    return position, sorted_ids[position] == ids


def to_detections(
    columns: ResultColumns,
    image_ids: np.ndarray,
    image_sizes: np.ndarray,
    category_ids: np.ndarray,
    need_boxes: bool,
    need_masks: bool,
) -> Detections | None:
    """``columns`` as :class:`~lvisnb.evaluation.results.Detections` when they pass the checks of
    :func:`lvisnb.evaluation.result_validation.validate_detections` (same arguments), else
    ``None``: the general path then finds and names the first offending record. What the C reader
    guarantees (types, finite numbers, a bbox in every record or none, an RLE in every record
    when masks were read) is not checked again."""
    row, found = positions(image_ids, columns.image_id)
    if not found.all():
        return None
    column, found = positions(category_ids, columns.category_id)
    if not found.all():
        return None
    boxes = columns.bbox if need_boxes else None
    if boxes is not None and (boxes[:, 2:] < 0).any():
        return None  # a negative width or height
    segms = None
    if need_masks or (need_boxes and boxes is None):  # boxes from masks when none are given
        segms = columns.rles
        if segms is None or not (segms.sizes == image_sizes[row]).all():
            return None
    return Detections(
        columns.image_id,
        columns.category_id,
        columns.score,
        boxes,
        segms,
        columns.source,
        row,
        column,
    )
