"""Bootstrap confidence intervals for LVIS AP, APr, APc, APf: images resampled, matching reused.

The unit of resampling is the image (Efron & Tibshirani 1993, "An Introduction to the
Bootstrap", ch. 6 and 13: the nonparametric bootstrap and its percentile interval). A
replicate b draws the data set's I images I times with replacement; image i then appears
``w[b, i]`` times (multinomial, sum I). Matching is per (image, category) in LVIS, so an image
that appears twice contributes its detections' true/false-positive flags twice and its GT
instances twice: the matching pass of the plain evaluation is reused as it is, and only the
accumulation is redone, with weights. Per category k and IoU threshold t, with the category's
detections sorted by score ONCE (as ``LVISEval.accumulate``: descending, stable over images in
id order), non-ignored detections j carrying flags ``tp_tj`` / ``fp_tj``:

    TP_t(n) = sum_{j <= n} w_{img(j)} tp_tj        FP_t(n) = sum_{j <= n} w_{img(j)} fp_tj
    G_k = sum_i w_i g_ik   (g_ik: GT instances of category k on image i, none ignored at area "all")
    P_t(n) = TP_t(n) / (FP_t(n) + TP_t(n) + eps),  made monotone (max over m >= n),
    read at the 101 recall points as COCO/LVIS (first n with TP_t(n) / G_k >= r, else 0),

and AP_k is the mean over t and r; AP (APr, APc, APf) is the mean of AP_k over the categories
(of the group) with G_k > 0 in the replicate, -1 when there are none (LVIS's rule).

With integer weights this *is* the evaluation of the literally resampled data set (images
repeated under new ids) when scores are distinct: the copies of a detection are then a run of
tied detections; within a run of true positives precision only rises, so the monotone envelope
reads the run's last position at every recall point inside the run, which is the weighted
position; false positives only lower the precision of later positions. (With tied scores
across images, LVIS orders the copies by image id, so a literal resample can interleave them
differently.) ``tests/evaluation/test_bootstrap.py`` checks this against the official ``LVISEval``
on duplicated images, and that all weights 1 give the plain metrics.

Only true-positive rows are needed per replicate: a recall point is read at a true positive
(r = 0 at the first position, whose envelope is the maximum over all positions), and the
envelope at a true positive is the maximum over the true positives from there on (a false
positive's precision is below the preceding true positive's). So per threshold the work is
one cumulative sum over the false positives and one over the true positives, for all
replicates at once ([B, rows] arrays, int32 counts, float64 precision as ``LVISEval``),
block by block of whole categories. False positives after a category's last true positive
are left out: they lower no precision that is read.

The matching comes from the fast backend
(:meth:`lvisnb.evaluation.fast_backend.FastBackend.standard` with ``matches=True``: hotcoco's
per-detection status of the same evaluation, area "all"); ``evaluate(..., backend="lvis",
bootstrap=B)`` raises ``ValueError``.

Resampled AP runs high. The interpolated precision is a running maximum (the envelope),
and resampling makes the precision curve rougher: an image drawn twice puts its true positives
in pairs, which lifts local precision peaks, while the images left out remove others; the
maximum of a rougher curve is higher. On the 5,000-image synthetic case of
``benchmarks/bootstrap_scale.py`` (flat precision curves from random scores) the mean of the
replicates exceeds the estimate by about 0.007 AP, as much as the interval's half-width, so
the percentile intervals there lie just above the estimate; on the toy case they contain it.
``Evaluation.info["bootstrap"]["bias"]`` reports that difference. In a paired comparison
(:func:`lvisnb.evaluation.comparison.compare`) both results carry much the same bias, and the
interval of the difference is the better-founded number.

Intervals are percentile intervals: the (1 - c) / 2 and (1 + c) / 2 quantiles of the
replicate values (``numpy.quantile``, linear), as hotcoco's ``compare`` computes them.
hotcoco's ``compare`` resamples images too, but de-duplicates each draw (an m-of-n subsample
of about 63% of the images); here every draw counts, as in the textbook bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvisnb.annotations.categories import FREQUENCY_GROUPS
from lvisnb.evaluation.metrics import IOU_THRESHOLDS, RECALL_POINTS

METRICS = ("AP", "APr", "APc", "APf")  # what the bootstrap gives intervals for
CONFIDENCE = 0.95
BLOCK_ELEMENTS = 250_000  # replicates x rows per block of categories (~1-2 MB per array)
_RECALL_ABOVE = np.append(RECALL_POINTS, np.inf)  # [c] = the c-th point (from 0), inf past
_RECALL_BELOW = np.insert(RECALL_POINTS, 0, -np.inf)  # [c] = the (c - 1)-th point


@dataclass
class Matches:
    """The matching of one standard LVIS evaluation at area "all", per detection.

    Detections (N) are those the evaluation saw (verified, within the per-image limit, area >
    0), in accumulation order: by category, then descending score, then image, then the order
    within the (image, category) cell, as ``LVISEval.accumulate`` sorts them.

    - ``image``: int64 (N,) image row (``GroundTruth.image_ids`` order); ``category``: int64
      (N,) category column, non-decreasing.
    - ``tp`` / ``fp``: bool [T, N] per IoU threshold (0.50:0.05:0.95): matched and not ignored
      / unmatched and not ignored (ignored: unmatched on a not-exhaustive category, as LVIS).
    - ``gt_image``, ``gt_category``, ``gt_count``: int64 (P,) per (image, category) pair with
      GT, sorted by category: the pair's GT instances that count (not ignored at area "all").
    """

    num_images: int
    num_categories: int
    image: np.ndarray
    category: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    gt_image: np.ndarray
    gt_category: np.ndarray
    gt_count: np.ndarray


def sorted_matches(
    num_images: int,
    num_categories: int,
    detections: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    tp: np.ndarray,
    fp: np.ndarray,
    gt: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> Matches:
    """:class:`Matches` from unsorted columns.

    ``detections``: (image row, category column, score, position within its (image, category)
    cell after the cell's stable sort by descending score), each (N,); ``tp``, ``fp``: bool
    [T, N]; ``gt``: (image row, category column, count) of GT instances, any grouping (summed
    per pair here).
    """
    image, category, score, position = (np.asarray(a) for a in detections)
    order = np.lexsort((position, image, -np.asarray(score, dtype=np.float64), category))
    gt_image, gt_category, gt_count = (np.asarray(a, dtype=np.int64) for a in gt)
    keys = gt_category * num_images + gt_image
    pairs, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=gt_count, minlength=len(pairs))
    keep = counts > 0
    return Matches(
        num_images,
        num_categories,
        image[order].astype(np.int64),
        category[order].astype(np.int64),
        np.asarray(tp, dtype=bool)[:, order],
        np.asarray(fp, dtype=bool)[:, order],
        pairs[keep] % num_images,
        pairs[keep] // num_images,
        counts[keep].astype(np.int64),
    )


def image_weights(num_images: int, replicates: int, seed: int) -> np.ndarray:
    """int32 [B, I]: how often each image appears in each of ``replicates`` resamples.

    Each row draws ``num_images`` images uniformly with replacement
    (``numpy.random.default_rng(seed).integers``), so it sums to ``num_images``; the same
    ``(num_images, replicates, seed)`` always gives the same weights, which is what pairs the
    bootstrap of two results on the same ground truth.
    """
    draws = np.random.default_rng(seed).integers(0, num_images, size=(replicates, num_images))
    flat = draws + (np.arange(replicates) * num_images)[:, None]
    counts = np.bincount(flat.ravel(), minlength=replicates * num_images)
    return counts.reshape(replicates, num_images).astype(np.int32)


@dataclass
class _Block:
    """Whole categories of one IoU threshold's true positives, independent of the weights.

    Rows are the categories' true positives in accumulation order (m); the false positives
    that count are those before their category's last true positive (later ones lower no
    precision that is read), each charged to the row of the true positive after it.
    """

    tp_image: np.ndarray  # (m,) image of each row
    fp_image: np.ndarray  # (f,) image of each false positive that counts, in order
    fp_upto: np.ndarray  # (m,) false positives charged to this row and the rows before it
    categories: np.ndarray  # (s,) category of each segment (the rows of one category)
    starts: np.ndarray  # (s,) first row of each segment
    segment: np.ndarray  # (m,) segment of each row


def _blocks(matches: Matches, replicates: int):
    """:class:`_Block` s of every IoU threshold, of about ``BLOCK_ELEMENTS / replicates`` rows
    (at least one category), so that the [B, rows] arrays stay in cache."""
    size = max(BLOCK_ELEMENTS // max(replicates, 1), 1)
    position = np.arange(len(matches.category))
    for tp, fp in zip(matches.tp, matches.fp, strict=True):
        tp_at, category = position[tp], matches.category[tp]
        last = np.full(matches.num_categories, -1)
        last[category] = tp_at  # the last true positive of each category wins
        fp_at = position[fp & (position < last[matches.category])]
        fp_row = np.searchsorted(tp_at, fp_at)  # the true positive after each
        ends = np.append(np.flatnonzero(np.diff(category)) + 1, len(category))
        start = 0
        while start < len(category):
            fit = ends[np.searchsorted(ends, start + size, side="right") - 1]
            end = int(fit) if fit > start else int(ends[np.searchsorted(ends, start, "right")])
            f0, f1 = np.searchsorted(fp_row, [start, end])
            upto = np.searchsorted(fp_row[f0:f1], np.arange(start, end), side="right")
            categories, starts = np.unique(category[start:end], return_index=True)
            segment = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, end - start)))
            yield _Block(
                matches.image[tp_at[start:end]],
                matches.image[fp_at[f0:f1]],
                upto,
                categories,
                starts,
                segment,
            )
            start = end


def weighted_gt(matches: Matches, weights: np.ndarray) -> np.ndarray:
    """int64 [B, K]: GT instances per category in each replicate, sum_i w[b, i] g_ik."""
    out = np.zeros((len(weights), matches.num_categories), dtype=np.int64)
    if len(matches.gt_count):
        by_image = np.ascontiguousarray(weights.T)
        values = _gather(by_image, matches.gt_image).astype(np.int64) * matches.gt_count
        categories, starts = np.unique(matches.gt_category, return_index=True)
        out[:, categories] = np.add.reduceat(values, starts, axis=1)
    return out


def _recall_counts(recall: np.ndarray) -> np.ndarray:
    """How many of the 101 recall points are <= each value (float64 [B, m] in [0, 1]), i.e.
    ``searchsorted(RECALL_POINTS, recall, "right")``, by arithmetic (searchsorted is slow)."""
    count = (recall * 100).astype(np.int32)  # floor, then corrected by one either way:
    count += 1
    np.minimum(count, len(RECALL_POINTS), out=count)
    count += _RECALL_ABOVE[count] <= recall  # RECALL_POINTS[count], inf past the last
    count -= _RECALL_BELOW[count] > recall  # RECALL_POINTS[count - 1]
    return count


def _segment_sums(values: np.ndarray, count: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per segment (columns from each start to the next) of [B, m] ``values``: made
    non-increasing along the row in place (``P(n) = max_{m >= n} P(m)``), then summed with
    weights ``count`` (float64 [B, m]): float64 [B, s]."""
    ends = np.append(starts[1:], values.shape[1])
    longer = ends - starts > 1  # one row is its own envelope
    for start, end in zip(starts[longer].tolist(), ends[longer].tolist(), strict=True):
        view = values[:, start:end][:, ::-1]
        np.maximum.accumulate(view, axis=1, out=view)
    np.multiply(values, count, out=values)
    return np.add.reduceat(values, starts, axis=1)


