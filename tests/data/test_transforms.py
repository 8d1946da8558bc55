"""Training transforms keep objects at the image border (issue 11): boxes are clamped to the
image before ``SanitizeBoundingBoxes``, which drops every box with a coordinate outside it.

Every case goes through the real path: an image file and an LVIS annotation file written to
``tmp_path``, :class:`LVISDetection` and :func:`train_transforms`. Expected boxes are computed
by hand from the file's XYWH boxes (XYXY = x, y, x + w, y + h), the resize ratios and the clamp.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from lvisnb.data.dataset import LVISDetection
from lvisnb.data.transforms import eval_transforms, train_transforms

WIDTH, HEIGHT = 640, 480


def _box_polygon(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _write_lvis(tmp_path, bboxes: list[list[float]]):
    """One 640x480 image whose annotations are ``bboxes`` (XYWH), each with the polygon of its
    box as segmentation, category ids 10, 20, 30, ... in order (labels 1, 2, 3, ...)."""
    (tmp_path / "val2017").mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "val2017" / "000000000001.png")
    categories = [
        {"id": 10 * (i + 1), "name": f"c{i}", "frequency": "f"} for i in range(len(bboxes))
    ]
    annotations = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": 10 * (i + 1),
            "bbox": bbox,
            "area": float(bbox[2] * bbox[3]),
            "segmentation": _box_polygon(*bbox),
        }
        for i, bbox in enumerate(bboxes)
    ]
    image = {
        "id": 1,
        "width": WIDTH,
        "height": HEIGHT,
        "coco_url": "http://images.cocodataset.org/val2017/000000000001.png",
    }
    path = tmp_path / "lvis.json"
    path.write_text(
        json.dumps({"images": [image], "annotations": annotations, "categories": categories})
    )
    return path


def _mask_extent(mask: torch.Tensor) -> list[int]:
    """XYXY of a mask's pixels (x2, y2 one past the last pixel)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


# The minimal case: bbox [500, 100, 140.3, 50] (XYWH) -> XYXY [500, 100, 640.3, 150],
# x2 0.3 px past the right border of the 640-wide image.
MINIMAL = [500.0, 100.0, 140.3, 50.0]


@pytest.mark.parametrize(
    ("scale", "flip", "size", "box"),
    [
        # no resize (shorter side stays 480): clamped to x2 = 640
        (480, 0.0, (480, 640), [500.0, 100.0, 640.0, 150.0]),
        # halved: [250, 50, 320.15, 75] -> x2 clamped to 320
        (240, 0.0, (240, 320), [250.0, 50.0, 320.0, 75.0]),
        # halved and flipped: x1 = 320 - 320.15 = -0.15 -> clamped to 0; x2 = 320 - 250 = 70
        (240, 1.0, (240, 320), [0.0, 50.0, 70.0, 75.0]),
        # shorter side 640: W = int(640 * 640 / 480) = 853, x ratio 853 / 640, y ratio 4 / 3;
        # x1 = 500 * 853 / 640 = 666.40625, x2 = 640.3 * 853 / 640 = 853.40 -> clamped to 853
        (640, 0.0, (640, 853), [666.40625, 400.0 / 3.0, 853.0, 200.0]),
    ],
)
def test_minimal_border_box_is_kept_with_label_and_mask(tmp_path, scale, flip, size, box):
    path = _write_lvis(tmp_path, [MINIMAL])
    transforms = train_transforms(scales=(scale,), max_size=1333, flip_prob=flip)
    ds = LVISDetection(path, tmp_path, transforms=transforms)
    # the dataset's targets are the file's boxes, unclamped (clamping is the transforms' job)
    assert ds.target(0)["boxes"].tolist() == [pytest.approx([500.0, 100.0, 640.3, 150.0])]
    image, target = ds[0]
    assert tuple(image.shape[1:]) == size
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format.value == "XYXY"
    assert tuple(boxes.canvas_size) == size
    assert boxes.tolist() == [pytest.approx(box, abs=1e-4)]
    assert target["labels"].tolist() == [1]
    assert ds.mapping.to_category_ids(target["labels"]).tolist() == [10]
    masks = target["masks"]
    assert masks.shape == (1, *size) and masks.sum() > 0
    # the mask covers the box, up to the rasterisation and the nearest-neighbour resize
    assert _mask_extent(masks[0]) == pytest.approx(box, abs=1.5)


