"""What LVIS's federated evaluation makes of each prediction on one image, at one IoU.

LVIS never checks an image for all of its categories. For image *i*, category *c* is

- **positive** when *c* is annotated on *i* (its instances are the ground truth),
- **negative** when *c* is in the image's ``neg_category_ids`` (verified absent),
- **unverified** otherwise: nobody looked, and ``LVISEval`` skips the pair entirely.

A prediction of category *c* on image *i* therefore gets one of these verdicts (the labels of
:data:`PREDICTION_STATUSES`):

- ``matched``: *c* positive and the prediction matches a ground-truth instance at IoU >= the
  threshold (a true positive);
- ``false positive``: *c* negative, or *c* positive, exhaustively annotated and the
  prediction matches nothing;
- ``ignored: not exhaustive``: *c* in ``not_exhaustive_category_ids`` and unmatched (it may
  have hit an instance nobody annotated; ``LVISEval`` ignores it even when *c* is also listed
  as negative);
- ``ignored: unverified``: *c* unverified on *i*; the prediction counts neither way;
- ``not evaluated: area 0``: an empty mask (segm) or a box of width or height 0 (bbox; a
  box-less result takes its mask's area): ``LVISEval`` keeps only results of area > 0.

and each ground-truth instance is ``matched``, ``missed`` or, with ``area`` 0, ``not evaluated:
area 0`` (:data:`GT_STATUSES`; such an instance does not make its category positive).

Matching follows ``lvis.LVISEval.evaluate_img`` for the area range "all" exactly: per
category, predictions in decreasing score order (stable for ties) each take the unmatched
instance of highest IoU at or above the threshold (the later instance on equal IoU), IoU of
masks (``iou_type="segm"``) or of boxes (``"bbox"``), no crowd regions. Only the predictions
given are matched: pass those above a score threshold to see the errors at that threshold.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pycocotools.mask as mask_utils

from lvisnb.annotations.categories import FREQUENCY_GROUPS
from lvisnb.annotations.masks import segmentation_rle

MATCHED = "matched"
FALSE_POSITIVE = "false positive"
IGNORED_NOT_EXHAUSTIVE = "ignored: not exhaustive"
IGNORED_UNVERIFIED = "ignored: unverified"
NOT_EVALUATED = "not evaluated: area 0"
MISSED = "missed"
PREDICTION_STATUSES = (
    MATCHED,
    FALSE_POSITIVE,
    IGNORED_NOT_EXHAUSTIVE,
    IGNORED_UNVERIFIED,
    NOT_EVALUATED,
)
GT_STATUSES = (MATCHED, MISSED, NOT_EVALUATED)
COUNTED = (MATCHED, FALSE_POSITIVE)


@dataclass
class ImageVerdict:
    """Federated verdicts for one image.

    - ``predictions`` / ``prediction_status``: the result records given (same order) and one
      of :data:`PREDICTION_STATUSES` each; ``prediction_iou``: IoU with the matched instance
      (0.0 when unmatched), float.
    - ``instances`` / ``instance_status``: the image's ground-truth annotations and ``matched``
      or ``missed`` each.
    - ``positive``, ``negative``, ``not_exhaustive``: LVIS category ids of the image's verified
      categories (annotated; ``neg_category_ids``; ``not_exhaustive_category_ids``).
    """

    image_id: int
    predictions: list[dict]
    prediction_status: list[str]
    prediction_iou: list[float]
    instances: list[dict]
    instance_status: list[str]
    positive: set[int] = field(default_factory=set)
    negative: set[int] = field(default_factory=set)
    not_exhaustive: set[int] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        """How many predictions have each status, and how many instances were missed."""
        counted = Counter(self.prediction_status)
        out = {status: counted.get(status, 0) for status in PREDICTION_STATUSES}
        out[MISSED] = sum(s == MISSED for s in self.instance_status)
        return out


def _regions(records: Sequence[Mapping], iou_type: str, height: int, width: int) -> list:
    """The boxes (XYWH lists) or RLEs of ``records``, as ``pycocotools.mask.iou`` takes them."""
    if iou_type == "bbox":  # a box-less result's box is its mask's (as lvis.LVISResults)
        return [
            list(map(float, r["bbox"]))
            if "bbox" in r
            else mask_utils.toBbox(segmentation_rle(r["segmentation"], height, width)).tolist()
            for r in records
        ]
    return [segmentation_rle(r["segmentation"], height, width) for r in records]


def _areas(records: Sequence[Mapping], iou_type: str, height: int, width: int) -> list[float]:
    """Each prediction's area as ``LVISEval`` filters it (see the module doc)."""
    areas = []
    for r in records:
        if iou_type == "bbox" and "bbox" in r:
            areas.append(float(r["bbox"][2]) * float(r["bbox"][3]))
        else:
            rle = segmentation_rle(r["segmentation"], height, width)
            areas.append(float(mask_utils.area(rle)))
    return areas


