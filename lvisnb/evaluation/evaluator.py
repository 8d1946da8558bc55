"""LVIS evaluation: the official metrics from two interchangeable backends, AP-fixed and AP-pool.

:func:`evaluate` scores LVIS results (a results file or a list of records, see
:mod:`lvisnb.evaluation.results`) against an LVIS ground truth, for ``bbox`` and/or ``segm``:

- ``backend="fast"``: hotcoco's Rust engine in LVIS mode (``COCOeval(..., lvis_style=True)``),
  fed columns that the kit has validated and prepared exactly as ``lvis.LVISResults`` and
  ``LVISEval`` would (per-image limit, result areas, area-0 results and GT left out, order);
  see :mod:`lvisnb.evaluation.fast_backend` for what differs from LVIS there and how it is settled.
- ``backend="lvis"``: the official ``lvis.LVISEval`` (numpy-2-safe,
  :mod:`lvisnb.annotations.lvis_compat`), the reference.

Both give, per IoU type, the LVIS metrics ``AP, AP50, AP75, APs, APm, APl, APr, APc, APf``,
``AR@300, ARs@300, ARm@300, ARl@300`` (the official protocol: at most 300 detections per image,
federated filtering, area ranges small < 32^2 <= medium < 96^2 <= large px^2, results and GT
of area 0 not evaluated), equal to raw ``LVISEval`` to 1e-4 on every legal input
(``tests/evaluation/test_differential.py``). Areas of results
(:func:`lvisnb.evaluation.result_validation.result_areas`): ``bbox`` uses the
box area ``w * h`` (the mask area for mask-only results, as ``LVISResults``); ``segm`` uses
the *mask* area by default, as detectron2 (which drops boxes before ``LVISEval`` for segm),
or with ``segm_area="box"`` the box's, as raw ``LVISEval`` on records that carry a box.

Beside them, after Dave et al. 2021, "Evaluating Large-Vocabulary Object Detectors: The Devil
is in the Details" (and their code, ``large-vocab-devil``), with ``fixed=True``:

- **AP-fixed** (``APfixed``, ``APfixed_r/c/f``): no per-image limit; instead the
  ``dets_per_class`` (10,000) highest-scored detections of each category over the whole
  results are kept (ties: input order). Then the standard LVIS per-category AP (federated
  matching, mean over IoU 0.50:0.05:0.95 and 101 recall points, area "all"), averaged over
  the K categories that have GT: ``APfixed = (1 / K) sum_k AP_k`` (``APfixed_r/c/f``: over a
  frequency group). A category's AP no longer depends on other categories' scores.
- **AP-pool** (``APpool``, ``APpool_r/c/f``): the same detections, matched per image and
  category exactly as above, but precision/recall are computed once over the *pooled*
  detections of all categories of a pool (all; rare; common; frequent) ranked by score across
  categories: at IoU threshold t, with detections sorted by descending score,
  ``P_t(n) = TP_t(n) / (TP_t(n) + FP_t(n))`` and ``R_t(n) = TP_t(n) / G`` where G counts every
  GT instance of the pool's categories and ignored detections (unmatched on not-exhaustive
  categories, or on unverified categories) count in neither; ``P_t`` is made monotone and read
  at the 101 recall points r in {0, 0.01, ..., 1} (0 beyond the last recall) as in COCO, and
  ``APpool = mean_{t, r} P_t(r)``. Ties in score keep (image, category) order, as their
  ``LVISPooledEval``. It rewards detectors whose scores are calibrated across categories.

With ``bootstrap=B`` (fast backend), AP, APr, APc and APf of each IoU type also get 95%
percentile intervals from B image resamples that reuse the evaluation's matching
(:mod:`lvisnb.evaluation.bootstrap`); :func:`lvisnb.evaluation.comparison.compare` gives the paired
interval of the difference of two results files on the same ground truth. Text reports and
saved files: :mod:`lvisnb.evaluation.report`; the command line: ``lvisnb evaluate``
(:mod:`lvisnb.cli`).

Results are validated first: a results file is read column-wise by the kit's C reader while
the ground truth loads (:mod:`lvisnb.evaluation.result_columns`), and any file it does not take, or
whose columns fail a check, goes through
:func:`lvisnb.evaluation.result_records.read_detections`, which
converts every legal form and names the offending record and field. More than 300
detections on an image are cut to the top 300 by score with a warning, as ``LVISResults`` does.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lvisnb.annotations.categories import FREQUENCY_GROUPS, lvis_version_of, other_version_ids
from lvisnb.annotations.json_file import gc_paused
from lvisnb.evaluation import bootstrap as boot
from lvisnb.evaluation import result_columns
from lvisnb.evaluation.caps import cap_per_class, cap_per_image
from lvisnb.evaluation.fast_backend import FastBackend, FastRunner
from lvisnb.evaluation.ground_truth import GroundTruth, load_ground_truth
from lvisnb.evaluation.metrics import MAX_DETS_PER_IMAGE, per_category_ap
from lvisnb.evaluation.outcome import (
    BACKENDS,
    DETS_PER_CLASS,
    IOU_TYPES,
    SEGM_AREA_RULES,
    SEGM_AREAS,
    Evaluation,
)
from lvisnb.evaluation.result_records import read_detections
from lvisnb.evaluation.result_validation import result_areas
from lvisnb.evaluation.results import Detections, RLEColumns

# ----------------------------------------------------------------------------- evaluate


def _check_options(iou_types, backend, max_dets, dets_per_class, segm_area, bootstrap=0) -> tuple:
    if isinstance(iou_types, str):
        iou_types = (iou_types,)
    iou_types = tuple(dict.fromkeys(iou_types))
    unknown = [t for t in iou_types if t not in IOU_TYPES]
    if unknown or not iou_types:
        raise ValueError(f"iou_types must be taken from {IOU_TYPES}, got {iou_types}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if segm_area not in SEGM_AREAS:
        raise ValueError(f"segm_area must be one of {SEGM_AREAS}, got {segm_area!r}")
    if max_dets < 1 or dets_per_class < 1:
        raise ValueError("max_dets_per_image and dets_per_class must be at least 1")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int | np.integer) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a whole number of replicates >= 0, got {bootstrap!r}")
    if bootstrap and backend != "fast":
        raise ValueError(
            'bootstrap needs backend="fast": it resamples the matching that hotcoco\'s engine '
            "reports per detection (the intervals do not depend on the backend otherwise)"
        )
    return iou_types


def evaluate(
    gt,
    results,
    iou_types=IOU_TYPES,
    backend: str = "fast",
    *,
    fixed: bool = True,
    max_dets_per_image: int = MAX_DETS_PER_IMAGE,
    dets_per_class: int = DETS_PER_CLASS,
    segm_area: str = "mask",
    train_ann: str | os.PathLike | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> Evaluation:
    """Evaluate LVIS results against an LVIS ground truth.

    ``gt``: path, LVIS dict, ``lvis.LVIS`` or :class:`GroundTruth` (load once with
    :func:`load_ground_truth` to evaluate several results). ``results``: path to an LVIS
    results JSON or a list of records (never modified). ``iou_types``: "bbox" and/or "segm".
    ``backend``: "fast" (hotcoco) or "lvis" (official ``LVISEval``), same numbers.
    ``fixed``: also compute AP-fixed and AP-pool (``dets_per_class`` per category, no
    per-image limit), which costs a second evaluation per IoU type. ``segm_area``: "mask"
    (default, as detectron2) or "box" (raw ``LVISEval`` on records with boxes): where a
    result's area comes from for segm, see
    :func:`lvisnb.evaluation.result_validation.result_areas`. Results and GT instances of
    area 0 take no part, as in ``LVISEval``. ``train_ann``: the train annotation file whose
    image counts ``per_category["train_image_count"]`` reports (default: LVIS v1 train's,
    embedded, for a whole LVIS category set; else unknown). ``bootstrap``: B > 0 adds
    ``Evaluation.intervals``, 95% percentile intervals of AP, APr, APc, APf per IoU type from
    B resamples of the images (multiplicities drawn with ``seed``, the same for every IoU
    type and for every results file of the same ground truth), reusing the standard
    evaluation's matching (:mod:`lvisnb.evaluation.bootstrap`); fast backend only (``ValueError``
    with ``backend="lvis"``).

    Raises ``ValueError`` naming the first invalid record; warns when an image has more than
    ``max_dets_per_image`` detections (the lowest-scored are dropped, as ``LVISResults``).
    """
    iou_types = _check_options(
        iou_types, backend, max_dets_per_image, dets_per_class, segm_area, bootstrap
    )
    options = _Options(
        iou_types,
        backend,
        fixed,
        max_dets_per_image,
        dets_per_class,
        segm_area,
        train_ann,
        int(bootstrap),
        int(seed),
    )
    with gc_paused():
        return _evaluate(gt, results, options)


def _positive_rate(
    truth: GroundTruth, positives: np.ndarray, rows: np.ndarray, category_ids: np.ndarray
) -> float:
    """Share of (image row, category id) pairs among the pair keys ``positives``."""
    cols = np.searchsorted(truth.category_ids, category_ids).clip(0, truth.num_categories - 1)
    known = truth.category_ids[cols] == category_ids
    keys = rows[known] * truth.num_categories + cols[known]
    return float(np.isin(keys, positives).sum() / max(len(rows), 1))


def _warn_if_other_version_ids(truth: GroundTruth, det: Detections, source: str) -> None:
    """Warn when the results read far better with the other LVIS version's category ids.

    A results file carries no version, and v1 and v0.5 share most ids (1,203 of v0.5's 1,230
    exist in v1, 83 with the same synset), so v1 results against v0.5 ground truth are legal
    and score near zero. On a whole LVIS category set, the best-scored tenth of the detections
    (at least 100, at most 20,000) is looked up twice: as given, and with each id read as the
    other version's and mapped to this version by synset. When the second finds annotated
    categories on their images at least twice as often and in at least a fifth of the cases,
    the ids are probably the other version's.
    """
    version = lvis_version_of(truth.dataset["categories"])
    if version is None or len(det) == 0:
        return
    count = min(max(len(det) // 10, min(len(det), 100)), 20_000)
    top = np.argpartition(-det.score, count - 1)[:count]  # the best-scored, in O(N)
    rows, ids = det.image_row[top], det.category_id[top]
    other, there, here = other_version_ids(version)
    position = np.searchsorted(there, ids).clip(0, len(there) - 1)
    mapped = np.where(there[position] == ids, here[position], -1)
    positives = np.unique(truth.evaluated_keys())  # once, for both readings
    as_given = _positive_rate(truth, positives, rows, ids)
    as_other = _positive_rate(truth, positives, rows, mapped)
    if as_other >= 0.2 and as_other >= 2 * as_given:
        warnings.warn(
            f"{source}: the category ids look like LVIS {other}'s, but the ground truth is LVIS "
            f"{version}: read as {other} ids (joined by synset), {as_other:.0%} of the "
            f"best-scored detections name a category annotated on their image, as given "
            f"{as_given:.0%}. Map the ids to {version} before evaluating",
            UserWarning,
            stacklevel=4,
        )


@dataclass(frozen=True)
class _Options:
    iou_types: tuple[str, ...]
    backend: str
    fixed: bool
    max_dets_per_image: int
    dets_per_class: int
    segm_area: str
    train_ann: str | os.PathLike | None
    bootstrap: int = 0
    seed: int = 0


@dataclass
class _Prepared:
    """Validated results and what both caps keep of them (indices into ``det``)."""

    truth: GroundTruth
    det: Detections
    source: str
    standard: np.ndarray  # kept by the per-image cap (the standard protocol)
    by_class: np.ndarray  # kept by the per-class cap (AP-fixed / AP-pool)
    verified: np.ndarray  # bool (N,): on a verified (image, category) pair
    areas: dict[str, np.ndarray]  # per IoU type, see result_areas
    caps: dict  # what the caps dropped


def _evaluate(gt, results, options: _Options):
    seconds = {}
    start = time.perf_counter()
    need_boxes = "bbox" in options.iou_types or options.segm_area == "box"
    need_masks = "segm" in options.iou_types
    pending = result_columns.start_reading(results, boxes=need_boxes, masks=need_masks)
    try:
        truth = load_ground_truth(gt, train_ann=options.train_ann)
    except BaseException:
        if pending is not None:  # no columns needed: stop reading, free what was read
            pending.cancel()
        raise
    columns = pending.result() if pending is not None else None
    seconds["load"] = time.perf_counter() - start
    start = time.perf_counter()
    det = _detections(truth, columns, need_boxes, need_masks)
    del columns  # det holds what it needs (see _runner: masks never evaluated are freed)
    if det is None:  # not read column-wise, or a check failed: the general path names it
        det = read_detections(
            results,
            truth.image_ids,
            truth.image_sizes,
            truth.category_ids,
            need_boxes=need_boxes,
            need_masks=need_masks,
        )
    source = det.source
    prepared = _prepare(truth, det, source, options)
    seconds["validate"] = time.perf_counter() - start
    start = time.perf_counter()
    runner = _runner(prepared, options)
    seconds["prepare"] = time.perf_counter() - start
    metrics, precision, table = _run(runner, prepared, options, seconds)
    intervals, replicates, bias = _bootstrap(runner, prepared.truth, metrics, options, seconds)
    info = _info(prepared, options, seconds)
    if bias is not None:
        info["bootstrap"]["bias"] = bias
    return Evaluation(metrics, table, precision, info, intervals, replicates)


def _detections(truth: GroundTruth, columns, need_boxes: bool, need_masks: bool):
    """The results read column-wise (:mod:`lvisnb.evaluation.result_columns`) as validated
    ``Detections``, or ``None`` when they were not or a check failed."""
    if columns is None:
        return None
    return result_columns.to_detections(
        columns, truth.image_ids, truth.image_sizes, truth.category_ids, need_boxes, need_masks
    )


def _bootstrap(runner, truth: GroundTruth, metrics: dict, options: _Options, seconds: dict):
    """``(intervals, replicates, bias)`` from the matches the runner kept (bias: mean of the
    replicates minus the estimate), or ``(None, None, None)``."""
    if not options.bootstrap:
        return None, None, None
    weights = boot.image_weights(len(truth.image_ids), options.bootstrap, options.seed)
    intervals, replicates, bias = {}, {}, {}
    for iou_type in options.iou_types:
        start = time.perf_counter()
        matches = runner.matches.pop(iou_type)
        replicates[iou_type] = boot.replicate_metrics(matches, weights, truth.frequency)
        intervals[iou_type], bias[iou_type] = {}, {}
        for name, values in replicates[iou_type].items():
            estimate, defined = metrics[iou_type][name], values[values > -1]
            known = estimate > -1 and defined.size
            intervals[iou_type][name] = boot.percentile_interval(values) if known else None
            bias[iou_type][name] = float(defined.mean() - estimate) if known else None
        seconds[f"{iou_type}_bootstrap"] = time.perf_counter() - start
    return intervals, replicates, bias


def _prepare(truth: GroundTruth, det: Detections, source: str, options: _Options) -> _Prepared:
    """Apply both caps (warning when the per-image one drops results), find the results on
    verified pairs and their areas."""
    max_dets = options.max_dets_per_image
    standard, image_cap = cap_per_image(det, max_dets)
    if image_cap["images_over_limit"]:
        warnings.warn(
            f"{source}: {image_cap['images_over_limit']} image(s) have more than {max_dets} "
            f"detections (up to {image_cap['most_on_one_image']}); kept the {max_dets} "
            "highest-scored per image, as lvis.LVISResults does",
            UserWarning,
            stacklevel=4,  # the caller of evaluate()
        )
    by_class, class_cap = (
        cap_per_class(det, options.dets_per_class) if options.fixed else (standard[:0], {})
    )
    _warn_if_other_version_ids(truth, det, source)
    keys = det.pair_keys(truth.num_categories)
    position = np.searchsorted(truth.verified, keys).clip(0, max(len(truth.verified) - 1, 0))
    verified = truth.verified[position] == keys if len(truth.verified) else keys < 0
    # kept by either cap, on verified pairs (a mask, not np.union1d: numpy >= 2.3's hash-based
    # unique takes ~1 us per element on these near-consecutive indices)
    candidate = np.zeros(len(det), dtype=bool)
    candidate[standard] = True
    candidate[by_class] = True
    candidate &= verified
    areas = result_areas(det, candidate, options.iou_types, options.segm_area)
    caps = {"image": image_cap, "class": class_cap, "candidate": candidate}
    return _Prepared(truth, det, source, standard, by_class, verified, areas, caps)


def _runner(prepared: _Prepared, options: _Options):
    """The backend that options.backend names, fed the prepared results."""
    if options.backend == "fast":
        candidate = prepared.caps["candidate"]
        if isinstance(prepared.det.segmentation, RLEColumns):  # free the masks never evaluated
            kept = prepared.det.segmentation.subset(np.flatnonzero(candidate))
            prepared.det.segmentation = kept
        evaluable = {t: candidate & (prepared.areas[t] > 0) for t in options.iou_types}
        backend = FastBackend(prepared.truth, prepared.det, evaluable, prepared.areas)
        return FastRunner(backend, keep_matches=options.bootstrap > 0)
    from lvisnb.evaluation.lvis_backend import LvisBackend  # imports lvis, only when asked for

    return LvisBackend(prepared.truth, prepared.det, options.segm_area)


def _run(runner, prepared: _Prepared, options: _Options, seconds: dict) -> tuple:
    """Metrics, standard precision arrays and the per-category table, per IoU type."""
    truth = prepared.truth
    metrics, precision, table = {}, {}, _category_table(truth)
    for iou_type in options.iou_types:
        start = time.perf_counter()
        acc, metrics[iou_type] = runner.standard(
            iou_type, prepared.standard, options.max_dets_per_image
        )
        precision[iou_type] = acc.precision
        table[f"AP_{iou_type}"] = per_category_ap(acc.precision)
        seconds[iou_type] = time.perf_counter() - start
        if options.fixed:
            start = time.perf_counter()
            acc_fixed, extra = runner.fixed(iou_type, prepared.by_class)
            metrics[iou_type].update(extra)
            table[f"APfixed_{iou_type}"] = per_category_ap(acc_fixed.precision)
            seconds[f"{iou_type}_fixed"] = time.perf_counter() - start
    table["val_instances"] = np.bincount(
        truth.ann_col[truth.ann_evaluated], minlength=truth.num_categories
    )
    return metrics, precision, table


def _info(prepared: _Prepared, options: _Options, seconds: dict) -> dict:
    """``Evaluation.info``: sources, options, what the caps and area rules left out, timings."""
    image_cap, standard = prepared.caps["image"], prepared.standard
    verified = prepared.verified[standard]
    info = {
        "gt": prepared.truth.source,
        "results": prepared.source,
        "backend": options.backend,
        "iou_types": list(options.iou_types),
        "num_detections": len(prepared.det),
        "max_dets_per_image": options.max_dets_per_image,
        "images_over_limit": image_cap["images_over_limit"],
        "dropped_by_image_limit": image_cap["dropped"],
        "num_verified_detections": int(verified.sum()),
        "zero_area_detections": {
            t: int((verified & ~(prepared.areas[t][standard] > 0)).sum()) for t in options.iou_types
        },
        "zero_area_gt": int((~prepared.truth.ann_evaluated).sum()),
        "segm_area": options.segm_area,
        "segm_area_rule": SEGM_AREA_RULES[options.segm_area],
        "train_ann": prepared.truth.train_ann,
        "train_count_source": prepared.truth.train_count_source,
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
    }
    if options.bootstrap:
        info["bootstrap"] = {
            "replicates": options.bootstrap,
            "seed": options.seed,
            "confidence": boot.CONFIDENCE,
            "method": "percentile; images resampled with replacement, matching reused",
            "metrics": list(boot.METRICS),
        }
    if options.fixed:
        info |= {"dets_per_class": options.dets_per_class} | {
            f"{k}_by_class_limit" if k == "dropped" else k: v
            for k, v in prepared.caps["class"].items()
        }
    return info


def _category_table(truth: GroundTruth) -> pd.DataFrame:
    counts = truth.train_image_count
    return pd.DataFrame(
        {
            "id": truth.category_ids,
            "name": truth.names,
            "frequency": pd.Categorical(truth.frequency, categories=list(FREQUENCY_GROUPS)),
            "train_image_count": pd.array(np.where(counts >= 0, counts, None), dtype="Int64"),
            "val_images": truth.image_count,
        }
    )
