import json
from pathlib import Path

import lvis
import pytest

from lvisnb.annotations import validate as data


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
    gt = data.load_lvis(toy_train)
    raw = json.loads(toy_train.read_text())
    assert isinstance(gt, lvis.LVIS)
    assert len(gt.anns) == len(raw["annotations"]) > 0
    assert set(gt.get_cat_ids()) == {c["id"] for c in raw["categories"]}


def test_image_paths_v1_and_v05(tmp_path):
    v1 = {"id": 1, "coco_url": "http://images.cocodataset.org/train2017/000000391895.jpg"}
    v05 = {
        "id": 1,
        "file_name": "COCO_val2014_000000391895.jpg",
        "coco_url": "http://h/val2017/x.jpg",
    }
    assert data.image_relpath(v1) == "train2017/000000391895.jpg"
    assert data.image_relpath(v05) == "val2017/x.jpg"  # coco_url first, as detectron2
    assert data.image_path(v1, tmp_path) == tmp_path / "train2017" / "000000391895.jpg"


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
    assert data.image_relpath({"id": 1, "file_name": file_name}) == expected
    assert data.image_relpath({"id": 1, "file_name": file_name, "coco_url": ""}) == expected


def test_toy_images_resolve_under_the_root(toy_root, toy_val):
    gt = data.load_lvis(toy_val)
    for image in list(gt.imgs.values())[:5]:
        assert data.image_path(image, toy_root).is_file()


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.json"
    for loader in (data.load_lvis, data.read_tables):
        with pytest.raises(FileNotFoundError, match="nope.json"):
            loader(missing)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    for loader in (data.load_lvis, data.read_tables):
        with pytest.raises(data.LVISFormatError, match=r"broken.json: invalid JSON at line 2"):
            loader(path)


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
    for loader in (data.load_lvis, data.read_tables):  # the same message from both
        with pytest.raises(
            data.LVISFormatError, match=rf"ann.json: {section}\[1\] \(id=2\) .*'{key}'"
        ):
            loader(path)


def test_image_without_any_path_field(tmp_path, tiny):
    del tiny["images"][0]["coco_url"]
    path = _write(tmp_path, tiny)
    with pytest.raises(data.LVISFormatError, match=r"images\[0\].*file_name.*coco_url"):
        data.load_lvis(path)
    with pytest.raises(data.LVISFormatError, match=r"images\[0\].*file_name.*coco_url"):
        data.read_tables(path)


def test_bad_frequency_value(tmp_path, tiny):
    tiny["categories"][1]["frequency"] = "rare"
    path = _write(tmp_path, tiny)
    expected = r"categories\[1\] \(id=2\) field 'frequency' is 'rare'"
    for loader in (data.load_lvis, data.read_tables):
        with pytest.raises(data.LVISFormatError, match=expected):
            loader(path)


def test_read_tables_agrees_with_lvis_api(toy_train):
    tables = data.read_tables(toy_train)
    gt = data.load_lvis(toy_train)
    assert len(tables.annotations) == len(gt.anns)
    assert len(tables.images) == len(gt.imgs)
    per_cat = tables.annotations.groupby("category_id").size()
    for cat_id, count in per_cat.items():
        assert count == len(gt.get_ann_ids(cat_ids=[cat_id]))
    first = gt.anns[int(tables.annotations["id"].iloc[0])]
    row = tables.annotations.iloc[0]
    assert [row.x, row.y, row.w, row.h] == pytest.approx(first["bbox"])
    assert row.area == pytest.approx(first["area"])
    image = gt.imgs[int(tables.images["id"].iloc[0])]
    assert tables.images["neg_category_ids"].iloc[0] == image["neg_category_ids"]
    assert tables.images["path"].iloc[0] == data.image_relpath(image)


def test_default_image_root_of_a_file_under_the_filesystem_root():
    from lvisnb.annotations.validate import default_image_root

    assert default_image_root("/lvis_v1_val.json") == Path("/")
    assert default_image_root("/data/annotations/v.json") == Path("/data")