def match_category(ious: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy LVIS/COCO matching of D score-sorted predictions to G instances of one category.

    ``ious``: ``(D, G)`` float, rows in decreasing score order. Returns ``(dt_match, gt_match)``:
    the matched instance's column for each row (-1 if none) and the matched row for each
    column (-1 if none). A row takes the still-unmatched column of highest IoU with
    ``IoU >= min(threshold, 1 - 1e-10)``; on equal IoU the later column wins, as in
    ``lvis.LVISEval.evaluate_img``.
    """
    num_dt, num_gt = ious.shape
    dt_match = np.full(num_dt, -1, dtype=np.int64)
    gt_match = np.full(num_gt, -1, dtype=np.int64)
    for row in range(num_dt):
        best_iou, best = min(threshold, 1 - 1e-10), -1
        for column in range(num_gt):
            if gt_match[column] >= 0 or ious[row, column] < best_iou:
                continue
            best_iou, best = ious[row, column], column
        if best >= 0:
            dt_match[row], gt_match[best] = best, row
    return dt_match, gt_match


def image_verdict(
    image: Mapping,
    instances: Sequence[Mapping],
    predictions: Sequence[Mapping],
    iou_threshold: float = 0.5,
    iou_type: str = "segm",
) -> ImageVerdict:
    """Federated verdicts of ``predictions`` on one LVIS ``image`` record (see the module doc).

    ``instances``: the image's ground-truth annotations; ``predictions``: result records of
    this image (``category_id``, ``score``, ``bbox`` XYWH pixels and/or ``segmentation``;
    ``segm`` needs ``segmentation``, ``bbox`` needs ``bbox``).
    """
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type must be 'segm' or 'bbox', got {iou_type!r}")
    height, width = int(image["height"]), int(image["width"])
    evaluated = [float(a["area"]) > 0 for a in instances]
    positive = {int(a["category_id"]) for a, ok in zip(instances, evaluated, strict=True) if ok}
    negative = {int(c) for c in image.get("neg_category_ids", [])}
    not_exhaustive = {int(c) for c in image.get("not_exhaustive_category_ids", [])}
    status = [IGNORED_UNVERIFIED] * len(predictions)
    matched_iou = [0.0] * len(predictions)
    instance_status = [MISSED if ok else NOT_EVALUATED for ok in evaluated]
    rows_of, columns_of = defaultdict(list), defaultdict(list)  # category -> indices
    areas = _areas(predictions, iou_type, height, width)
    for i, (p, area) in enumerate(zip(predictions, areas, strict=True)):
        if area > 0:
            rows_of[int(p["category_id"])].append(i)
        else:
            status[i] = NOT_EVALUATED
    for j, a in enumerate(instances):
        if evaluated[j]:
            columns_of[int(a["category_id"])].append(j)
    for category_id in sorted(set(rows_of) | positive):
        if category_id not in positive and category_id not in negative:
            continue  # unverified: LVISEval never looks at this pair
        rows, columns = rows_of[category_id], columns_of[category_id]
        order = sorted(rows, key=lambda i: -float(predictions[i]["score"]))  # stable
        ious = np.zeros((len(order), len(columns)))
        if order and columns:
            ious = np.asarray(
                mask_utils.iou(
                    _regions([predictions[i] for i in order], iou_type, height, width),
                    _regions([instances[j] for j in columns], iou_type, height, width),
                    [0] * len(columns),
                )
            ).reshape(len(order), len(columns))
        dt_match, gt_match = match_category(ious, iou_threshold)
        for position, row in enumerate(order):
            if dt_match[position] >= 0:
                status[row] = MATCHED
                matched_iou[row] = float(ious[position, dt_match[position]])
            elif category_id in not_exhaustive:  # LVISEval: positive or negative alike
                status[row] = IGNORED_NOT_EXHAUSTIVE
            else:
                status[row] = FALSE_POSITIVE
        for position, column in enumerate(columns):
            if gt_match[position] >= 0:
                instance_status[column] = MATCHED
    return ImageVerdict(
        image_id=int(image["id"]),
        predictions=list(predictions),
        prediction_status=status,
        prediction_iou=matched_iou,
        instances=list(instances),
        instance_status=instance_status,
        positive=positive,
        negative=negative,
        not_exhaustive=not_exhaustive,
    )


def verdict_table(verdicts: Sequence[ImageVerdict], frequency: Mapping[int, str]):
    """pandas DataFrame, one row per frequency group ("r", "c", "f") and a "total" row: how
    many predictions got each verdict and how many instances were missed, over ``verdicts``."""
    counted: Counter[tuple[str, str]] = Counter()
    for verdict in verdicts:
        for record, status in zip(verdict.predictions, verdict.prediction_status, strict=True):
            counted[frequency[int(record["category_id"])], status] += 1
        for record, status in zip(verdict.instances, verdict.instance_status, strict=True):
            if status == MISSED:
                counted[frequency[int(record["category_id"])], MISSED] += 1
    columns = (*PREDICTION_STATUSES, MISSED)
    table = pd.DataFrame(
        [[counted[group, status] for status in columns] for group in FREQUENCY_GROUPS],
        index=list(FREQUENCY_GROUPS),
        columns=list(columns),
    )
    table.loc["total"] = table.sum()
    return table
