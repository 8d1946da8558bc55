"""LVIS evaluation on hotcoco's Rust engine, fed the kit's validated, normalised columns.

``hotcoco.COCOeval(gt, dt, iou_type, lvis_style=True)`` implements ``lvis.LVISEval``'s
federated rules (per-(image, category) greedy matching, detections of unverified categories
dropped, unmatched ones of ``not_exhaustive_category_ids`` ignored, 101-point interpolated
precision) in Rust, on both cores. Measured against ``LVISEval`` it differs on some legal
inputs, which the kit settles *before* handing data over, so that the numbers are LVISEval's:

1. Area 0: ``LVISEval`` evaluates only GT and results of area > 0; hotcoco keeps them (an empty
   mask becomes a false positive). Only ``GroundTruth.ann_evaluated`` instances and results
   of positive area (``lvisnb.evaluation.result_validation.result_areas``) are passed.
2. Ids: hotcoco, like ``LVISEval``, treats a matched GT id of 0 as "unmatched"; repeated ids
   collapse. Both are rejected when the file is read (``lvisnb.annotations.validate.check_ids``).
3. Result areas: ``load_res`` takes each result's area from its box; the kit writes the area
   of its IoU type (mask or box, ``segm_area``) with ``update_anns``.
4. The per-image limit is the kit's (``cap_per_image``, in ``LVISResults`` order, so ties
   break the same way); results are handed over marked as capped. hotcoco also cuts each
   (image, category) cell at ``params.max_dets``, which ``LVISEval`` does not: AP-fixed, which
   has no per-image limit, sets it above the largest cell.

Records never exist as Python dicts: GT goes in as columns (``COCO.from_arrays``), results as
one (N, 7) array ``[image_id, x, y, w, h, score, category_id]`` plus their RLEs for segm.
Inside hotcoco, images and categories are numbered by their position among the sorted ids
(from 1) and GT instances in file order, so that ids of any size survive the float64 array and
the category axis keeps ``GroundTruth.category_ids`` order.

AP-pool runs on *pseudo-images*: one per verified (image, category) pair, in (image,
category) order, holding that pair's GT and results twice, under the category "all" and
under its frequency group. Matching per (pseudo-image, category) is matching per original
pair; accumulation per category then ranks the detections of a whole pool by score, ties in
(image, category) order, as Dave et al.'s ``LVISPooledEval``.
"""

from __future__ import annotations

import hotcoco
import numpy as np

from lvisnb.annotations.categories import FREQUENCY_GROUPS
from lvisnb.annotations.masks import to_compressed_rle
from lvisnb.evaluation.bootstrap import sorted_matches
from lvisnb.evaluation.ground_truth import GroundTruth
from lvisnb.evaluation.metrics import Accumulated, pool_metrics, summarize
from lvisnb.evaluation.results import Detections, boxes_from_masks, rle_dicts

POOLS = ("all",) + FREQUENCY_GROUPS  # AP-pool categories: 1 = all, 2.. = r, c, f


def _image_records(truth: GroundTruth, negative: list, not_exhaustive: list) -> list[dict]:
    """hotcoco image dicts of ``truth``'s images (sorted ids) with the given label lists."""
    return [
        {
            "id": row + 1,
            "height": int(h),
            "width": int(w),
            "neg_category_ids": neg,
            "not_exhaustive_category_ids": ne,
        }
        for row, ((h, w), neg, ne) in enumerate(
            zip(truth.image_sizes, negative, not_exhaustive, strict=True)
        )
    ]


