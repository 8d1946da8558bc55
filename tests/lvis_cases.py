"""Seeded random LVIS cases for differential tests against the official ``lvis`` API.

:func:`make_case` builds a small but *legal* LVIS ground truth and results list, full of the
inputs on which an evaluator can quietly disagree with ``lvis.LVISEval``: empty masks, boxes of
zero width or height, boxes crossing the image border, duplicates, tied scores, more than 300
detections on an image, detections on negative / not-exhaustive / unverified categories,
categories and images without GT, objects of every LVIS size range (areas exactly 32^2 and 96^2
included: both ends of a range are inclusive) and results whose box and mask disagree in area.

:func:`reference_metrics` scores a case with the official ``lvis.LVISResults`` + ``LVISEval``.
Reference semantics worth knowing (lvis 0.5.3):

- ``LVISResults`` keeps the 300 best-scored results of an image (stable sort), then sets each
  result's ``area`` to the box's ``w * h`` when the *first* record has a ``bbox``, else to the
  mask area (and the box from the mask).
- ``LVISEval._prepare`` loads GT and results with ``get_ann_ids(img_ids, cat_ids)``, which keeps
  only ``0 < area < inf``: zero-area results (and GT) are dropped before anything else. Results
  on categories neither annotated nor negative on their image are dropped too (federated).
- Area ranges are inclusive at both ends (``area < lo or area > hi`` is outside).

:func:`case_features` counts the awkward kinds in a case, so that tests can check the generator
keeps producing them.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections import Counter

import numpy as np
import pycocotools.mask as mask_utils

SMALL_MAX = 32**2  # LVIS: small < 32^2 <= medium < 96^2 <= large (both ends inclusive)
MEDIUM_MAX = 96**2
MAX_DETS_PER_IMAGE = 300
EXACT_SIDES = ((32, 32), (16, 64), (64, 16), (96, 96), (48, 192), (192, 48))  # areas 32^2, 96^2


# ----------------------------------------------------------------------------- masks


def rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE ``{"size": [h, w], "counts": str}`` of a binary mask."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def polygon_mask(segmentation: list[list[float]], h: int, w: int) -> np.ndarray:
    """The (h, w) uint8 mask of LVIS polygons, rasterised as ``lvis``/pycocotools do."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w)))


def box_mask(h: int, w: int, x: float, y: float, bw: float, bh: float) -> np.ndarray:
    """The pixels covered by box XYWH, clipped to the (h, w) image."""
    mask = np.zeros((h, w), dtype=np.uint8)
    x0, y0 = max(int(math.floor(x)), 0), max(int(math.floor(y)), 0)
    x1, y1 = min(int(math.ceil(x + bw)), w), min(int(math.ceil(y + bh)), h)
    if x1 > x0 and y1 > y0:
        mask[y0:y1, x0:x1] = 1
    return mask


def _shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by (dy, dx) pixels, what leaves the image is lost."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    ys, xs = ys + dy, xs + dx
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    out[ys[inside], xs[inside]] = 1
    return out


# ----------------------------------------------------------------------------- ground truth


def _round(values) -> list[float]:
    return [round(float(v), 2) for v in values]


def _rect_polygon(x: float, y: float, bw: float, bh: float) -> list[float]:
    return _round([x, y, x + bw, y, x + bw, y + bh, x, y + bh])


def _convex_polygon(rng, cx: float, cy: float, radius: float) -> list[float]:
    k = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = radius * rng.uniform(0.5, 1.0, k)
    xy = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return _round(xy.ravel())


