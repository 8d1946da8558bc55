"""LVIS evaluation on faster-coco-eval's C++ matcher, run on packed (image, category) pairs.

``COCOeval_faster(..., lvis_style=True)`` implements LVIS's per-(image, category) rules:
detections of categories neither annotated nor in ``neg_category_ids`` are dropped; unmatched
detections of ``not_exhaustive_category_ids`` categories are ignored. Used as is on an LVIS
file it differs from ``lvis.LVISEval`` in three ways, which this module takes care of:

1. LVIS keeps at most 300 detections *per image* (``lvis.LVISResults``); COCO's ``maxDets``
   caps per (image, category) and defaults to 100. We apply the per-image limit before
   (:func:`lvisnb.detections.cap_per_image`) and set ``maxDets`` above any (image, category)
   count, so it never cuts anything.
2. A result's ``area`` (what decides small/medium/large) is set per IoU type by the caller:
   ``w * h`` of the box for bbox, the mask's area for segm.
3. It walks every image x category cell in Python and C++ (24 million on LVIS v1 val), which
   dominates its run time, and it fails (``IndexError: unordered_map::at``) on segm when an
   image without GT only has detections of unverified categories.

For 3, evaluations run on *packed pairs*. Only verified (image, category) pairs holding GT or
detections matter. Each pair is given a label (its category, or for AP-pool its pool) and a
slot: its rank among the pairs of that label in (image, category) order. A pseudo-image per
slot holds, for every label, at most one pair; matching is per (pseudo-image, label), i.e. per
original pair, so TP/FP/ignore flags are unchanged, and accumulation per label concatenates
pseudo-images in slot order, i.e. in the original image order (ties in score are broken as
``LVISEval`` does). Labels are processed in chunks of similar pair counts so that the cells
walked (slots x labels) stay within twice the number of pairs. GT masks are converted to RLE
with their real image size first (pseudo-images have no single size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvisnb.detections import Detections, boxes_from_masks, rle_dicts
from lvisnb.ground_truth import FREQUENCY_GROUPS, GroundTruth

POOLS = ("all",) + FREQUENCY_GROUPS  # AP-pool labels: 0 = all categories, 1.. = r, c, f


@dataclass
class Items:
    """GT instances or detections for :func:`packed_eval`, column-wise.

    ``keys``: (n,) int64 pair keys ``row * K + col`` (see :class:`GroundTruth`); ``fields``:
    equal-length lists copied into the records faster-coco-eval reads: ``area`` (px^2, decides
    the size range), ``bbox`` (XYWH list, for bbox) or ``segmentation`` (compressed RLE dict,
    for segm), and ``score`` for detections.
    """

    keys: np.ndarray
    fields: dict[str, list]


def _quiet(*args, **kwargs) -> None:
    """faster-coco-eval's progress printer, silenced."""