def test_boxes_across_borders_kept_outside_and_slivers_dropped(tmp_path):
    path = _write_lvis(
        tmp_path,
        [
            MINIMAL,  # label 1: right border -> kept
            [-0.4, -0.6, 100.4, 60.6],  # label 2: XYXY [-0.4, -0.6, 100, 60], left/top border
            [650.0, 100.0, 20.0, 30.0],  # label 3: entirely right of the image -> dropped
            [639.5, 200.0, 10.0, 10.0],  # label 4: 0.5 px inside the image -> dropped
            [200.0, 300.0, 40.0, 20.0],  # label 5: inside -> kept as it is
        ],
    )
    ds = LVISDetection(path, tmp_path, transforms=train_transforms((240,), 1333, 0.0))
    image, target = ds[0]
    assert tuple(image.shape[1:]) == (240, 320)  # ratio 1/2
    # 1: [250, 50, 320.15, 75] -> [250, 50, 320, 75]
    # 2: [-0.2, -0.3, 50, 30] -> [0, 0, 50, 30]
    # 3: [325, 50, 335, 65] -> [320, 50, 320, 65]: zero width, dropped
    # 4: [319.75, 100, 324.75, 105] -> [319.75, 100, 320, 105]: 0.25 px wide, dropped
    # 5: [100, 150, 120, 160]
    expected = [[250.0, 50.0, 320.0, 75.0], [0.0, 0.0, 50.0, 30.0], [100.0, 150.0, 120.0, 160.0]]
    assert target["boxes"].tolist() == [pytest.approx(b, abs=1e-4) for b in expected]
    assert target["labels"].tolist() == [1, 2, 5]
    assert ds.mapping.to_category_ids(target["labels"]).tolist() == [10, 20, 50]
    masks = target["masks"]
    assert masks.shape == (3, 240, 320)
    for mask, box in zip(masks, expected, strict=True):  # each mask stays with its box
        assert _mask_extent(mask) == pytest.approx(box, abs=1.5)


def test_left_top_border_box_flipped(tmp_path):
    # XYXY [-0.4, -0.6, 100, 60] -> halved [-0.2, -0.3, 50, 30] -> flipped in a 320-wide
    # image [270, -0.3, 320.2, 30] -> clamped [270, 0, 320, 30]
    path = _write_lvis(tmp_path, [[-0.4, -0.6, 100.4, 60.6]])
    ds = LVISDetection(path, tmp_path, transforms=train_transforms((240,), 1333, 1.0))
    _, target = ds[0]
    assert target["boxes"].tolist() == [pytest.approx([270.0, 0.0, 320.0, 30.0], abs=1e-4)]
    assert target["labels"].tolist() == [1]
    assert target["masks"].shape == (1, 240, 320) and target["masks"].sum() > 0


def test_only_degenerate_boxes_leave_an_empty_target(tmp_path):
    path = _write_lvis(tmp_path, [[650.0, 100.0, 20.0, 30.0], [-30.0, 10.0, 29.5, 5.0]])
    ds = LVISDetection(path, tmp_path, transforms=train_transforms((480,), 1333, 0.0))
    image, target = ds[0]  # the second ends at x = -0.5: clamped to [0, 0] wide
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["masks"].shape == (0, *image.shape[1:])


def test_clamps_boxes_whose_clamping_mode_is_off():
    """``train_transforms`` clamps even boxes made with ``clamping_mode=None`` (torchvision
    >= 0.23; ``ClampBoundingBoxes``' default ``"auto"`` would leave those alone)."""
    try:
        boxes = tv_tensors.BoundingBoxes(
            [[500.0, 100.0, 640.3, 150.0]],
            format="XYXY",
            canvas_size=(HEIGHT, WIDTH),
            clamping_mode=None,
        )
    except TypeError:
        pytest.skip("this torchvision has no clamping_mode")
    image = tv_tensors.Image(torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8))
    masks = tv_tensors.Mask(torch.ones(1, HEIGHT, WIDTH, dtype=torch.uint8))
    target = {"boxes": boxes, "labels": torch.tensor([7]), "masks": masks}
    _, out = train_transforms((480,), 1333, 0.0)(image, target)
    assert out["boxes"].tolist() == [[500.0, 100.0, 640.0, 150.0]]
    assert out["labels"].tolist() == [7] and out["masks"].shape == (1, HEIGHT, WIDTH)


def test_eval_transforms_leave_boxes_alone(tmp_path):
    path = _write_lvis(tmp_path, [MINIMAL])
    image, target = LVISDetection(path, tmp_path, transforms=eval_transforms())[0]
    assert image.dtype == torch.float32 and tuple(image.shape[1:]) == (HEIGHT, WIDTH)
    assert target["boxes"].tolist() == [pytest.approx([500.0, 100.0, 640.3, 150.0])]
    assert target["labels"].tolist() == [1]