def _side(rng, lo: float, hi: float) -> float:
    """A length drawn log-uniformly in [lo, hi] (hi >= lo)."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)))))


def _gt_polygons(rng, h: int, w: int, exact: bool) -> list[list[float]]:
    """One GT object's polygons (one part, sometimes two), clipped to the image."""
    kind = rng.choice(["rect", "rect", "big", "convex", "multi", "tiny", "thin", "exact"])
    fitting = [s for s in EXACT_SIDES if s[0] <= w and s[1] <= h]
    if kind == "exact" and exact and fitting:
        bw, bh = fitting[int(rng.integers(len(fitting)))]
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        parts = [_rect_polygon(x, y, bw, bh)]  # integer box: mask area exactly bw * bh
    elif kind == "tiny":
        bw, bh = rng.uniform(0.6, 3.0, 2)
        parts = [_rect_polygon(rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh)]
    elif kind == "thin":
        bw, bh = _side(rng, 8, 0.9 * w), rng.uniform(1.0, 2.5)
        if rng.random() < 0.5:
            bw, bh = min(bh, w - 1), min(_side(rng, 8, 0.9 * h), h - 1)
        parts = [_rect_polygon(rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh)]
    elif kind in ("convex", "multi"):
        parts = []
        for _ in range(1 if kind == "convex" else 2):
            radius = _side(rng, 2, 0.45 * min(h, w))
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            parts.append(_convex_polygon(rng, cx, cy, radius))
    else:
        if kind == "big":  # medium or large in the bigger images
            bw, bh = rng.uniform(0.4, 0.98) * w, rng.uniform(0.4, 0.98) * h
        else:
            bw, bh = _side(rng, 2, 0.95 * w), _side(rng, 2, 0.95 * h)
        parts = [_rect_polygon(rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh)]
    clipped = []
    for part in parts:
        xy = np.asarray(part, dtype=np.float64).reshape(-1, 2)
        xy[:, 0] = xy[:, 0].clip(0, w)
        xy[:, 1] = xy[:, 1].clip(0, h)
        clipped.append(_round(xy.ravel()))
    return clipped


def _gt_annotation(rng, h: int, w: int, exact: bool) -> tuple[dict, np.ndarray]:
    """A GT annotation (without ids) of positive mask area, and its mask."""
    for _ in range(50):
        segmentation = _gt_polygons(rng, h, w, exact)
        mask = polygon_mask(segmentation, h, w)
        area = int(mask.sum())
        if area > 0:
            break
    else:  # pragma: no cover - a 4x4 square always has area
        segmentation = [_rect_polygon(0, 0, 4, 4)]
        mask = polygon_mask(segmentation, h, w)
        area = int(mask.sum())
    xy = np.concatenate([np.asarray(p).reshape(-1, 2) for p in segmentation])
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    bbox = _round([x0, y0, x1 - x0, y1 - y0])
    return {"segmentation": segmentation, "bbox": bbox, "area": float(area)}, mask


def _categories(rng) -> list[dict]:
    n = int(rng.integers(3, 9))
    ids = sorted(int(i) for i in rng.choice(np.arange(1, 1300), n, replace=False))
    frequency = ["r", "c", "f"] + [str(f) for f in rng.choice(["r", "c", "f"], n - 3)]
    rng.shuffle(frequency)
    counts = {"r": (1, 10), "c": (10, 100), "f": (100, 3000)}
    categories = [
        {
            "id": cid,
            "name": f"category_{cid}",
            "frequency": freq,
            "image_count": int(rng.integers(*counts[freq])),
        }
        for cid, freq in zip(ids, frequency, strict=True)
    ]
    if rng.random() < 0.5:  # the file's order need not be sorted
        rng.shuffle(categories)
    return categories


def _image_size(rng) -> tuple[int, int]:
    if rng.random() < 0.35:  # big enough for medium and large objects
        return int(rng.integers(100, 251)), int(rng.integers(100, 251))
    return int(rng.integers(20, 121)), int(rng.integers(20, 121))


# ----------------------------------------------------------------------------- results


def _detection(image_id: int, category_id: int, score: float, bbox, mask: np.ndarray) -> dict:
    return {
        "image_id": image_id,
        "category_id": category_id,
        "score": float(score),
        "bbox": _round(bbox),
        "segmentation": rle(mask),
    }


def _near(rng, ann: dict, mask: np.ndarray, h: int, w: int) -> tuple[list, np.ndarray]:
    """A box and mask localising GT ``ann``: jittered box, shifted mask (sometimes exact)."""
    x, y, bw, bh = ann["bbox"]
    if rng.random() < 0.15:
        return list(ann["bbox"]), mask.copy()
    spread = max(bw, bh) * rng.uniform(0.0, 0.25)
    dx, dy = np.round(rng.normal(0, spread / 2 + 0.3, 2)).astype(int)
    box = [x + dx + rng.normal(0, 0.5), y + dy + rng.normal(0, 0.5)]
    box += [max(bw * rng.uniform(0.8, 1.2), 0.5), max(bh * rng.uniform(0.8, 1.2), 0.5)]
    return box, _shifted(mask, int(dy), int(dx))


