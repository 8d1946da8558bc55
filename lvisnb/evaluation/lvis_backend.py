"""The official ``lvis`` API (:class:`lvisnb.annotations.lvis_compat.LVISEval`) as the kit's
reference evaluation backend (``evaluate(..., backend="lvis")``)."""

from __future__ import annotations

import logging
import warnings

import lvis
import numpy as np

from lvisnb.annotations.categories import FREQUENCY_GROUPS
from lvisnb.annotations.lvis_compat import LVISEval, LVISFromDict
from lvisnb.evaluation.ground_truth import GroundTruth, pool_columns
from lvisnb.evaluation.metrics import (
    Accumulated,
    interpolated_precision,
    pool_metrics,
)
from lvisnb.evaluation.results import Detections, rle_dicts


class LvisBackend:
    """The official ``lvis`` API as an evaluation backend: ``LVISResults`` + :class:`LVISEval` on
    fresh records, behind the interface :func:`lvisnb.evaluation.evaluator.evaluate` drives
    (``standard`` and ``fixed`` return (:class:`~lvisnb.evaluation.metrics.Accumulated`,
    metrics))."""

    def __init__(self, truth: GroundTruth, det: Detections, segm_area: str = "mask"):
        self.truth, self.det, self.segm_area = truth, det, segm_area
        ds = dict(truth.dataset)
        ds["annotations"] = [dict(a) for a in ds["annotations"]]  # LVISEval rewrites masks
        self.lvis_gt = LVISFromDict(ds, truth.source)

    def _records(self, iou_type: str, indices: np.ndarray) -> list[dict]:
        """Records for ``LVISResults``: boxes for bbox (when the results have them), masks
        for segm, with their boxes only for ``segm_area="box"``, so that ``LVISResults`` takes
        the area from the right one (see
        :func:`lvisnb.evaluation.result_validation.result_areas`)."""
        det = self.det
        columns = {
            "image_id": det.image_id[indices].tolist(),
            "category_id": det.category_id[indices].tolist(),
            "score": det.score[indices].tolist(),
        }
        with_box = iou_type == "bbox" or self.segm_area == "box"
        if with_box and det.bbox is not None:
            columns["bbox"] = det.bbox[indices].tolist()
        if iou_type == "segm" or det.bbox is None:
            columns["segmentation"] = rle_dicts(det, indices)
        names = tuple(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]

    def _run(self, iou_type: str, indices: np.ndarray, max_dets: int):
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
            for pool, columns in pool_columns(self.truth).items()
        }
        return Accumulated(ev.eval["precision"], ev.eval["recall"]), fixed | pool_metrics(pooled)


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