def _restarted(cumulative: np.ndarray, starts: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Cumulative sums along axis 1 (int32 [B, m]) restarted at each segment start."""
    before = np.zeros((len(cumulative), len(starts)), dtype=cumulative.dtype)
    before[:, 1:] = cumulative[:, starts[1:] - 1]
    return cumulative - before[:, segment]


def _gather(by_image: np.ndarray, images: np.ndarray) -> np.ndarray:
    """[B, n] weights of ``images`` from [I, B] ``by_image``: whole rows are copied, then
    transposed (``weights[:, images]`` reads one column at a time, several times slower
    once a replicate's I weights outgrow the cache)."""
    return np.ascontiguousarray(by_image[images].T)


def _block_sums(block: _Block, by_image: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Sum over the 101 recall points of the interpolated precision, per replicate and
    segment of ``block``: float64 [B, s] (one IoU threshold). ``by_image``: int32 [I, B]
    image weights; ``gt``: int64 [B, K]. (int32 cumulative sums and float64 arithmetic on
    float64 arrays: numpy is many times slower on int64 sums of int32 and on mixed int/float
    operands.)"""
    tp = np.cumsum(_gather(by_image, block.tp_image), axis=1, dtype=np.int32)
    tp = _restarted(tp, block.starts, block.segment).astype(np.float64)  # TP(n)
    fp = np.zeros((by_image.shape[1], len(block.fp_image) + 1), dtype=np.int32)
    np.cumsum(_gather(by_image, block.fp_image), axis=1, dtype=np.int32, out=fp[:, 1:])
    fp = _restarted(fp[:, block.fp_upto], block.starts, block.segment)  # FP(n)
    precision = tp / (fp.astype(np.float64) + tp + np.spacing(1))  # as LVISEval
    num_gt = np.maximum(gt[:, block.categories], 1).astype(np.float64)  # G = 0: dropped later
    count = _recall_counts(tp / num_gt[:, block.segment])
    first = np.zeros(len(block.segment), dtype=bool)
    first[block.starts] = True
    count[:, 1:] -= np.where(first[1:], 0, count[:, :-1])  # recall points read at each row
    return _segment_sums(precision, count.astype(np.float64), block.starts)


def precision_sums(matches: Matches, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per replicate and category: the sum over IoU thresholds and recall points of the
    interpolated precision (float64 [B, K]; AP_k = sum / (T * R)) and the GT count (int64
    [B, K]). ``weights``: int [B, I] image multiplicities (:func:`image_weights`)."""
    weights = np.asarray(weights, dtype=np.int32)
    gt = weighted_gt(matches, weights)
    by_image = np.ascontiguousarray(weights.T)
    sums = np.zeros(gt.shape)
    for block in _blocks(matches, len(weights)):
        sums[:, block.categories] += _block_sums(block, by_image, gt)
    return sums, gt


def replicate_metrics(
    matches: Matches, weights: np.ndarray, frequency: np.ndarray
) -> dict[str, np.ndarray]:
    """AP, APr, APc, APf of each replicate (float64 (B,) each; -1 where the replicate has no GT
    of the group). ``frequency``: (K,) "r" / "c" / "f" per category column."""
    sums, gt = precision_sums(matches, weights)
    ap = sums / (len(IOU_THRESHOLDS) * len(RECALL_POINTS))
    valid = gt > 0
    groups = {"AP": np.ones(len(frequency), dtype=bool)}
    groups |= {f"AP{g}": np.asarray(frequency) == g for g in FREQUENCY_GROUPS}
    out = {}
    for name, columns in groups.items():
        count = valid[:, columns].sum(axis=1)
        total = np.where(valid[:, columns], ap[:, columns], 0.0).sum(axis=1)
        out[name] = np.where(count > 0, total / np.maximum(count, 1), -1.0)
    return out


def _quantiles(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def percentile_interval(
    values: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """The percentile interval of replicate values (float (B,)): the (1 - confidence) / 2 and
    (1 + confidence) / 2 quantiles (``numpy.quantile``, linear, as hotcoco's ``compare``).
    Replicates where the metric is undefined (-1: no GT of the group drawn) are left out;
    ``None`` if none is left."""
    values = np.asarray(values, dtype=np.float64)
    return _quantiles(values[values > -1], confidence)


def difference_interval(
    a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Percentile interval of ``b - a`` over the replicates where both are defined (paired:
    ``a`` and ``b`` computed with the same image weights); ``None`` if there are none."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both = (a > -1) & (b > -1)
    return _quantiles((b - a)[both], confidence)
