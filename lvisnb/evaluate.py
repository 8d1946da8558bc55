"""LVIS evaluation: the official metrics from two interchangeable backends, AP-fixed and AP-pool.

:func:`evaluate` scores LVIS results (a results file or a list of records, see
:mod:`lvisnb.detections`) against an LVIS ground truth, for ``bbox`` and/or ``segm``:

- ``backend="fast"``: faster-coco-eval's C++ matcher in LVIS mode
  (``COCOeval_faster(..., lvis_style=True)``), fed detections that we prepare exactly as
  ``lvis.LVISResults`` would (per-image limit, result areas, order), on packed (image,
  category) pairs; see :mod:`lvisnb.fast_eval` for what differs from LVIS and how it is fixed.
- ``backend="lvis"``: the official ``lvis.LVISEval`` (numpy-2-safe, :mod:`lvisnb.lvis_api`),
  the reference.

Both give, per IoU type, the LVIS metrics ``AP, AP50, AP75, APs, APm, APl, APr, APc, APf``,
``AR@300, ARs@300, ARm@300, ARl@300`` (the official protocol: at most 300 detections per image,
federated filtering, area ranges small < 32^2 <= medium < 96^2 <= large px^2), and agree to
1e-4 (``tests/test_evaluate.py``). Areas of results: ``bbox`` uses the box area ``w * h``
(the mask area for mask-only results, as ``LVISResults``); ``segm`` uses the *mask* area,
because boxes are left out of segm evaluation (``LVISResults`` would otherwise take the area
from the box; detectron2 drops boxes for the same reason).

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

Results are validated first (:func:`lvisnb.detections.validate_detections`); more than 300
detections on an image are cut to the top 300 by score with a warning, as ``LVISResults`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lvisnb.detections import (
    Detections,
    cap_per_class,
    cap_per_image,
    mask_areas,
    read_results,
    rle_dicts,
    validate_detections,
)
from lvisnb.fast_eval import FastBackend, rows_of
from lvisnb.ground_truth import FREQUENCY_GROUPS, GroundTruth, load_ground_truth

IOU_TYPES = ("bbox", "segm")
BACKENDS = ("fast", "lvis")
MAX_DETS_PER_IMAGE = 300  # LVIS's official per-image limit
DETS_PER_CLASS = 10_000  # AP-fixed / AP-pool per-category budget (Dave et al. 2021)
AREA_LABELS = ("all", "small", "medium", "large")  # the A axis of precision/recall arrays


def metric_names(max_dets: int = MAX_DETS_PER_IMAGE, fixed: bool = True) -> tuple[str, ...]:
    """Metric names reported per IoU type, in order (``AR@300`` etc. carry ``max_dets``)."""
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
    names += tuple(f"AR{a}@{max_dets}" for a in ("", "s", "m", "l"))
    if fixed:
        names += ("APfixed", "APfixed_r", "APfixed_c", "APfixed_f")
        names += ("APpool", "APpool_r", "APpool_c", "APpool_f")
    return names


# ----------------------------------------------------------------------------- accumulation


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


def interpolated_precision(tps: np.ndarray, fps: np.ndarray, num_gt: int) -> np.ndarray:
    """[T, R] precision at ``RECALL_POINTS`` from score-sorted TP/FP flags [T, N].

    ``P(n) = TP(n) / (TP(n) + FP(n) + eps)`` made monotone (``P(n) = max_{m >= n} P(m)``), read
    at the first n with ``TP(n) / num_gt >= r``, 0 where recall never reaches r (COCO/LVIS).
    """
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


def _pool_columns(truth: GroundTruth) -> dict[str, np.ndarray]:
    every = np.arange(truth.num_categories)
    return {"all": every} | {g: every[truth.frequency == g] for g in FREQUENCY_GROUPS}


def _pool_metrics(values: dict[str, float]) -> dict[str, float]:
    return {
        "APpool" if pool == "all" else f"APpool_{pool}": value for pool, value in values.items()
    }


# ----------------------------------------------------------------------------- backends


class _FastRunner:
    """:class:`lvisnb.fast_eval.FastBackend`, summarised by :func:`summarize`."""

    def __init__(self, backend: FastBackend):
        self.backend = backend
        self.frequency = backend.truth.frequency

    def standard(self, iou_type: str, indices: np.ndarray, max_dets: int):
        acc = Accumulated(*self.backend.standard(iou_type, indices, max_dets))
        return acc, summarize(acc, self.frequency, max_dets)

    def fixed(self, iou_type: str, indices: np.ndarray):
        precision, recall, pooled = self.backend.fixed(iou_type, indices)
        acc = Accumulated(precision, recall)
        metrics = summarize(acc, self.frequency, 0)
        fixed = {"APfixed": metrics["AP"]}
        fixed |= {f"APfixed_{g}": metrics[f"AP{g}"] for g in FREQUENCY_GROUPS}
        return acc, fixed | _pool_metrics(pooled)


class _LvisBackend:
    """The official ``lvis`` API: ``LVISResults`` + ``LVISEval`` on fresh records."""

    def __init__(self, truth: GroundTruth, det: Detections):
        from lvisnb.lvis_api import LVISFromDict

        self.truth, self.det = truth, det
        ds = dict(truth.dataset)
        ds["annotations"] = [dict(a) for a in ds["annotations"]]  # LVISEval rewrites masks
        self.lvis_gt = LVISFromDict(ds, truth.source)

    def _records(self, iou_type: str, indices: np.ndarray) -> list[dict]:
        """Records for ``LVISResults``: boxes for bbox (when the results have them), masks
        only for segm, so that ``LVISResults`` takes the area from the right one."""
        det = self.det
        columns = {
            "image_id": det.image_id[indices].tolist(),
            "category_id": det.category_id[indices].tolist(),
            "score": det.score[indices].tolist(),
        }
        if iou_type == "bbox" and det.bbox is not None:
            columns["bbox"] = det.bbox[indices].tolist()
        else:
            columns["segmentation"] = rle_dicts(det, indices)
        return rows_of(columns)

    def _run(self, iou_type: str, indices: np.ndarray, max_dets: int):
        import lvis

        from lvisnb.lvis_api import LVISEval

        logger = logging.getLogger("lvis.results")  # "Assuming user provided the results in
        level = logger.level  # correct format": they were validated
        logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():  # LVISResults calls the deprecated logger.warn
                warnings.simplefilter("ignore", DeprecationWarning)
                records = self._records(iou_type, indices)
                results = lvis.LVISResults(self.lvis_gt, records, max_dets)
        finally:
            logger.setLevel(level)
        ev = LVISEval(self.lvis_gt, results, iou_type)
        if max_dets > 0:
            ev.params.max_dets = max_dets
        ev.run()
        return ev

    def standard(self, iou_type: str, indices: np.ndarray, max_dets: int):
        ev = self._run(iou_type, indices, max_dets)
        acc = Accumulated(ev.eval["precision"], ev.eval["recall"])
        return acc, {name: float(value) for name, value in ev.get_results().items()}

    def fixed(self, iou_type: str, indices: np.ndarray):
        ev = self._run(iou_type, indices, -1)
        official = ev.get_results()
        fixed = {"APfixed": float(official["AP"])}
        fixed |= {f"APfixed_{g}": float(official[f"AP{g}"]) for g in FREQUENCY_GROUPS}
        pooled = {
            pool: pooled_ap_from_lvis_eval(ev, columns)
            for pool, columns in _pool_columns(self.truth).items()
        }
        return Accumulated(ev.eval["precision"], ev.eval["recall"]), fixed | _pool_metrics(pooled)


def pooled_ap_from_lvis_eval(ev, columns: np.ndarray) -> float:
    """AP-pool of categories ``columns`` from an evaluated ``lvis.LVISEval`` (area "all").

    The per-(image, category) results ``ev.eval_imgs`` are concatenated image by image, then
    category by category (as ``LVISPooledEval`` of Dave et al.), sorted by descending score
    (stable) and turned into one precision curve per IoU threshold with
    :func:`interpolated_precision`; -1 when the pool has no GT.
    """
    num_images = len(ev.params.img_ids)
    num_areas = len(ev.params.area_rng)
    per_image = [
        ev.eval_imgs[c * num_areas * num_images + i]
        for i in range(num_images)
        for c in columns.tolist()
    ]
    per_image = [e for e in per_image if e is not None]
    if not per_image:
        return -1.0
    num_gt = int(sum(np.count_nonzero(e["gt_ignore"] == 0) for e in per_image))
    if num_gt == 0:
        return -1.0
    scores = np.concatenate([np.asarray(e["dt_scores"], dtype=np.float64) for e in per_image])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e["dt_matches"] for e in per_image], axis=1)[:, order] > 0
    ignored = np.concatenate([e["dt_ignore"] for e in per_image], axis=1)[:, order] > 0
    precision = interpolated_precision(matched & ~ignored, ~matched & ~ignored, num_gt)
    return float(precision.mean())


# ----------------------------------------------------------------------------- evaluate


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    - ``metrics``: ``{iou_type: {name: value}}`` with :func:`metric_names` (LVIS convention:
      -1 where undefined, e.g. APr without rare GT).
    - ``per_category``: one row per category (LVIS id order): ``id``, ``name``, ``frequency``,
      ``train_image_count`` (the GT file's ``image_count``), ``AP_<iou>`` (standard protocol,
      NaN without GT), ``APfixed_<iou>`` (with ``fixed``), ``val_instances`` (GT instances in
      the evaluated file).
    - ``precision``: ``{iou_type: [T, R, K, A]}`` of the standard protocol (:class:`Accumulated`).
    - ``info``: sources, backend, detection counts, the caps applied, seconds per stage.
    """

    metrics: dict[str, dict[str, float]]
    per_category: pd.DataFrame
    precision: dict[str, np.ndarray] = field(repr=False)
    info: dict

    def summary(self) -> pd.DataFrame:
        """Metrics as a table: one row per metric, one column per IoU type."""
        return pd.DataFrame(self.metrics)

    def to_dict(self) -> dict:
        """JSON-ready: ``info``, ``metrics`` and ``per_category`` (records, NaN as null)."""
        table = self.per_category.astype(object).where(self.per_category.notna(), None)
        return {
            "info": self.info,
            "metrics": self.metrics,
            "per_category": table.to_dict(orient="records"),
        }


