"""LVIS's per-image cap and Dave et al. 2021's per-class budget, on validated :class:`Detections`.

:func:`cap_per_image` and :func:`cap_per_class` return the kept detections *in the order the
reference implementations produce*, so that ties in score are broken identically by every
evaluation backend.
"""

from __future__ import annotations

import numpy as np

from lvisnb.evaluation.metrics import MAX_DETS_PER_IMAGE
from lvisnb.evaluation.results import Detections


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
