"""LVIS segmentations in their three legal forms: checks and conversion to compressed RLE.

An LVIS/COCO ``segmentation`` is one of

- **polygons**: a list of parts ``[[x1, y1, x2, y2, ...], ...]`` (pixels, each part at least
  three vertices), merged into one mask;
- **uncompressed RLE**: ``{"size": [height, width], "counts": [c0, c1, ...]}``, run lengths
  (alternating background / foreground, column-major) that add up to ``height * width``;
- **compressed RLE**: ``{"size": [height, width], "counts": "<string>"}`` (pycocotools'
  ``rleToString`` coding), checked by :func:`lvisnb.detections.rle_runs_summary`.

``lvis.LVIS.ann_to_rle`` converts the first two with ``pycocotools.mask.frPyObjects`` at the
image's size; :func:`to_compressed_rle` does the same, after :func:`segmentation_problem` has
made sure pycocotools will not fail, hang or crash on it (it segfaults on a vertex at 2e8 on a
28 x 28 image, and reads garbage from runs that do not tile the image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_utils

# A polygon vertex may lie outside the image (pycocotools clips), but no further than this many
# image sizes: rasterising walks the polygon's outline pixel by pixel (5x upsampled, in 32-bit
# integers), so a far vertex costs time and memory in proportion to its distance, and crashes
# pycocotools beyond ~1e8 pixels. No model or annotator puts a vertex 10 images away.
POLYGON_MARGIN = 10.0


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
    well-formed ``rleToString`` string whose runs cover exactly ``height * width`` pixels
    (decoded by :func:`lvisnb.detections.rle_runs_summary`; pycocotools reads past the end of
    a string cut short, and the lvis backend hangs on one)."""
    from lvisnb.detections import rle_runs_summary

    size = segmentation.get("size")
    if not isinstance(size, list | tuple) or list(size) != [height, width]:
        return f"size is {size!r} but the image is [{height}, {width}] (height, width)"
    total, _, ok = rle_runs_summary([segmentation["counts"]])
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
    import pycocotools.mask as mask_utils

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