def _random_box(rng, h: int, w: int) -> tuple[list, np.ndarray]:
    """A box anywhere in the image and a mask inside it (the box, or a polygon in it)."""
    bw, bh = _side(rng, 1, 0.9 * w), _side(rng, 1, 0.9 * h)
    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    if rng.random() < 0.3:
        poly = _convex_polygon(rng, x + bw / 2, y + bh / 2, min(bw, bh) / 2)
        mask = polygon_mask([poly], h, w)
    else:
        mask = box_mask(h, w, x, y, bw, bh)
    return [x, y, bw, bh], mask


def _exact_box(rng, h: int, w: int) -> tuple[list, np.ndarray] | None:
    """An integer box of area exactly 32^2 or 96^2 with the same mask, if one fits."""
    fitting = [s for s in EXACT_SIDES if s[0] <= w and s[1] <= h]
    if not fitting:
        return None
    bw, bh = fitting[int(rng.integers(len(fitting)))]
    x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    return [x, y, bw, bh], box_mask(h, w, x, y, bw, bh)


def _awkward(rng, box: list, mask: np.ndarray, h: int, w: int, p: dict) -> tuple[list, np.ndarray]:
    """Apply the case's awkward transformations to one detection, each with its probability."""
    box = list(box)
    if rng.random() < p["border"]:  # cross the left/top or right/bottom border
        axis = int(rng.integers(2))
        size = box[2 + axis]
        limit = (w, h)[axis]
        if rng.random() < 0.5:
            box[axis] = -rng.uniform(0.2, 0.8) * max(size, 1.0)
        else:
            box[axis] = limit - rng.uniform(0.2, 0.8) * max(size, 1.0)
        if rng.random() < 0.5:
            mask = box_mask(h, w, *box)
    if rng.random() < p["disagree"]:  # box and mask areas disagree
        if rng.random() < 0.5:
            factor = float(rng.choice([0.2, 0.5, 2.0, 4.0]))
            box[2], box[3] = box[2] * factor, box[3] * factor
        else:
            other, _ = _random_box(rng, h, w)
            mask = box_mask(h, w, *other)
    if rng.random() < p["zero_box"]:  # zero width and/or height, the mask left as it is
        which = int(rng.integers(3))
        if which in (0, 2):
            box[2] = 0.0
        if which in (1, 2):
            box[3] = 0.0
    if rng.random() < p["empty_mask"]:
        mask = np.zeros((h, w), dtype=np.uint8)
    return box, mask


# ----------------------------------------------------------------------------- cases


