"""The segmentations of an LVIS file checked together: vectorised passes, then the exact rule.

:func:`first_problem` finds the first illegal segmentation of a list (annotations of images of
given heights and widths): numpy passes over all of them at once flag the few that may break a
rule (:func:`_suspect_segmentations`; an LVIS train file has ~40M polygon numbers), and only
those are checked one by one with the rules of :mod:`lvisnb.annotations.masks`
(:func:`_segmentation_problem`). :func:`lvisnb.annotations.validate.validate_dataset` names the
record it finds.
"""

from __future__ import annotations

from functools import partial
from itertools import chain
from operator import methodcaller

import numpy as np

from lvisnb.annotations import masks
from lvisnb.annotations.json_file import ABSENT, NUMBER, as_float64, short


def _is_size(size) -> bool:
    return (
        isinstance(size, list | tuple)
        and len(size) == 2
        and all(type(v) is int and 0 < v <= masks.MAX_IMAGE_SIDE for v in size)
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
                f"{short(segmentation.get('size', ABSENT))}"
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
    if not typed and set(map(type, chain.from_iterable(parts))) - NUMBER:
        return None
    try:
        return np.fromiter(chain.from_iterable(parts), dtype=np.float64, count=count)
    except OverflowError:
        return as_float64(list(chain.from_iterable(parts)))


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
        numeric = np.fromiter((type(c) in NUMBER for c in coords), dtype=bool, count=len(coords))
        suspect[np.repeat(owner, lengths)[~numeric]] = True
        xy = as_float64([c if ok else 0.0 for c, ok in zip(coords, numeric, strict=True)])
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


def first_problem(segmentations: list, height, width, typed: bool) -> tuple[int, str] | None:
    """``(index, why)`` of the first illegal segmentation of ``segmentations`` (that of an image
    ``height[i]`` x ``width[i]`` pixels, int64 arrays; :func:`_segmentation_problem`), or
    ``None``: checked flat with numpy, one by one only where flagged. ``typed``: polygons were
    decoded as ``list[list[float]]`` (their numbers need no type check)."""
    suspect = _suspect_segmentations(segmentations, height, width, typed)
    for i in np.flatnonzero(suspect).tolist():
        problem = _segmentation_problem(segmentations[i], int(height[i]), int(width[i]))
        if problem is not None:
            return i, problem
    return None
