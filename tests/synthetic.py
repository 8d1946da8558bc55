"""Synthetic test data: LVIS results (a perturbed copy of a ground truth plus false positives)
and Mask R-CNN training batches."""

import math

import numpy as np
import pycocotools.mask as mask_utils
import torch


def rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def box_mask(h: int, w: int, x: float, y: float, bw: float, bh: float) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[int(y) : int(math.ceil(y + bh)), int(x) : int(math.ceil(x + bw))] = True
    return mask


def toy_detections(gt: dict, seed: int = 0) -> list[dict]:
    """Perturbed GT (boxes jittered, masks shifted; 10% missed) plus false positives: on
    negative categories, on not-exhaustive categories, on unverified categories (dropped by
    LVIS), and 400+ on a few images (cut to 300). Scores are continuous, so no ties."""
    rng = np.random.default_rng(seed)
    images = {i["id"]: i for i in gt["images"]}
    category_ids = [c["id"] for c in gt["categories"]]
    results = []
    for ann in gt["annotations"]:
        if rng.random() < 0.1:
            continue
        image = images[ann["image_id"]]
        h, w = image["height"], image["width"]
        mask = mask_utils.decode(
            mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
        )
        x, y, bw, bh = ann["bbox"]
        dy, dx = np.round(rng.normal(0, 0.08, 2) * (bh, bw)).astype(int)
        shifted = np.zeros_like(mask)
        ys, xs = np.nonzero(mask)
        shifted[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)] = 1
        box = [x + dx + rng.normal(0, 1), y + dy + rng.normal(0, 1)]
        box += [bw * rng.uniform(0.9, 1.1), bh * rng.uniform(0.9, 1.1)]
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "score": float(rng.uniform(0.2, 1.0)),
                "bbox": box,
                "segmentation": rle(shifted),
            }
        )
    for image in gt["images"]:
        h, w = image["height"], image["width"]
        for _ in range(420 if image["id"] % 20 == 1 else 8):
            kind = rng.integers(4)
            if kind == 0 and image["neg_category_ids"]:
                category = int(rng.choice(image["neg_category_ids"]))
            elif kind == 1 and image["not_exhaustive_category_ids"]:
                category = int(rng.choice(image["not_exhaustive_category_ids"]))
            else:  # a positive, negative or (mostly) unverified category
                category = int(rng.choice(category_ids))
            bw, bh = np.exp(rng.uniform(np.log(4), np.log(0.8 * min(h, w)), 2))
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            results.append(
                {
                    "image_id": image["id"],
                    "category_id": category,
                    "score": float(rng.uniform(0.0, 0.9)),
                    "bbox": [x, y, bw, bh],
                    "segmentation": rle(box_mask(h, w, x, y, bw, bh)),
                }
            )
    return results


MASK_RCNN_LOSSES = {  # what torchvision's MaskRCNN returns in training mode
    "loss_classifier",
    "loss_box_reg",
    "loss_mask",
    "loss_objectness",
    "loss_rpn_box_reg",
}


def detection_batch(seed=0, sizes=((160, 200), (176, 144))):
    """Mask R-CNN training inputs: random images of ``sizes`` (H, W) and two box-shaped
    instances each, labels ``1 + i`` and ``5`` (boxes XYXY pixels, uint8 masks)."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for i, (h, w) in enumerate(sizes):
        images.append(torch.rand(3, h, w, generator=g))
        boxes = torch.tensor([[10.0, 20.0, 90.0, 120.0], [50.0, 30.0, w - 5.0, h - 10.0]])
        masks = torch.zeros(2, h, w, dtype=torch.uint8)
        for k, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
            masks[k, y0:y1, x0:x1] = 1
        labels = torch.tensor([1 + i, 5], dtype=torch.int64)
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
    return images, targets
