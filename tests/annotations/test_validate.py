import json

import lvis
import pytest

from lvisnb.annotations.json_file import LVISFormatError
from lvisnb.annotations.tables import read_tables
from lvisnb.annotations.validate import load_lvis


def _write(tmp_path, dataset, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(dataset))
    return path


@pytest.fixture
def tiny():
    return {
        "images": [
            {"id": 1, "width": 64, "height": 48, "coco_url": "http://x/val2017/000000000001.jpg"},
            {
                "id": 2,
                "width": 64,
                "height": 48,
                "coco_url": "http://x/val2017/000000000002.jpg",
                "neg_category_ids": [2],
                "not_exhaustive_category_ids": [1],
            },
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [1, 2, 10, 10],
                "area": 100.0,
                "segmentation": [[1, 2, 11, 2, 11, 12, 1, 12]],
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 1,
                "bbox": [5, 5, 4, 2],
                "area": 8.0,
                "segmentation": [[5, 5, 9, 5, 9, 7, 5, 7]],
            },
        ],
        "categories": [
            {"id": 1, "name": "apple", "frequency": "f"},
            {"id": 2, "name": "zebra", "frequency": "r"},
        ],
    }


def test_load_lvis_returns_official_object(toy_train):
    gt = load_lvis(toy_train)
    raw = json.loads(toy_train.read_text())
    assert isinstance(gt, lvis.LVIS)
    assert len(gt.anns) == len(raw["annotations"]) > 0
    assert set(gt.get_cat_ids()) == {c["id"] for c in raw["categories"]}


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("annotations", "bbox"),
        ("annotations", "segmentation"),
        ("images", "height"),
        ("categories", "frequency"),
    ],
)
def test_missing_key_names_file_record_and_key(tmp_path, tiny, section, key):
    del tiny[section][1][key]
    path = _write(tmp_path, tiny)
    for loader in (load_lvis, read_tables):  # the same message from both
        with pytest.raises(LVISFormatError, match=rf"ann.json: {section}\[1\] \(id=2\) .*'{key}'"):
            loader(path)


def test_image_without_any_path_field(tmp_path, tiny):
    del tiny["images"][0]["coco_url"]
    path = _write(tmp_path, tiny)
    with pytest.raises(LVISFormatError, match=r"images\[0\].*file_name.*coco_url"):
        load_lvis(path)
    with pytest.raises(LVISFormatError, match=r"images\[0\].*file_name.*coco_url"):
        read_tables(path)


def test_bad_frequency_value(tmp_path, tiny):
    tiny["categories"][1]["frequency"] = "rare"
    path = _write(tmp_path, tiny)
    expected = r"categories\[1\] \(id=2\) field 'frequency' is 'rare'"
    for loader in (load_lvis, read_tables):
        with pytest.raises(LVISFormatError, match=expected):
            loader(path)