def _expand(items: Items, pair_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(assignment index, item index) for every item of each assignment's pair, items of a
    pair in their input order."""
    order = np.argsort(items.keys, kind="stable")
    sorted_keys = items.keys[order]
    lo = np.searchsorted(sorted_keys, pair_keys, side="left")
    counts = np.searchsorted(sorted_keys, pair_keys, side="right") - lo
    assignment = np.repeat(np.arange(len(pair_keys)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return assignment, order[np.repeat(lo, counts) + within]


def _records(items: Items, assignment, item, image_of, label_of) -> list[dict]:
    columns = {
        "id": list(range(1, len(item) + 1)),
        "image_id": image_of[assignment].tolist(),
        "category_id": label_of[assignment].tolist(),
    }
    for name, values in items.fields.items():
        columns[name] = [values[i] for i in item.tolist()]
    columns["iscrowd"] = [0] * len(item)
    return rows_of(columns)


def rows_of(columns: dict[str, list]) -> list[dict]:
    """Column lists (equal lengths) to one dict per row."""
    names = tuple(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def packed_eval(
    gt: Items,
    dt: Items,
    pair_keys: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    truth: GroundTruth,
    iou_type: str,
    max_dets: int,
    all_areas: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """COCO/LVIS precision and recall per label, with pairs ``pair_keys`` assigned ``labels``.

    A pair may be assigned several labels (AP-pool: "all" and its frequency group). Pairs'
    negative / not-exhaustive status comes from ``truth``. Returns ``precision`` [T, R, L, A]
    and ``recall`` [T, L, A] (L = ``num_labels``; A = 4 area ranges, or 1 = "all" when not
    ``all_areas``), -1 where a label has no GT.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    order = np.lexsort((pair_keys, labels))
    pair_keys, labels = pair_keys[order], labels[order]
    starts = np.searchsorted(labels, np.arange(num_labels))
    slot = np.arange(len(labels)) - starts[labels]
    num_slots = int(slot.max()) + 1 if len(slot) else 1
    label_id = labels + 1
    images = [{"id": j + 1, "height": 1, "width": 1} for j in range(num_slots)]
    for name, marked in (
        ("neg_category_ids", np.isin(pair_keys, truth.negative)),
        ("not_exhaustive_category_ids", np.isin(pair_keys, truth.not_exhaustive)),
    ):
        for image in images:
            image[name] = []
        for j, c in zip(slot[marked].tolist(), label_id[marked].tolist(), strict=True):
            images[j][name].append(c)
    categories = [{"id": c + 1, "name": str(c), "frequency": "f"} for c in range(num_labels)]
    image_of = slot + 1

    gt_assign, gt_item = _expand(gt, pair_keys)
    gt_coco = COCO(
        {
            "images": images,
            "categories": categories,
            "annotations": _records(gt, gt_assign, gt_item, image_of, label_id),
        }
    )
    dt_assign, dt_item = _expand(dt, pair_keys)
    dt_coco = COCO()
    dt_coco.dataset = {
        "images": images,
        "categories": categories,
        "annotations": _records(dt, dt_assign, dt_item, image_of, label_id),
    }
    dt_coco.createIndex()
    ev = COCOeval_faster(gt_coco, dt_coco, iou_type, lvis_style=True, print_function=_quiet)
    # packed pairs hold a few masks each: a thread per pair's RLE IoU (faster-coco-eval >= 1.7)
    # costs more in dispatch than it computes (12-15% of segm matching at 500 images)
    ev.rle_iou_max_workers = 1
    ev.params.maxDets = [max(int(max_dets), 1)]
    if not all_areas:
        ev.params.areaRng = ev.params.areaRng[:1]
        ev.params.areaRngLbl = ev.params.areaRngLbl[:1]
    ev.evaluate()
    ev.accumulate()
    return ev.eval["precision"][..., -1], ev.eval["recall"][..., -1]


def _chunks(counts: np.ndarray) -> list[np.ndarray]:
    """Column groups (sorted by descending ``counts``) whose counts stay within a factor 2 of
    the group's largest, so that slots x labels <= 2 x pairs in every group."""
    order = np.argsort(-counts, kind="stable")
    groups, start = [], 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and 2 * counts[order[stop]] > counts[order[start]]:
            stop += 1
        groups.append(order[start:stop])
        start = stop
    return groups


class FastBackend:
    """LVIS evaluation of one set of results with :func:`packed_eval`.

    ``evaluated``: sorted indices of every detection an evaluation will see (verified and
    within the per-image or per-class limit); ``mask_area``: their RLE areas (px^2) when the
    results have masks; ``need_boxes``: bbox is evaluated (boxes from masks if none given).
    """

    def __init__(
        self,
        truth: GroundTruth,
        det: Detections,
        evaluated: np.ndarray,
        mask_area: np.ndarray | None,
        need_boxes: bool,
    ):
        self.truth, self.det, self.evaluated, self.mask_area = truth, det, evaluated, mask_area
        self.boxes = None
        if need_boxes:
            given = det.bbox is not None
            self.boxes = det.bbox[evaluated] if given else boxes_from_masks(det, evaluated)
        anns = truth.dataset["annotations"]
        self.gt_keys = truth.ann_row * truth.num_categories + truth.ann_col
        self.gt_area = [a["area"] for a in anns]
        self._gt_masks = None

    # -- items

    def _gt(self, iou_type: str) -> Items:
        if iou_type == "bbox":
            geometry = [a["bbox"] for a in self.truth.dataset["annotations"]]
            return Items(self.gt_keys, {"area": self.gt_area, "bbox": geometry})
        if self._gt_masks is None:  # polygons to RLE at the real image size, once
            from faster_coco_eval.core import mask as fmask

            anns = [
                {"image_id": a["image_id"], "segmentation": a["segmentation"]}
                for a in self.truth.dataset["annotations"]
            ]
            sizes = {
                int(i): (int(h), int(w))
                for i, (h, w) in zip(self.truth.image_ids, self.truth.image_sizes, strict=True)
            }
            fmask.calculateRleForAllAnnotations(anns, sizes, True, False, 0.02, 1)
            self._gt_masks = [a["rle"] for a in anns]
        return Items(self.gt_keys, {"area": self.gt_area, "segmentation": self._gt_masks})

    def _dt(self, iou_type: str, indices: np.ndarray) -> Items:
        """Detections ``indices`` (in that order) that are evaluated at all."""
        evaluated, det = self.evaluated, self.det
        if not len(evaluated):
            return Items(np.zeros(0, dtype=np.int64), {"score": [], "area": []})
        position = np.searchsorted(evaluated, indices).clip(0, len(evaluated) - 1)
        position = position[evaluated[position] == indices]
        index = evaluated[position]
        keys = self.truth.pair_keys(det.image_id[index], det.category_id[index])
        fields = {"score": det.score[index].tolist()}
        if iou_type == "bbox":
            boxes = self.boxes[position]
            area = boxes[:, 2] * boxes[:, 3] if det.bbox is not None else self.mask_area[position]
            fields |= {"area": area.tolist(), "bbox": boxes.tolist()}
        else:
            fields["area"] = self.mask_area[position].tolist()
            fields["segmentation"] = rle_dicts(det, index)
        return Items(keys, fields)

    # -- evaluations

    def _per_category(self, iou_type: str, dt: Items, max_dets: int):
        """Standard per-category precision [T, R, K, A] / recall [T, K, A] over all pairs of
        categories with GT (others stay -1, as they would in ``LVISEval``)."""
        k = self.truth.num_categories
        pairs = np.union1d(self.gt_keys, dt.keys)
        pairs = pairs[np.isin(pairs % k, self.truth.ann_col)]  # categories with GT
        col = pairs % k
        precision = -np.ones((10, 101, k, 4))
        recall = -np.ones((10, k, 4))
        gt = self._gt(iou_type)
        present, counts = np.unique(col, return_counts=True)
        for group in _chunks(counts):
            columns = np.sort(present[group])
            chosen = np.isin(col, columns)
            labels = np.searchsorted(columns, col[chosen])
            p, r = packed_eval(
                gt, dt, pairs[chosen], labels, len(columns), self.truth, iou_type, max_dets
            )
            precision[:, :, columns], recall[:, columns] = p, r
        return precision, recall

    def standard(self, iou_type: str, indices: np.ndarray, max_dets: int):
        """Precision/recall of detections ``indices`` (already limited per image)."""
        return self._per_category(iou_type, self._dt(iou_type, indices), max_dets)

    def fixed(self, iou_type: str, indices: np.ndarray):
        """AP-fixed precision/recall and AP-pool per pool of detections ``indices`` (already
        limited per class, not per image)."""
        dt = self._dt(iou_type, indices)
        most = int(np.unique(dt.keys, return_counts=True)[1].max()) if len(dt.keys) else 1
        precision, recall = self._per_category(iou_type, dt, most)
        k = self.truth.num_categories
        pairs = np.union1d(self.gt_keys, dt.keys)
        group = {g: i + 1 for i, g in enumerate(FREQUENCY_GROUPS)}
        pool = np.array([group[f] for f in self.truth.frequency], dtype=np.int64)[pairs % k]
        p, _ = packed_eval(
            self._gt(iou_type),
            dt,
            np.concatenate([pairs, pairs]),
            np.concatenate([np.zeros(len(pairs), dtype=np.int64), pool]),
            len(POOLS),
            self.truth,
            iou_type,
            most,
            all_areas=False,
        )
        pooled = {}
        for label, name in enumerate(POOLS):
            valid = p[:, :, label, 0]
            pooled[name] = float(valid.mean()) if (valid > -1).all() else -1.0
        return precision, recall, pooled
