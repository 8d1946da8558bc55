from pathlib import Path

import numpy as np
import pytest

from lvisnb.annotations import images
from lvisnb.annotations.image_paths import image_relpath, outside_root
from lvisnb.annotations.images import ImageReadError, image_path, read_record_pixels
from lvisnb.annotations.validate import load_lvis


def test_image_paths_v1_and_v05(tmp_path):
    v1 = {"id": 1, "coco_url": "http://images.cocodataset.org/train2017/000000391895.jpg"}
    v05 = {
        "id": 1,
        "file_name": "COCO_val2014_000000391895.jpg",
        "coco_url": "http://h/val2017/x.jpg",
    }
    assert images.image_relpath(v1) == "train2017/000000391895.jpg"
    assert images.image_relpath(v05) == "val2017/x.jpg"  # coco_url first, as detectron2
    assert images.image_path(v1, tmp_path) == tmp_path / "train2017" / "000000391895.jpg"


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("COCO_val2014_000000266409.jpg", "000000266409.jpg"),  # mmdetection's file_name[-16:]
        ("COCO_train2014_000000000009.jpg", "000000000009.jpg"),
        ("COCO_test2014_000000000001.png", "000000000001.png"),
        ("000000391895.jpg", "000000391895.jpg"),
        ("images/COCO_val2014_000000266409.jpg", "images/COCO_val2014_000000266409.jpg"),
        ("COCO_val2014_notanid.jpg", "COCO_val2014_notanid.jpg"),
    ],
)
def test_file_name_without_coco_url_drops_the_coco_2014_prefix(file_name, expected):
    assert images.image_relpath({"id": 1, "file_name": file_name}) == expected
    assert images.image_relpath({"id": 1, "file_name": file_name, "coco_url": ""}) == expected


def test_toy_images_resolve_under_the_root(toy_root, toy_val):
    gt = load_lvis(toy_val)
    for image in list(gt.imgs.values())[:5]:
        assert images.image_path(image, toy_root).is_file()


def test_default_image_root_of_a_file_under_the_filesystem_root():
    default_image_root = images.default_image_root
    assert default_image_root("/lvis_v1_val.json") == Path("/")
    assert default_image_root("/data/annotations/v.json") == Path("/data")


def test_record_pixels_are_uint8_rgb_of_the_records_size(toy_root, toy_val):
    image = load_lvis(toy_val).dataset["images"][0]
    pixels = images.read_record_pixels(image, toy_root)
    assert pixels.dtype == np.uint8
    assert pixels.shape == (image["height"], image["width"], 3)
    wrong = dict(image, width=image["width"] + 1)
    with pytest.raises(
        images.ImageReadError, match=rf"image id {image['id']} at .* the annotation"
    ):
        images.read_record_pixels(wrong, toy_root)
    with pytest.raises(images.ImageReadError, match=r"not found for image id 7: .*nope.jpg"):
        images.read_pixels(toy_root / "nope.jpg", 7)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"id": 7, "file_name": "../../x.jpg"}, "file_name"),
        ({"id": 7, "file_name": "/etc/passwd"}, "file_name"),
        ({"id": 7, "file_name": "..\\x.jpg"}, "file_name"),
        ({"id": 7, "file_name": "~/x.jpg"}, "file_name"),
        ({"id": 7, "coco_url": "http://images.cocodataset.org/../x.jpg"}, "coco_url"),
    ],
)
def test_a_path_out_of_the_root_is_never_joined(tmp_path, record, field):
    """Records the annotation check refuses, met without it (a record built in code): the
    image is not looked for outside the root, whichever field names it."""
    with pytest.raises(ImageReadError, match=f"image id 7: '{field}' "):
        image_path(record, tmp_path)
    with pytest.raises(ImageReadError, match=f"image id 7: '{field}' "):
        read_record_pixels({**record, "height": 1, "width": 1}, tmp_path)


def test_paths_inside_the_root_are_kept():
    assert outside_root("val2017/000000266409.jpg") is None
    assert outside_root("a..b/x..jpg") is None  # dots inside a name are not a '..' part
    assert image_relpath({"file_name": "COCO_val2014_000000266409.jpg"}) == "000000266409.jpg"
