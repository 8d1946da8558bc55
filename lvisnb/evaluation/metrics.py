"""LVIS metrics from precision/recall arrays, shared by both evaluation backends.

Both :class:`lvisnb.evaluation.fast_backend.FastBackend` and the official ``lvis.LVISEval``
(:class:`lvisnb.evaluation.lvis_backend.LvisBackend`) produce precision [T, R, K, A] and recall [T,
K, A] in ``LVISEval.eval`` layout (:class:`Accumulated`); the metrics are computed from them here
with ``LVISEval.summarize``'s formulas (:func:`summarize`, :func:`per_category_ap`), and AP-pool's
precision curve (Dave et al. 2021) with COCO's interpolation (:func:`interpolated_precision`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvisnb.annotations.categories import FREQUENCY_GROUPS

MAX_DETS_PER_IMAGE = 300  # LVIS's official per-image limit (LVISResults' max_dets)
AREA_LABELS = ("all", "small", "medium", "large")  # the A axis of precision/recall arrays


def metric_names(max_dets: int = MAX_DETS_PER_IMAGE, fixed: bool = True) -> tuple[str, ...]:
    """Metric names reported per IoU type, in order (``AR@300`` etc. carry ``max_dets``)."""
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
    names += tuple(f"AR{a}@{max_dets}" for a in ("", "s", "m", "l"))
    if fixed:
        names += ("APfixed", "APfixed_r", "APfixed_c", "APfixed_f")
        names += ("APpool", "APpool_r", "APpool_c", "APpool_f")
    return names


@dataclass
class Accumulated:
    """Precision/recall of one evaluation, in ``lvis.LVISEval.eval`` layout.

    ``precision``: [T, R, K, A] (IoU thresholds 0.50:0.05:0.95 x recall points 0:0.01:1 x
    categories in ``GroundTruth.category_ids`` order x areas ``AREA_LABELS``), interpolated
    precision, -1 where the category has no GT in that area range. ``recall``: [T, K, A],
    the final recall, -1 likewise.
    """

    precision: np.ndarray
    recall: np.ndarray


IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _mean_valid(values: np.ndarray) -> float:
    """Mean over entries > -1, or -1 when there are none (as ``LVISEval._summarize``)."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(acc: Accumulated, frequency: np.ndarray, max_dets: int) -> dict[str, float]:
    """LVIS metrics from precision/recall arrays, computed as ``LVISEval.summarize``.

    AP = mean of ``precision[t, r, k, a]`` over valid entries (> -1) with a = "all" and t over
    all thresholds (AP50, AP75: t = 0.5, 0.75); APs/m/l: a = small/medium/large; APr/c/f: k in
    the frequency group; AR@max_dets = mean of ``recall[t, k, "all"]`` (ARs/m/l by area).
    """
    p, r = acc.precision, acc.recall
    t50 = np.isclose(IOU_THRESHOLDS, 0.5)
    t75 = np.isclose(IOU_THRESHOLDS, 0.75)
    metrics = {
        "AP": _mean_valid(p[:, :, :, 0]),
        "AP50": _mean_valid(p[t50][:, :, :, 0]),
        "AP75": _mean_valid(p[t75][:, :, :, 0]),
        "APs": _mean_valid(p[:, :, :, 1]),
        "APm": _mean_valid(p[:, :, :, 2]),
        "APl": _mean_valid(p[:, :, :, 3]),
    }
    for group in FREQUENCY_GROUPS:
        metrics[f"AP{group}"] = _mean_valid(p[:, :, frequency == group, 0])
    for index, area in enumerate(("", "s", "m", "l")):
        metrics[f"AR{area}@{max_dets}"] = _mean_valid(r[:, :, index])
    return metrics


def per_category_ap(precision: np.ndarray) -> np.ndarray:
    """AP of each category (K,): mean of ``precision[:, :, k, "all"]`` over valid entries
    (as lvis does for its per-class AP), NaN for categories without GT."""
    p = precision[:, :, :, 0]
    valid = p > -1
    count = valid.sum(axis=(0, 1))
    total = np.where(valid, p, 0.0).sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def interpolated_precision(
    tps: np.ndarray, fps: np.ndarray, num_gt: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """[T, R] precision at ``RECALL_POINTS`` from score-sorted TP/FP flags [T, N].

    ``P(n) = TP(n) / (TP(n) + FP(n) + eps)`` made monotone (``P(n) = max_{m >= n} P(m)``), read
    at the first n with ``TP(n) / num_gt >= r``, 0 where recall never reaches r (COCO/LVIS).
    ``weights`` (N,): each detection counts that many times in ``TP(n)`` and ``FP(n)`` (an
    image's multiplicity in a bootstrap resample; ``num_gt`` is then the weighted GT count);
    :mod:`lvisnb.evaluation.bootstrap` computes the same for many weight vectors at once.
    """
    if weights is not None:
        tps, fps = tps * weights, fps * weights
    tp = np.cumsum(tps, axis=1, dtype=np.float64)
    fp = np.cumsum(fps, axis=1, dtype=np.float64)
    out = np.zeros((tps.shape[0], len(RECALL_POINTS)))
    for t in range(tps.shape[0]):
        recall = tp[t] / num_gt
        precision = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        index = np.searchsorted(recall, RECALL_POINTS, side="left")
        inside = index < len(precision)
        out[t, inside] = precision[index[inside]]
    return out


def pool_metrics(values: dict[str, float]) -> dict[str, float]:
    """``{pool: AP}`` named as reported: ``APpool``, ``APpool_r``, ``APpool_c``, ``APpool_f``."""
    return {
        "APpool" if pool == "all" else f"APpool_{pool}": value for pool, value in values.items()
    }
