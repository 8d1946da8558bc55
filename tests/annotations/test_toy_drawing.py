"""toy-LVIS's drawing: objects span COCO's sizes, masks are the drawn pixels, parts have no hole."""

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image
from shapely.geometry import Polygon

from lvisnb.annotations import toy, toy_drawing
from lvisnb.annotations.images import image_path


def test_objects_span_coco_size_ranges(toy_train):
    areas = np.array([a["area"] for a in json.loads(toy_train.read_text())["annotations"]])
    small, large = (areas < 32**2).mean(), (areas > 96**2).mean()
    assert small > 0.15 and large > 0.05 and 1 - small - large > 0.15


def test_mask_pixels_are_the_drawn_object(toy_root, toy_val):
    """Inside each visible mask the image shows the category's colour (or its texture shades)."""
    gt = json.loads(toy_val.read_text())
    meta = json.loads((toy_root / toy.META_FILE).read_text())
    colour_of = {
        c["id"]: np.array(toy_drawing.COLOURS[c["colour"]], float) for c in meta["categories"]
    }
    checked = 0
    for image in gt["images"][:20]:
        pixels = np.asarray(Image.open(image_path(image, toy_root)), dtype=float)
        for ann in (a for a in gt["annotations"] if a["image_id"] == image["id"]):
            if ann["area"] < 150:
                continue
            rle = mask_utils.merge(
                mask_utils.frPyObjects(ann["segmentation"], image["height"], image["width"])
            )
            inside = pixels[mask_utils.decode(rle).astype(bool)]
            rgb = colour_of[ann["category_id"]]
            shades = np.stack([rgb, rgb * 0.45, rgb + (255 - rgb) * 0.6])
            nearest = np.linalg.norm(inside[:, None, :] - shades[None], axis=2).min(axis=1)
            assert (nearest < 60).mean() > 0.8, (image["id"], ann["id"])
            checked += 1
    assert checked > 20


def test_hole_free_parts_cover_a_polygon_with_holes():
    square = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    holed = square.difference(Polygon([(2, 2), (4, 2), (4, 4), (2, 4)])).difference(
        Polygon([(6, 6), (8, 6), (8, 8), (6, 8)])
    )
    parts = toy_drawing.hole_free_parts(holed)
    assert all(not p.interiors for p in parts)
    assert sum(p.area for p in parts) == pytest.approx(holed.area)
