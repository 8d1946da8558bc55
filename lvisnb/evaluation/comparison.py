"""Two results files on one ground truth: :func:`compare` (B - A with its paired-bootstrap
interval), and :func:`best_and_worst` categories of one evaluation per frequency group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lvisnb.annotations.categories import FREQUENCY_GROUPS
from lvisnb.evaluation import bootstrap as boot
from lvisnb.evaluation.evaluator import evaluate
from lvisnb.evaluation.ground_truth import load_ground_truth
from lvisnb.evaluation.outcome import IOU_TYPES, Evaluation


@dataclass
class Comparison:
    """What :func:`compare` returns.

    - ``table``: one row per IoU type and metric (AP, APr, APc, APf): ``iou_type``,
      ``metric``, ``A``, ``B`` (the plain metrics of each results file), ``difference``
      (B - A), ``low``, ``high`` (its paired-bootstrap percentile interval); NaN where the
      metric is undefined (no GT of the group).
    - ``a``, ``b``: the two :class:`Evaluation` s (with their own intervals).
    - ``info``: the sources, replicates, seed and confidence.
    """

    table: pd.DataFrame
    a: Evaluation = field(repr=False)
    b: Evaluation = field(repr=False)
    info: dict

    def to_dict(self) -> dict:
        """JSON-ready: ``info`` and ``table`` (records, NaN as null)."""
        table = self.table.astype(object).where(self.table.notna(), None)
        return {"info": self.info, "table": table.to_dict(orient="records")}


def compare(
    gt,
    results_a,
    results_b,
    iou_types=IOU_TYPES,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    **options,
) -> Comparison:
    """Paired comparison of two results on the same ground truth: B - A and its interval.

    Both results are evaluated (:func:`evaluate`, fast backend, ``options`` passed on; AP-fixed
    off unless ``fixed=True``) with ``bootstrap`` replicates drawn with the same ``seed``: the
    same image resamples are applied to both, so replicate b gives ``B_b - A_b`` and the
    interval is the 95% percentile interval of those differences (the paired bootstrap, as
    hotcoco's ``compare``, but with full resamples; see :mod:`lvisnb.evaluation.bootstrap`). The
    ground truth is loaded once.
    """
    if not bootstrap:
        raise ValueError("compare needs bootstrap >= 1 replicates")
    options.setdefault("fixed", False)
    truth = load_ground_truth(gt, train_ann=options.get("train_ann"))
    a, b = (
        evaluate(truth, results, iou_types, bootstrap=bootstrap, seed=seed, **options)
        for results in (results_a, results_b)
    )
    rows = []
    for iou_type in a.metrics:
        for name in boot.METRICS:
            value_a, value_b = a.metrics[iou_type][name], b.metrics[iou_type][name]
            defined = value_a > -1 and value_b > -1
            interval = boot.difference_interval(
                a.replicates[iou_type][name], b.replicates[iou_type][name]
            )
            low, high = interval if defined and interval else (np.nan, np.nan)
            rows.append(
                (
                    iou_type,
                    name,
                    value_a,
                    value_b,
                    value_b - value_a if defined else np.nan,
                    low,
                    high,
                )
            )
    columns = ["iou_type", "metric", "A", "B", "difference", "low", "high"]
    info = {"gt": truth.source, "a": a.info["results"], "b": b.info["results"]}
    info |= {k: v for k, v in a.info["bootstrap"].items() if k != "metrics"}
    return Comparison(pd.DataFrame(rows, columns=columns), a, b, info)


def best_and_worst(per_category: pd.DataFrame, column: str = "AP_segm", n: int = 3) -> pd.DataFrame:
    """The ``n`` best and ``n`` worst categories by ``column`` within each frequency group.

    ``per_category``: ``lvisnb.evaluation.evaluator.evaluate(...).per_category``; categories without
    val ground truth (NaN) are skipped. Rows sorted by group (r, c, f), then best before worst.
    """
    frame = per_category.dropna(subset=[column])
    parts = []
    for group in FREQUENCY_GROUPS:
        members = frame[frame["frequency"].astype(str) == group].sort_values(
            column, ascending=False
        )
        best = members.head(n).assign(rank="best")
        worst = members.tail(min(n, max(len(members) - n, 0))).assign(rank="worst")
        parts.extend([best, worst])
    columns = ["frequency", "rank", "name", "id", "train_image_count", "val_instances", column]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts)[columns].reset_index(drop=True)