def _label_lists(truth: GroundTruth) -> tuple[list, list]:
    """Per image (sorted ids), its negative and not-exhaustive categories (columns + 1)."""
    k = truth.num_categories
    lists = []
    for keys in (truth.negative, truth.not_exhaustive):
        rows = keys // k
        ids = keys % k + 1
        bounds = np.searchsorted(rows, np.arange(len(truth.image_ids) + 1))
        lists.append([ids[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return lists[0], lists[1]


def _gt_segmentation(truth: GroundTruth, index: np.ndarray) -> list:
    """GT segmentations of annotations ``index``: polygons and compressed RLEs as they are,
    uncompressed RLEs converted (as ``lvis.LVIS.ann_to_rle``)."""
    anns = truth.dataset["annotations"]
    out = []
    for i, row in zip(index.tolist(), truth.ann_row[index].tolist(), strict=True):
        segm = anns[i]["segmentation"]
        if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
            h, w = truth.image_sizes[row]
            segm = to_compressed_rle(segm, int(h), int(w))
        out.append(segm)
    return out


class FastBackend:
    """LVIS evaluation of one set of results on hotcoco.

    ``evaluable``: per IoU type, bool (N,): the detections an evaluation of that type sees
    (verified, within the per-image or per-class limit, area > 0); ``area``: per IoU type,
    float64 (N,) px^2 (see :func:`lvisnb.evaluation.result_validation.result_areas`). Boxes
    (XYWH) are the results' own, or for mask-only results ``pycocotools.mask.toBbox`` of the masks.
    """

    def __init__(
        self,
        truth: GroundTruth,
        det: Detections,
        evaluable: dict[str, np.ndarray],
        area: dict[str, np.ndarray],
    ):
        self.truth, self.det, self.evaluable, self.area = truth, det, evaluable, area
        self.boxes = det.bbox
        if det.bbox is None:  # mask-only results: boxes from the masks (LVISResults); segm
            self.boxes = np.zeros((len(det), 4))  # takes no box into account
            if "bbox" in evaluable:
                index = np.flatnonzero(evaluable["bbox"])
                self.boxes[index] = boxes_from_masks(det, index)
        self.gt_index = np.flatnonzero(truth.ann_evaluated)
        self.gt_keys = truth.evaluated_keys()
        self.images = _image_records(truth, *_label_lists(truth))
        self.categories = [
            {"id": col + 1, "name": str(c), "frequency": f}
            for col, (c, f) in enumerate(zip(truth.category_ids, truth.frequency, strict=True))
        ]
        self._gt = {}
        self._columns = None
        self._gt_segmentation = None

    # -- ground truth and results as hotcoco datasets

    def _gt_columns(self, iou_type: str) -> dict:
        """``from_arrays`` columns of the evaluated GT instances (a new dict each call)."""
        truth, index = self.truth, self.gt_index
        if self._columns is None:
            if truth.ann_bbox is not None:
                boxes = truth.ann_bbox[index]
            else:
                anns = truth.dataset["annotations"]
                boxes = np.array([anns[i]["bbox"] for i in index.tolist()], dtype=np.float64)
            self._columns = {
                "image_ids": truth.ann_row[index] + 1,
                "category_ids": truth.ann_col[index] + 1,
                "boxes": boxes.reshape(-1, 4),
                "ids": np.arange(1, len(index) + 1),
                "area": truth.ann_area[index],
            }
        columns = dict(self._columns)
        if iou_type == "segm":
            if self._gt_segmentation is None:
                self._gt_segmentation = _gt_segmentation(truth, index)
            columns["segmentation"] = self._gt_segmentation
        return columns

    def gt(self, iou_type: str):
        """The ground truth as a ``hotcoco.COCO`` (built once per IoU type)."""
        if iou_type not in self._gt:
            columns = self._gt_columns(iou_type)
            self._gt[iou_type] = hotcoco.COCO.from_arrays(
                self.images,
                self.categories,
                columns.pop("image_ids"),
                columns.pop("category_ids"),
                columns.pop("boxes"),
                **columns,
            )
        return self._gt[iou_type]

    def _dt_index(self, iou_type: str, indices: np.ndarray) -> np.ndarray:
        """Detections ``indices`` (in that order) that this IoU type evaluates at all."""
        return indices[self.evaluable[iou_type][indices]]

    def _load_results(self, gt, iou_type: str, index: np.ndarray, image_ids, category_ids):
        """``gt.load_res`` of detections ``index`` placed on ``image_ids`` / ``category_ids``
        (arrays of ``len(index)``), with the areas of ``iou_type``; marked as capped."""
        det = self.det
        rows = np.empty((len(index), 7))
        rows[:, 0] = image_ids
        rows[:, 1:5] = self.boxes[index]
        rows[:, 5] = det.score[index]
        rows[:, 6] = category_ids
        segmentation = rle_dicts(det, index) if iou_type == "segm" else None
        dt = gt.load_res(rows, segmentation=segmentation)
        if len(index):
            dt.update_anns(ids=np.arange(1, len(index) + 1), area=self.area[iou_type][index])
        return dt.cap_detections_per_image(None)

    @staticmethod
    def _evaluated(gt, dt, iou_type: str, max_dets: int):
        """A ``hotcoco.COCOeval`` in LVIS mode, evaluated and accumulated."""
        ev = hotcoco.COCOeval(gt, dt, iou_type, lvis_style=True)
        ev.params.max_dets = [max(int(max_dets), 1)]
        ev.evaluate()
        ev.accumulate()
        return ev

    @classmethod
    def _accumulate(cls, gt, dt, iou_type: str, max_dets: int):
        """Precision [T, R, K, A] and recall [T, K, A] of ``LVISEval`` (-1 where no GT)."""
        ev = cls._evaluated(gt, dt, iou_type, max_dets)
        return ev.eval["precision"][..., -1], ev.eval["recall"][..., -1]

    # -- evaluations

    def standard(self, iou_type: str, indices: np.ndarray, max_dets: int, matches: bool = False):
        """Precision/recall of detections ``indices`` (already limited per image); with
        ``matches``, also their :class:`~lvisnb.evaluation.bootstrap.Matches` from the same
        matching."""
        det, index = self.det, self._dt_index(iou_type, indices)
        gt = self.gt(iou_type)
        row, col = det.image_row[index] + 1, det.category_col[index] + 1
        dt = self._load_results(gt, iou_type, index, row, col)
        ev = self._evaluated(gt, dt, iou_type, max_dets)
        result = (ev.eval["precision"][..., -1], ev.eval["recall"][..., -1])
        return (*result, self._matches(ev, index)) if matches else result

    def _matches(self, ev, index: np.ndarray):
        """The matching of ``ev`` (detections ``index``, hotcoco ids 1..n) at area "all".

        Read with hotcoco's ``image_diagnostics`` once per IoU threshold: its ``dt_status``
        names each detection that is not ignored "tp" or "fp" (area "all", the evaluation's own
        matching), far cheaper than ``eval_imgs``, which builds Python lists for every area
        and threshold. GT instances: the evaluated ones of area <= 1e10 (LVIS's "all").
        """
        det, truth = self.det, self.truth
        n, thresholds = len(index), ev.params.iou_thrs
        tp = np.zeros((len(thresholds), n), dtype=bool)
        fp = np.zeros_like(tp)
        for t, threshold in enumerate(thresholds if n else []):
            status = ev.image_diagnostics(iou_thr=float(threshold), score_thr=np.inf)
            status = status["dt_status"]
            ids = np.fromiter(status.keys(), dtype=np.int64, count=len(status)) - 1
            kind = np.array(list(status.values()))
            if not np.isin(kind, ["tp", "fp"]).all():
                raise RuntimeError(f"hotcoco dt_status has unknown values: {set(kind)}")
            tp[t, ids[kind == "tp"]] = True
            fp[t, ids[kind == "fp"]] = True
        gt_index = self.gt_index[truth.ann_area[self.gt_index] <= 1e10]
        return sorted_matches(
            len(truth.image_ids),
            truth.num_categories,
            (det.image_row[index], det.category_col[index], det.score[index], np.arange(n)),
            tp,
            fp,
            (truth.ann_row[gt_index], truth.ann_col[gt_index], np.ones(len(gt_index))),
        )

    def fixed(self, iou_type: str, indices: np.ndarray):
        """AP-fixed precision/recall and AP-pool per pool of detections ``indices`` (already
        limited per class, not per image)."""
        det, index = self.det, self._dt_index(iou_type, indices)
        keys = det.pair_keys(self.truth.num_categories)[index]
        most = int(np.unique(keys, return_counts=True)[1].max()) if len(keys) else 1
        gt = self.gt(iou_type)
        row, col = det.image_row[index] + 1, det.category_col[index] + 1
        dt = self._load_results(gt, iou_type, index, row, col)
        precision, recall = self._accumulate(gt, dt, iou_type, most)
        return precision, recall, self._pooled(iou_type, index, keys, most)

    def _pooled(self, iou_type: str, index: np.ndarray, keys: np.ndarray, most: int) -> dict:
        """AP-pool of each pool (``POOLS``) on pseudo-images (see the module doc); -1 where a
        pool has no GT."""
        k = self.truth.num_categories
        pairs = np.union1d(self.gt_keys, keys)
        group = {g: i + 2 for i, g in enumerate(FREQUENCY_GROUPS)}
        pool_of_column = np.array([group[f] for f in self.truth.frequency], dtype=np.int64)
        gt = self._pool_gt(iou_type, pairs, pool_of_column)
        dt_pool = pool_of_column[keys % k]
        dt = self._load_results(
            gt,
            iou_type,
            _twice(index),
            _twice(np.searchsorted(pairs, keys) + 1),
            np.concatenate([np.ones_like(dt_pool), dt_pool]),
        )
        precision, _ = self._accumulate(gt, dt, iou_type, most)
        pooled = {}
        for column, name in enumerate(POOLS):
            valid = precision[:, :, column, 0]
            pooled[name] = float(valid.mean()) if (valid > -1).all() else -1.0
        return pooled

    def _pool_gt(self, iou_type: str, pairs: np.ndarray, pool_of_column: np.ndarray):
        """The GT on pseudo-images: pseudo-image ``j + 1`` holds pair ``pairs[j]``'s instances
        twice, as category 1 ("all") and as its pool's; its label lists name both."""
        truth, k = self.truth, self.truth.num_categories
        pool = pool_of_column[pairs % k].tolist()
        negative = np.isin(pairs, truth.negative).tolist()
        not_exhaustive = np.isin(pairs, truth.not_exhaustive).tolist()
        sizes = truth.image_sizes[pairs // k].tolist()
        images = [
            {
                "id": j + 1,
                "height": h,
                "width": w,
                "neg_category_ids": [1, label] if neg else [],
                "not_exhaustive_category_ids": [1, label] if ne else [],
            }
            for j, ((h, w), label, neg, ne) in enumerate(
                zip(sizes, pool, negative, not_exhaustive, strict=True)
            )
        ]
        categories = [{"id": i + 1, "name": p, "frequency": "f"} for i, p in enumerate(POOLS)]
        gt_pool = pool_of_column[self.gt_keys % k]
        columns = self._gt_columns(iou_type)
        del columns["image_ids"], columns["category_ids"]
        columns = {name: _twice(value) for name, value in columns.items()}
        columns["ids"] = np.arange(1, 2 * len(self.gt_keys) + 1)
        return hotcoco.COCO.from_arrays(
            images,
            categories,
            _twice(np.searchsorted(pairs, self.gt_keys) + 1),
            np.concatenate([np.ones_like(gt_pool), gt_pool]),
            columns.pop("boxes"),
            **columns,
        )


def _twice(values):
    """``values`` followed by itself (arrays concatenated, lists added)."""
    if isinstance(values, np.ndarray):
        return np.concatenate([values, values])
    return list(values) + list(values)


class FastRunner:
    """:class:`FastBackend` behind the interface that :func:`lvisnb.evaluation.evaluator.evaluate`
    drives: ``standard`` and ``fixed`` return (:class:`~lvisnb.evaluation.metrics.Accumulated`,
    metrics), as :class:`lvisnb.evaluation.lvis_backend.LvisBackend` does."""

    def __init__(self, backend: FastBackend, keep_matches: bool = False):
        self.backend = backend
        self.frequency = backend.truth.frequency
        self.keep_matches = keep_matches
        self.matches = {}  # iou_type -> Matches of the standard evaluation, with keep_matches

    def standard(self, iou_type: str, indices: np.ndarray, max_dets: int):
        result = self.backend.standard(iou_type, indices, max_dets, matches=self.keep_matches)
        if self.keep_matches:
            self.matches[iou_type] = result[2]
        acc = Accumulated(*result[:2])
        return acc, summarize(acc, self.frequency, max_dets)

    def fixed(self, iou_type: str, indices: np.ndarray):
        precision, recall, pooled = self.backend.fixed(iou_type, indices)
        acc = Accumulated(precision, recall)
        metrics = summarize(acc, self.frequency, 0)
        fixed = {"APfixed": metrics["AP"]}
        fixed |= {f"APfixed_{g}": metrics[f"AP{g}"] for g in FREQUENCY_GROUPS}
        return acc, fixed | pool_metrics(pooled)
