"""What an evaluation returns (:class:`Evaluation`) and the settings it is made with.

Kept apart from :mod:`lvisnb.evaluation.evaluator`, which computes it, so that reports, summaries
and comparisons read an evaluation without importing the evaluation engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

IOU_TYPES = ("bbox", "segm")
BACKENDS = ("fast", "lvis")
DETS_PER_CLASS = 10_000  # AP-fixed / AP-pool per-category budget (Dave et al. 2021)
SEGM_AREAS = ("mask", "box")  # what a result's area is for segm: see result_areas
SEGM_AREA_RULES = {
    "mask": "segm size ranges (APs/APm/APl): result areas from the masks, as detectron2 "
    "(raw LVISEval takes w*h of a record's bbox: --segm-area box)",
    "box": "segm size ranges (APs/APm/APl): result areas from the boxes' w*h when the results "
    "have boxes, as raw LVISEval",
}


@dataclass
class Evaluation:
    """What :func:`lvisnb.evaluation.evaluator.evaluate` returns.

    - ``metrics``: ``{iou_type: {name: value}}`` with :func:`lvisnb.evaluation.metrics.metric_names`
      (LVIS convention: -1 where undefined, e.g. APr without rare GT).
    - ``per_category``: one row per category (LVIS id order): ``id``, ``name``, ``frequency``,
      ``train_image_count`` (training images of the category, <NA> where unknown; what they
      count: ``info["train_count_source"]``, see
      :func:`lvisnb.evaluation.ground_truth.train_image_counts`), ``val_images`` (images of the
      evaluated file annotated with it), ``AP_<iou>`` (standard protocol, NaN without GT),
      ``APfixed_<iou>`` (with ``fixed``), ``val_instances`` (GT instances of the evaluated file that
      take part, area > 0).
    - ``precision``: ``{iou_type: [T, R, K, A]}`` of the standard protocol
      (:class:`~lvisnb.evaluation.metrics.Accumulated`).
    - ``info``: sources, backend, detection counts, the caps applied, seconds per stage;
      with a bootstrap, ``info["bootstrap"]``: replicates, seed, confidence, method and
      ``bias`` (``{iou_type: {metric: mean of the replicates - estimate}}``).
    - ``intervals``: with ``bootstrap=B``, ``{iou_type: {metric: (low, high)}}`` for AP, APr,
      APc, APf (95% percentile intervals; ``None`` for a metric undefined, -1), else ``None``.
    - ``replicates``: with a bootstrap, ``{iou_type: {metric: float64 (B,)}}``, the metric in
      each image resample (-1 where undefined), for paired comparisons; else ``None``.
    """

    metrics: dict[str, dict[str, float]]
    per_category: pd.DataFrame
    precision: dict[str, np.ndarray] = field(repr=False)
    info: dict
    intervals: dict[str, dict[str, tuple[float, float] | None]] | None = None
    replicates: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    def summary(self) -> pd.DataFrame:
        """Metrics as a table: one row per metric, one column per IoU type."""
        return pd.DataFrame(self.metrics)

    def to_dict(self) -> dict:
        """JSON-ready: ``info``, ``metrics``, ``intervals`` (``[low, high]`` lists, only with a
        bootstrap) and ``per_category`` (records, NaN as null)."""
        table = self.per_category.astype(object).where(self.per_category.notna(), None)
        out = {"info": self.info, "metrics": self.metrics}
        if self.intervals is not None:
            out["intervals"] = {
                iou_type: {name: list(pair) if pair else None for name, pair in values.items()}
                for iou_type, values in self.intervals.items()
            }
        return out | {"per_category": table.to_dict(orient="records")}