def make_case(seed: int) -> tuple[dict, list[dict]]:
    """A small legal LVIS ground truth dict and results list, drawn from ``seed``.

    2-6 images (20-120 px, some up to 250 px), 3-8 categories (every frequency present), GT
    with polygon masks and ``area`` = their mask area (> 0), ``bbox`` = the polygons' extent;
    results with XYWH boxes and compressed-RLE masks, at least one. See the module docstring
    for the awkward inputs; each is present with some probability.
    """
    rng = np.random.default_rng(seed)
    p = {  # per-case switches: probability of each awkward transformation per detection
        "empty_mask": float(rng.choice([0.0, 0.06, 0.15])),
        "zero_box": float(rng.choice([0.0, 0.06, 0.15])),
        "border": float(rng.choice([0.0, 0.1])),
        "disagree": float(rng.choice([0.0, 0.1, 0.2])),
        "duplicate": float(rng.choice([0.0, 0.08])),
    }
    ties = rng.random() < 0.5
    decimals = int(rng.choice([1, 2])) if ties else None
    exact = rng.random() < 0.5
    many = rng.random() < 0.3
    only_unverified = rng.random() < 0.04
    all_empty = rng.random() < 0.03

    categories = _categories(rng)
    cat_ids = [c["id"] for c in categories]
    no_gt = set()
    if rng.random() < 0.6:  # categories without any GT
        no_gt = {int(c) for c in rng.choice(cat_ids, int(rng.integers(1, 3)), replace=False)}
    may_have_gt = [c for c in cat_ids if c not in no_gt]

    num_images = int(rng.integers(2, 7))
    image_ids = [int(i) for i in rng.choice(np.arange(1, 10**6), num_images, replace=False)]
    empty_images = set()
    if rng.random() < 0.5:  # images without GT
        empty_images = {image_ids[int(i)] for i in rng.choice(num_images, 1 + (rng.random() < 0.3))}

    images, annotations, masks = [], [], {}
    for image_id in image_ids:
        h, w = _image_size(rng)
        positive = []
        if image_id not in empty_images:
            k = int(rng.integers(1, min(3, len(may_have_gt)) + 1))
            positive = sorted(int(c) for c in rng.choice(may_have_gt, k, replace=False))
        rest = [c for c in cat_ids if c not in positive]
        negative = sorted(int(c) for c in rest if rng.random() < 0.4)
        not_exhaustive = sorted(c for c in positive if rng.random() < 0.3)
        images.append(
            {
                "id": image_id,
                "height": h,
                "width": w,
                "coco_url": f"http://images.cocodataset.org/val2017/{image_id:012d}.jpg",
                "neg_category_ids": negative,
                "not_exhaustive_category_ids": not_exhaustive,
            }
        )
        for category_id in positive:
            for _ in range(int(rng.integers(1, 5))):
                last = annotations[-1] if annotations else None
                if last and last["image_id"] == image_id and rng.random() < 0.05:
                    # the same object twice (same or another category)
                    shape = {k: copy.deepcopy(last[k]) for k in ("segmentation", "bbox", "area")}
                    mask = masks[last["id"]]
                else:
                    shape, mask = _gt_annotation(rng, h, w, exact)
                ann = {"id": 0, "image_id": image_id, "category_id": category_id} | shape
                annotations.append(ann)
                ann["id"] = int(len(annotations) * 7 + rng.integers(7))  # unique, not 1..N
                masks[ann["id"]] = mask
    if rng.random() < 0.5:
        rng.shuffle(annotations)
    gt = {"images": images, "annotations": annotations, "categories": categories}

    # results
    by_image = {i["id"]: [] for i in images}
    for ann in annotations:
        by_image[ann["image_id"]].append(ann)
    results = []

    def score() -> float:
        value = float(rng.uniform(0.001, 1.0))
        return round(value, decimals) if ties else value

    def add(image: dict, category_id: int, box: list, mask: np.ndarray) -> None:
        h, w = image["height"], image["width"]
        box, mask = _awkward(rng, box, mask, h, w, p)
        if all_empty:
            mask = np.zeros((h, w), dtype=np.uint8)
        record = _detection(image["id"], category_id, score(), box, mask)
        results.append(record)
        if rng.random() < p["duplicate"]:
            results.append(copy.deepcopy(record))

    def roles(image: dict) -> dict[str, list[int]]:
        positive = sorted({a["category_id"] for a in by_image[image["id"]]})
        negative = image["neg_category_ids"]
        not_exhaustive = image["not_exhaustive_category_ids"]
        verified = set(positive) | set(negative)
        return {
            "positive": positive,
            "negative": negative,
            "not_exhaustive": not_exhaustive,
            "unverified": [c for c in cat_ids if c not in verified],
        }

    def false_positive_category(r: dict) -> int | None:
        kinds = [k for k in ("positive", "negative", "not_exhaustive", "unverified") if r[k]]
        if only_unverified:
            kinds = ["unverified"] if r["unverified"] else []
        if not kinds:
            return None
        choices = r[str(rng.choice(kinds))]
        return int(choices[int(rng.integers(len(choices)))])

    for image in images:
        h, w = image["height"], image["width"]
        r = roles(image)
        if not only_unverified:
            for ann in by_image[image["id"]]:
                for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                    box, mask = _near(rng, ann, masks[ann["id"]], h, w)
                    category = ann["category_id"]
                    if rng.random() < 0.1 and r["negative"]:  # right place, wrong (negative) class
                        category = int(rng.choice(r["negative"]))
                    add(image, category, box, mask)
        for _ in range(int(rng.integers(0, 13))):
            category = false_positive_category(r)
            if category is None:
                break
            made = _exact_box(rng, h, w) if exact and rng.random() < 0.2 else None
            add(image, category, *(made or _random_box(rng, h, w)))

    if many:  # more than 300 detections on one or two images: LVISResults keeps the top 300
        for index in rng.choice(len(images), 1 + (rng.random() < 0.3), replace=False):
            image = images[int(index)]
            h, w = image["height"], image["width"]
            r = roles(image)
            outside = [d for d in results if d["image_id"] != image["id"]]
            target = int(rng.integers(301, 346))
            anns = by_image[image["id"]]
            while len(results) - len(outside) < target:
                if anns and not only_unverified and rng.random() < 0.15:
                    ann = anns[int(rng.integers(len(anns)))]
                    box, mask = _near(rng, ann, masks[ann["id"]], h, w)
                    add(image, ann["category_id"], box, mask)
                    continue
                category = false_positive_category(r)
                if category is None:
                    category = cat_ids[int(rng.integers(len(cat_ids)))]
                add(image, category, *_random_box(rng, h, w))

    if not results:  # LVISResults needs at least one record
        image = images[0]
        add(image, cat_ids[0], *_random_box(rng, image["height"], image["width"]))
    if rng.random() < 0.5:  # images interleaved: LVISResults groups them by first appearance
        rng.shuffle(results)
    return gt, results