def _check_options(iou_types, backend: str, max_dets: int, dets_per_class: int) -> tuple:
    if isinstance(iou_types, str):
        iou_types = (iou_types,)
    iou_types = tuple(dict.fromkeys(iou_types))
    unknown = [t for t in iou_types if t not in IOU_TYPES]
    if unknown or not iou_types:
        raise ValueError(f"iou_types must be taken from {IOU_TYPES}, got {iou_types}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if max_dets < 1 or dets_per_class < 1:
        raise ValueError("max_dets_per_image and dets_per_class must be at least 1")
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
) -> Evaluation:
    """Evaluate LVIS results against an LVIS ground truth.

    ``gt``: path, LVIS dict, ``lvis.LVIS`` or :class:`GroundTruth` (load once with
    :func:`load_ground_truth` to evaluate several results). ``results``: path to an LVIS
    results JSON or a list of records (never modified). ``iou_types``: "bbox" and/or "segm".
    ``backend``: "fast" (faster-coco-eval) or "lvis" (official ``LVISEval``), same numbers.
    ``fixed``: also compute AP-fixed and AP-pool (``dets_per_class`` per category, no
    per-image limit), which costs a second evaluation per IoU type.

    Raises ``ValueError`` naming the first invalid record; warns when an image has more than
    ``max_dets_per_image`` detections (the lowest-scored are dropped, as ``LVISResults``).
    """
    iou_types = _check_options(iou_types, backend, max_dets_per_image, dets_per_class)
    with _gc_paused():
        return _evaluate(gt, results, iou_types, backend, fixed, max_dets_per_image, dets_per_class)


