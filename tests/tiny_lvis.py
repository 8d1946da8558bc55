"""A tiny LVIS ground truth and result records, written by hand for evaluation and CLI tests."""

from synthetic import box_mask, rle


def image(image_id, neg=(), not_exhaustive=(), size=(100, 100)):
    return {
        "id": image_id,
        "height": size[0],
        "width": size[1],
        "coco_url": f"http://x/val2017/{image_id:012d}.jpg",
        "neg_category_ids": list(neg),
        "not_exhaustive_category_ids": list(not_exhaustive),
    }


def ann(ann_id, image_id, category_id, x, y, w, h):
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x, y, w, h],
        "area": float(w * h),
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
    }


CATEGORIES = [
    {"id": 1, "name": "abacus", "frequency": "r", "image_count": 3},
    {"id": 2, "name": "banana", "frequency": "c", "image_count": 40},
    {"id": 3, "name": "cup", "frequency": "f", "image_count": 900},
]


def tiny_gt():
    return {
        "images": [image(1, neg=[2]), image(7, size=(50, 60))],
        "annotations": [ann(1, 1, 1, 10, 10, 30, 30)],
        "categories": CATEGORIES,
    }


def good(**changes):
    record = {
        "image_id": 1,
        "category_id": 1,
        "score": 0.5,
        "bbox": [10.0, 10.0, 30.0, 30.0],
        "segmentation": rle(box_mask(100, 100, 10, 10, 30, 30)),
    }
    return record | changes