# ----------------------------------------------------------------------------- reference


def reference_metrics(
    gt: dict, results: list[dict], iou_type: str, segm_area: str = "mask"
) -> dict[str, float]:
    """The official metrics: ``lvis.LVISResults`` + ``LVISEval(...).run()`` on deep copies.

    ``segm_area="mask"`` (segm only): the results' boxes are dropped first, so that
    ``LVISResults`` takes each result's area from its mask (as detectron2 does); ``"box"``
    keeps the records as they are (area ``w * h`` of the box).
    """
    import lvis

    from lvisnb.annotations.lvis_compat import LVISEval, LVISFromDict

    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if segm_area not in ("mask", "box"):
        raise ValueError(f"segm_area must be 'mask' or 'box', got {segm_area!r}")
    records = copy.deepcopy(results)
    if iou_type == "segm" and segm_area == "mask":
        for record in records:
            record.pop("bbox", None)
    logger = logging.getLogger("lvis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # lvis calls logger.warn
            lvis_gt = LVISFromDict(copy.deepcopy(gt))
            lvis_dt = lvis.LVISResults(lvis_gt, records, max_dets=MAX_DETS_PER_IMAGE)
            ev = LVISEval(lvis_gt, lvis_dt, iou_type)
            ev.run()
            return {name: float(value) for name, value in ev.get_results().items()}
    finally:
        logger.setLevel(level)


# ----------------------------------------------------------------------------- features


def case_features(gt: dict, results: list[dict]) -> Counter:
    """How many of each awkward kind a case holds (keys listed in the code below)."""
    features = Counter()
    images = {i["id"]: i for i in gt["images"]}
    positive = {(a["image_id"], a["category_id"]) for a in gt["annotations"]}
    with_gt = {a["category_id"] for a in gt["annotations"]}
    images_with_gt = {a["image_id"] for a in gt["annotations"]}
    features["categories_without_gt"] = sum(c["id"] not in with_gt for c in gt["categories"])
    features["images_without_gt"] = sum(i not in images_with_gt for i in images)
    features["frequencies"] = len({c["frequency"] for c in gt["categories"]})
    for ann in gt["annotations"]:
        area = ann["area"]
        size = "small" if area < SMALL_MAX else "medium" if area < MEDIUM_MAX else "large"
        features[f"gt_{size}"] += 1
        features["gt_area_on_range_end"] += area in (SMALL_MAX, MEDIUM_MAX)
    per_image = Counter(d["image_id"] for d in results)
    features["images_over_300"] = sum(n > MAX_DETS_PER_IMAGE for n in per_image.values())
    areas = [float(mask_utils.area(d["segmentation"])) for d in results]
    seen = Counter()
    by_score = {}
    for det, mask_area in zip(results, areas, strict=True):
        image = images[det["image_id"]]
        x, y, w, h = det["bbox"]
        key = (det["image_id"], det["category_id"])
        features["empty_masks"] += int(mask_area) == 0
        features["zero_box_sides"] += w == 0 or h == 0
        features["zero_box_fine_mask"] += (w == 0 or h == 0) and int(mask_area) > 0
        features["boxes_crossing_border"] += min(x, y) < 0 or (
            x + w > image["width"] or y + h > image["height"]
        )
        features["box_mask_disagree"] += w * h > 0 and not 0.25 <= mask_area / (w * h) <= 4
        features["box_area_on_range_end"] += w * h in (SMALL_MAX, MEDIUM_MAX)
        features["negative_dets"] += det["category_id"] in image["neg_category_ids"]
        features["not_exhaustive_dets"] += (
            det["category_id"] in image["not_exhaustive_category_ids"]
        )
        features["unverified_dets"] += (
            key not in positive and det["category_id"] not in image["neg_category_ids"]
        )
        record = (key, det["score"], tuple(det["bbox"]), det["segmentation"]["counts"])
        features["duplicates"] += seen[record] > 0
        seen[record] += 1
        by_score.setdefault((det["category_id"], det["score"]), set()).add(record)
    features["score_ties"] = sum(len(records) > 1 for records in by_score.values())
    return features
