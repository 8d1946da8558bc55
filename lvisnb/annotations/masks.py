"""LVIS segmentations in their three legal forms: checks and conversion to compressed RLE.

An LVIS/COCO ``segmentation`` is one of

- **polygons**: a list of parts ``[[x1, y1, x2, y2, ...], ...]`` (pixels, each part at least
  three vertices), merged into one mask;
- **uncompressed RLE**: ``{"size": [height, width], "counts": [c0, c1, ...]}``, run lengths
  (alternating background / foreground, column-major) that add up to ``height * width``;
- **compressed RLE**: ``{"size": [height, width], "counts": "<string>"}`` (pycocotools'
  ``rleToString`` coding), checked and measured in bulk by :func:`rle_areas`.

``lvis.LVIS.ann_to_rle`` converts the first two with ``pycocotools.mask.frPyObjects`` at the
image's size; :func:`to_compressed_rle` does the same, after :func:`segmentation_problem` has
made sure pycocotools will not fail, hang or crash on it (it segfaults on a vertex at 2e8 on a
28 x 28 image, and reads garbage from runs that do not tile the image).

Areas and boxes of compressed RLEs come from hotcoco's ``mask.area`` / ``mask.toBbox`` (Rust,
as pycocotools computes them; pycocotools 2.0.11's ``area`` fails on a list of 256 or more).
hotcoco refuses negative runs and runs past ``height * width`` but accepts a string cut short
inside a run, characters above ``'o'`` and runs that stop short of ``height * width``: those
:func:`rle_totals` checks first, with numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import hotcoco.mask
import numpy as np
import pycocotools.mask as mask_utils

# A polygon vertex may lie outside the image (pycocotools clips), but no further than this many
# image sizes: rasterising walks the polygon's outline pixel by pixel (5x upsampled, in 32-bit
# integers), so a far vertex costs time and memory in proportion to its distance, and crashes
# pycocotools beyond ~1e8 pixels. No model or annotator puts a vertex 10 images away.
POLYGON_MARGIN = 10.0
MAX_IMAGE_SIDE = 2**31 - 1  # pycocotools keeps mask sizes in 32 bits
MAX_IMAGE_PIXELS = 2**32 - 1  # ... and run lengths, so height x width must fit too
RLE_MAX_CHARS_PER_COUNT = 7  # 35 bits: far beyond any image; longer runs are malformed
# check compressed RLE strings about this many characters at a time: the int64 temporaries
# (8 bytes per character, 1 MB) then stay in a core's cache
_RLE_CHUNK_CHARS = 1 << 17


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def polygon_problem(parts, height: int, width: int) -> str | None:
    """Why ``parts`` is not a legal polygon segmentation of a ``height x width`` image, or
    ``None``: a non-empty list of parts, each a list of an even number (>= 6) of finite
    numbers, every vertex within ``POLYGON_MARGIN`` image sizes of the image."""
    if not isinstance(parts, list) or not parts:
        return "must be a non-empty list of polygons [[x1, y1, x2, y2, ...], ...]"
    for number, part in enumerate(parts):
        if not isinstance(part, list) or not all(map(_is_number, part)):
            return f"polygon {number} must be a list of numbers [x1, y1, x2, y2, ...]"
        if len(part) < 6 or len(part) % 2:
            return (
                f"polygon {number} has {len(part)} numbers; a polygon needs an even count, "
                "at least 6 (three vertices)"
            )
        xy = np.asarray(part, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(xy).all():
            return f"polygon {number} has a coordinate that is not finite"
        low = -POLYGON_MARGIN * np.array([width, height])
        high = (1 + POLYGON_MARGIN) * np.array([width, height])
        outside = np.flatnonzero(((xy < low) | (xy > high)).any(axis=1))
        if outside.size:
            x, y = xy[outside[0]]
            return (
                f"polygon {number} has the vertex ({x:g}, {y:g}), far outside the "
                f"{width}x{height} image (width x height)"
            )
    return None


def uncompressed_problem(segmentation: dict, height: int, width: int) -> str | None:
    """Why ``segmentation`` (a dict with a list ``counts``) is not a legal uncompressed RLE of
    a ``height x width`` image, or ``None``."""
    size = segmentation.get("size")
    if not isinstance(size, list | tuple) or list(size) != [height, width]:
        return f"size is {size!r} but the image is [{height}, {width}] (height, width)"
    counts = segmentation["counts"]
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        return "uncompressed RLE counts must be integers"
    if any(c < 0 for c in counts):
        return "uncompressed RLE counts must not be negative"
    if sum(counts) != height * width:
        return f"uncompressed RLE counts add up to {sum(counts)}, not {height}x{width}"
    return None


def compressed_problem(segmentation: dict, height: int, width: int) -> str | None:
    """Why ``segmentation`` (a dict with a string ``counts``) is not a legal compressed RLE of
    a ``height x width`` image, or ``None``: its ``size`` is the image's and its ``counts`` a
    well-formed ``rleToString`` string whose runs, none negative, cover exactly
    ``height * width`` pixels (see :func:`rle_areas`; pycocotools reads past the end of a
    string cut short, and the lvis backend hangs on one)."""
    size = segmentation.get("size")
    if not isinstance(size, list | tuple) or list(size) != [height, width]:
        return f"size is {size!r} but the image is [{height}, {width}] (height, width)"
    _, total, ok = rle_areas(np.array([[height, width]]), [segmentation["counts"]])
    if not ok[0]:
        return (
            "compressed RLE counts are not a pycocotools RLE string (cut short, a negative "
            "run, or a character outside '0'..'o')"
        )
    if total[0] != height * width:
        return f"compressed RLE counts cover {total[0]} pixels, not {height}x{width}"
    return None


def segmentation_problem(segmentation, height: int, width: int) -> str | None:
    """Why a polygon or uncompressed-RLE ``segmentation`` is not legal (``None`` if it is);
    compressed RLEs are checked elsewhere (their strings, in bulk) and pass here."""
    if isinstance(segmentation, list):
        return polygon_problem(segmentation, height, width)
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return uncompressed_problem(segmentation, height, width)
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str | bytes):
        return None
    return (
        "must be polygons [[x1, y1, ...], ...] or an RLE {'size': [h, w], 'counts': ...}, "
        f"got {type(segmentation).__name__}"
    )


def to_compressed_rle(segmentation, height: int, width: int) -> dict:
    """``{"size": [height, width], "counts": str}`` of a legal segmentation (see
    :func:`segmentation_problem`), as ``lvis.LVIS.ann_to_rle`` converts it; a compressed RLE
    is returned as it is."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        return segmentation
    counts = rle["counts"]
    return {
        "size": [int(height), int(width)],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def segmentation_rle(segmentation, height: int, width: int) -> dict:
    """Compressed RLE (pycocotools' dict) of one LVIS segmentation in a ``height x width`` image.

    ``segmentation``: polygons (a list of ``[x1, y1, x2, y2, ...]`` in pixels; parts of one
    object are merged), an uncompressed RLE (``counts`` a list) or a compressed RLE (``counts`` a
    str or bytes). An RLE whose ``size`` is not ``[height, width]`` raises ``ValueError``.
    """
    if isinstance(segmentation, dict) and list(segmentation.get("size", ())) != [height, width]:
        raise ValueError(
            f"RLE of size {segmentation.get('size')} does not fit the {height}x{width} image"
        )
    return to_compressed_rle(segmentation, height, width)  # polygon parts are merged


def decode_masks(segmentations: Sequence, height: int, width: int) -> np.ndarray:
    """N x H x W uint8 masks from LVIS segmentations (see :func:`segmentation_rle`)."""
    masks = np.zeros((len(segmentations), height, width), dtype=np.uint8)
    for i, segmentation in enumerate(segmentations):
        try:
            rle = segmentation_rle(segmentation, height, width)
        except ValueError as error:
            raise ValueError(f"segmentation {i}: {error}") from None
        masks[i] = mask_utils.decode(rle)
    return masks


# ----------------------------------------------------------------------------- compressed RLE


def rle_totals(counts: list[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels covered by compressed COCO RLE strings, and whether they are well-formed, with
    numpy and without building masks: the checks hotcoco does not make (see the module).

    The string format (pycocotools ``rleToString``): run lengths ``c_0, c_1, ...`` alternate
    background and foreground, column-major. Each is written as ``x_m = c_m - c_{m-2}`` for
    ``m > 2``, else ``x_m = c_m``, in 5-bit groups, least significant first, as characters
    ``48 + g``; bit ``0x20`` of a group means "more groups follow", bit ``0x10`` of the last
    one is the sign.

    Returns ``(total, ok)``, int64 and bool, shape ``(len(counts),)``: ``total = sum_m c_m``
    (must equal ``height * width``) and ``ok``: ASCII characters in ``'0'..'o'`` only, no
    string ending inside a run, at most ``RLE_MAX_CHARS_PER_COUNT`` characters per run.
    Negative runs are not looked for here (:func:`rle_areas` leaves them to hotcoco).
    """
    n = len(counts)
    total, ok = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    lengths = np.fromiter(map(len, counts), dtype=np.int64, count=n)
    ends = np.cumsum(lengths)
    start = 0
    while start < n:  # chunks of about _RLE_CHUNK_CHARS characters
        done = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, done + _RLE_CHUNK_CHARS, side="right"))
        stop = min(max(stop, start + 1), n)
        part = slice(start, stop)
        total[part], ok[part] = _chunk_totals(counts[part], lengths[part])
        start = stop
    return total, ok


def _as_bytes(counts: list[str | bytes]) -> bytes:
    """``counts`` concatenated as bytes, one per character: a ``str`` character outside ASCII
    (malformed, and read by pycocotools as its UTF-8 bytes) becomes ``'~'``, outside
    ``'0'..'o'`` too."""
    try:
        joined = "".join(counts)
    except TypeError:  # bytes among them
        joined = "".join(c.decode("latin-1") if isinstance(c, bytes) else c for c in counts)
    if not joined.isascii():
        joined = re.sub(r"[^\x00-\x7f]", "~", joined)
    return joined.encode("latin-1")


def _chunk_totals(counts: list[str | bytes], lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`rle_totals` of one chunk, in a fixed number of numpy passes over its characters,
    its values (one per run, ended by a group without the "more" bit) and its strings.

    A run is ``c_m = x_m + x_{m-2} + ...`` down to ``x_1`` (odd m) or ``x_2`` (even m), so in
    a string of ``V`` values ``x_m`` (``m >= 1``) is part of ``(V - 1 - m) // 2 + 1`` runs
    and ``x_0`` of one: ``total`` is that weighted sum of the values.
    """
    total, ok = np.zeros(len(lengths), dtype=np.int64), np.ones(len(lengths), dtype=bool)
    nonempty = np.flatnonzero(lengths)
    if not nonempty.size:
        return total, ok
    string_start = (np.cumsum(lengths) - lengths)[nonempty]
    last = string_start + lengths[nonempty] - 1
    g = np.frombuffer(_as_bytes(counts), dtype=np.uint8) - np.uint8(48)  # group + flags
    bad = g > 63  # outside '0'..'o' (uint8 wraps those below '0')
    good = ~np.logical_or.reduceat(bad, string_start)
    g[bad] = 0
    end = g < 32  # last group of a value (no "more" bit 0x20)
    good &= end[last]  # a string must not stop inside a value
    end[last] = True  # so that no value spans two strings
    ends = np.flatnonzero(end)
    x, too_long = _values(g, ends)
    if too_long.size:
        good[np.searchsorted(string_start, ends[too_long], side="right") - 1] = False
    per_string = np.add.reduceat(end, string_start, dtype=np.int64)  # V of each string
    first_value = np.cumsum(per_string) - per_string
    last_value = np.repeat(first_value + per_string - 1, per_string)  # of each value's string
    weight = ((last_value - np.arange(len(ends))) >> 1) + 1  # (V - 1 - m) // 2 + 1
    weight[first_value] = 1  # m = 0
    total[nonempty] = np.add.reduceat(weight * x, first_value)
    ok[nonempty] = good
    return total, ok


def _values(g: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, too_long)``: the signed value ``x_m = sum_k (g_k & 0x1F) << 5k`` (int64, minus
    ``1 << 5K`` when the last of its ``K`` groups has the sign bit 0x10) that ends at each of
    ``ends`` (characters; ``g``: groups with flags), and which use more than
    ``RLE_MAX_CHARS_PER_COUNT`` characters. Values of one character (nearly all: masks change
    little from column to column) are sign-extended at once, the few longer ones group by
    group."""
    x = ((g[ends] << 3).view(np.int8) >> 3).astype(np.int64)  # the last group, sign-extended
    chars = np.diff(ends, prepend=-1)
    multi = np.flatnonzero(chars > 1)
    too_long = multi[chars[multi] > RLE_MAX_CHARS_PER_COUNT]
    if multi.size:
        size = np.minimum(chars[multi], RLE_MAX_CHARS_PER_COUNT)
        first = ends[multi] - size + 1
        value = x[multi] << (5 * (size - 1))
        for k in range(int(size.max()) - 1):
            part = np.flatnonzero(size - 1 > k)
            value[part] += (g[first[part] + k] & 0x1F).astype(np.int64) << (5 * k)
        x[multi] = value
    return x, too_long


def rle_areas(sizes: np.ndarray, counts: list[str | bytes]) -> tuple[np.ndarray, ...]:
    """Foreground areas of compressed RLEs, checking them, without building masks.

    ``sizes``: ``(N, 2)`` integer ``[height, width]`` per RLE; ``counts``: their ``N``
    strings. Returns ``(area, total, ok)``, ``(N,)`` each: ``area`` (int64, px^2, as
    ``pycocotools.mask.area``; 0 where not legal), ``total`` (int64, pixels the runs cover,
    see :func:`rle_totals`) and ``ok`` (bool: well-formed, fewer than 2**32 pixels, as every
    image :mod:`lvisnb.annotations.validate` admits, and, where the total is right, no negative
    run). An RLE is legal when ``ok`` and ``total == height * width``; only legal ones reach
    hotcoco.
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    total, ok = rle_totals(counts)
    area = np.zeros(len(counts), dtype=np.int64)
    ok &= total < 2**32  # hotcoco counts pixels in 32 bits
    tiles = (total == sizes[:, 0] * sizes[:, 1]) & (sizes >= 0).all(axis=1)
    legal = np.flatnonzero(ok & tiles)
    size_lists = sizes.tolist()
    rles = [{"size": size_lists[i], "counts": counts[i]} for i in legal.tolist()]
    try:
        area[legal] = hotcoco.mask.area(rles) if rles else 0
    except ValueError:  # a negative run (whose total is right): find them one by one
        for i, rle in zip(legal.tolist(), rles, strict=True):
            try:
                area[i] = hotcoco.mask.area(rle)
            except ValueError:
                ok[i] = False
    return area, total, ok


def rle_boxes(rles: list[dict]) -> np.ndarray:
    """XYWH boxes (float64, ``(len(rles), 4)``, pixels) of legal compressed RLE dicts
    ``{"size": [h, w], "counts": str}`` (see :func:`rle_areas`), by hotcoco's ``toBbox``
    (pycocotools' numbers, which ``lvis.LVISResults`` gives mask-only results)."""
    if not rles:
        return np.zeros((0, 4))
    return np.asarray(hotcoco.mask.toBbox(rles), dtype=np.float64).reshape(-1, 4)
