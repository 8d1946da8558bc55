"""LVIS results (detections) as columns: :class:`Detections`, the record structs a well-typed
results file decodes into, the RLE columns of the C reader, and the masks of validated results
(as dicts, their boxes).

An LVIS results file is a JSON list of records, one per detection::

    {"image_id": int, "category_id": int (LVIS id), "score": float,
     "bbox": [x, y, w, h] (XYWH, pixels; optional when "segmentation" is given),
     "segmentation": {"size": [height, width], "counts": str} (compressed COCO RLE; optional
                     for box-only results)}

:mod:`lvisnb.evaluation.result_records` reads a file into records;
:mod:`lvisnb.evaluation.result_validation` checks them and gives :class:`Detections`;
:mod:`lvisnb.evaluation.result_columns` reads a file column-wise with the C reader;
:mod:`lvisnb.evaluation.caps` applies the per-image and per-class caps.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np

from lvisnb.annotations import masks


@dataclass
class Detections:
    """Validated LVIS results, one row per detection, in input order.

    - ``image_id``, ``category_id``: int64 (N,), LVIS ids (not contiguous labels).
    - ``score``: float64 (N,), finite.
    - ``bbox``: float64 (N, 4), XYWH in pixels, finite, ``w, h >= 0``; ``None`` when the
      results carry no boxes (masks only) or boxes were not asked for.
    - ``segmentation``: the records' compressed RLEs (references, not copies): dicts
      ``{"size", "counts"}``, :class:`RLE` structs when the file was decoded typed (see
      :func:`lvisnb.evaluation.result_records.read_results`), or one :class:`RLEColumns` when it was
      read column-wise (:mod:`lvisnb.evaluation.result_columns`); :func:`rle_dicts` gives dicts;
      ``None`` when masks were not asked for.
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


# ----------------------------------------------------------------------------- records


class RLE(msgspec.Struct, frozen=True, gc=False):
    """A compressed COCO RLE as decoded from a results file: ``size`` [height, width] and the
    ``counts`` string (cheaper to decode and to hold than a dict)."""

    size: tuple[int, int]
    counts: str


class MaskRecord(msgspec.Struct, gc=False):
    """One well-typed LVIS result record without its box, as decoded by
    :func:`lvisnb.evaluation.result_records.read_results` with ``boxes=False`` (unknown keys,
    ``bbox`` included, are skipped; ``segmentation`` is ``msgspec.UNSET`` when absent)."""

    image_id: int
    category_id: int
    score: float
    segmentation: msgspec.UnsetType | RLE = msgspec.UNSET


class Record(MaskRecord, gc=False):
    """:class:`MaskRecord` with its ``bbox`` (``msgspec.UNSET`` when absent)."""

    bbox: msgspec.UnsetType | tuple[float, float, float, float] = msgspec.UNSET


class BoxRecord(msgspec.Struct, gc=False):
    """One well-typed LVIS result record without its mask, as decoded by
    :func:`lvisnb.evaluation.result_records.read_results` with ``masks=False``
    (``segmentation`` is skipped, neither decoded nor held)."""

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
        from lvisnb.evaluation import _results_json  # the C reader: only RLEColumns need it

        as_int64 = np.ascontiguousarray
        return _results_json, as_int64(indices, dtype=np.int64), as_int64(self.ends, dtype=np.int64)


RECORD_TYPES = (Record, MaskRecord, BoxRecord)  # what a well-typed results file decodes into


# ----------------------------------------------------------------------------- masks


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