@contextlib.contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector: building millions of records (no cycles)
    otherwise triggers repeated full collections, which cost as much as the work itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _evaluate(gt, results, iou_types, backend, fixed, max_dets_per_image, dets_per_class):
    seconds = {}
    start = time.perf_counter()
    truth = load_ground_truth(gt)
    records, source = read_results(results, boxes="bbox" in iou_types, masks="segm" in iou_types)
    seconds["load"] = time.perf_counter() - start

    start = time.perf_counter()
    det = validate_detections(
        records,
        truth.image_ids,
        truth.image_sizes,
        truth.category_ids,
        need_boxes="bbox" in iou_types,
        need_masks="segm" in iou_types,
        source=source,
    )
    del records
    standard, image_cap = cap_per_image(det, max_dets_per_image)
    if image_cap["images_over_limit"]:
        warnings.warn(
            f"{source}: {image_cap['images_over_limit']} image(s) have more than "
            f"{max_dets_per_image} detections (up to {image_cap['most_on_one_image']}); kept the "
            f"{max_dets_per_image} highest-scored per image, as lvis.LVISResults does",
            UserWarning,
            stacklevel=3,  # the caller of evaluate()
        )
    by_class, class_cap = cap_per_class(det, dets_per_class) if fixed else (standard[:0], {})
    verified = np.isin(truth.pair_keys(det.image_id, det.category_id), truth.verified)
    # sorted indices kept by either cap, on verified pairs (a mask, not np.union1d: numpy >=
    # 2.3's hash-based unique takes ~1 us per element on these near-consecutive indices)
    kept = np.zeros(len(det), dtype=bool)
    kept[standard] = True
    kept[by_class] = True
    evaluated = np.flatnonzero(kept & verified)
    # the runs of evaluated masks are checked here, whatever the backend
    area = mask_areas(det, evaluated) if det.segmentation is not None else None
    seconds["validate"] = time.perf_counter() - start

    start = time.perf_counter()
    if backend == "fast":
        runner = _FastRunner(FastBackend(truth, det, evaluated, area, "bbox" in iou_types))
    else:
        runner = _LvisBackend(truth, det)
    seconds["prepare"] = time.perf_counter() - start

    metrics, precision, table = {}, {}, _category_table(truth)
    for iou_type in iou_types:
        start = time.perf_counter()
        acc, metrics[iou_type] = runner.standard(iou_type, standard, max_dets_per_image)
        precision[iou_type] = acc.precision
        table[f"AP_{iou_type}"] = per_category_ap(acc.precision)
        seconds[iou_type] = time.perf_counter() - start
        if fixed:
            start = time.perf_counter()
            acc_fixed, extra = runner.fixed(iou_type, by_class)
            metrics[iou_type].update(extra)
            table[f"APfixed_{iou_type}"] = per_category_ap(acc_fixed.precision)
            seconds[f"{iou_type}_fixed"] = time.perf_counter() - start
    table["val_instances"] = np.bincount(truth.ann_col, minlength=truth.num_categories)

    info = {
        "gt": truth.source,
        "results": source,
        "backend": backend,
        "iou_types": list(iou_types),
        "num_detections": len(det),
        "max_dets_per_image": max_dets_per_image,
        "images_over_limit": image_cap["images_over_limit"],
        "dropped_by_image_limit": image_cap["dropped"],
        "num_verified_detections": int(verified[standard].sum()),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
    }
    if fixed:
        info |= {"dets_per_class": dets_per_class} | {
            f"{k}_by_class_limit" if k == "dropped" else k: v for k, v in class_cap.items()
        }
    return Evaluation(metrics=metrics, per_category=table, precision=precision, info=info)


def _category_table(truth: GroundTruth) -> pd.DataFrame:
    counts = truth.train_image_count
    return pd.DataFrame(
        {
            "id": truth.category_ids,
            "name": truth.names,
            "frequency": pd.Categorical(truth.frequency, categories=list(FREQUENCY_GROUPS)),
            "train_image_count": pd.array(np.where(counts >= 0, counts, None), dtype="Int64"),
        }
    )


# ----------------------------------------------------------------------------- output, CLI


def save_metrics(path: str | os.PathLike, evaluation: Evaluation) -> Path:
    """Write ``evaluation.to_dict()`` as JSON (``metrics.json``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(evaluation.to_dict(), indent=1, default=_json_default))
    os.replace(tmp, path)
    return path


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_summary(evaluation: Evaluation) -> str:
    """The metrics table as text (4 decimals), with a line on what was evaluated."""
    info = evaluation.info
    head = (
        f"{info['results']} vs {info['gt']} ({info['backend']} backend): "
        f"{info['num_detections']} detections, {info['num_verified_detections']} on verified "
        f"categories within the {info['max_dets_per_image']}-per-image limit"
    )
    table = evaluation.summary().to_string(float_format=lambda v: f"{v:.4f}")
    return f"{head}\n{table}"


def build_evaluate_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``GT RESULTS [--backend] [--iou-types] [--out] ...`` to ``parser``."""
    parser.add_argument("gt", help="LVIS annotation file (e.g. lvis_v1_val.json)")
    parser.add_argument("results", help="LVIS results JSON (list of detections)")
    parser.add_argument("--backend", choices=BACKENDS, default="fast")
    parser.add_argument("--iou-types", nargs="+", choices=IOU_TYPES, default=list(IOU_TYPES))
    parser.add_argument("--out", default="metrics.json", help="where to write the metrics JSON")
    parser.add_argument(
        "--per-category-csv", default=None, help="also write the per-category table"
    )
    parser.add_argument(
        "--no-fixed", action="store_true", help="skip AP-fixed / AP-pool (one evaluation less)"
    )
    parser.set_defaults(func=_cmd_evaluate)
    return parser


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on an ``argparse`` sub-parsers object (``lvisnb evaluate``)."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate LVIS results (bbox/segm AP, APr/c/f, AR, AP-fixed, AP-pool)",
        description=__doc__.split("\n", 1)[0],
    )
    return build_evaluate_parser(parser)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    evaluation = evaluate(
        args.gt,
        args.results,
        iou_types=args.iou_types,
        backend=args.backend,
        fixed=not args.no_fixed,
    )
    print(format_summary(evaluation))
    out = save_metrics(args.out, evaluation)
    print(f"wrote {out}")
    if args.per_category_csv:
        Path(args.per_category_csv).parent.mkdir(parents=True, exist_ok=True)
        evaluation.per_category.to_csv(args.per_category_csv, index=False)
        print(f"wrote {args.per_category_csv}")
    return 0


def main_evaluate(argv: list[str] | None = None) -> int:
    """``lvisnb evaluate`` as a standalone entry point (tests, ``python -m``)."""
    parser = build_evaluate_parser(argparse.ArgumentParser(prog="lvisnb evaluate"))
    args = parser.parse_args(argv)
    return args.func(args)
