import hashlib
import json

import lvis
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from lvisnb.annotations import categories as lvis_categories
from lvisnb.annotations import toy


def _digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path):
    sizes = {"num_train_images": 150, "num_val_images": 40, "num_categories": 12}
    toy.make_toy_lvis(tmp_path / "a", seed=3, **sizes)
    toy.make_toy_lvis(tmp_path / "b", seed=3, workers=1, **sizes)
    toy.make_toy_lvis(tmp_path / "c", seed=4, **sizes)
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a[toy.TRAIN_FILE] != c[toy.TRAIN_FILE]


def test_official_lvis_api_loads_the_files_unchanged(toy_train, toy_val):
    for path in (toy_train, toy_val):
        gt = lvis.LVIS(str(path))
        assert gt.dataset["images"] and gt.dataset["annotations"]


def test_frequency_groups_follow_lvis_rules_and_proportions(toy_train, toy_val):
    train = json.loads(toy_train.read_text())
    images_of = {}
    for ann in train["annotations"]:
        images_of.setdefault(ann["category_id"], set()).add(ann["image_id"])
    shares = {"r": 0, "c": 0, "f": 0}
    for cat in train["categories"]:
        assert cat["image_count"] == len(images_of[cat["id"]])
        assert cat["frequency"] == lvis_categories.frequency_of(cat["image_count"])
        shares[cat["frequency"]] += 1 / len(train["categories"])
    # LVIS v1: 28% rare, 38% common, 34% frequent
    assert shares["r"] == pytest.approx(0.28, abs=0.08)
    assert shares["c"] == pytest.approx(0.38, abs=0.08)
    assert shares["f"] == pytest.approx(0.34, abs=0.08)
    # names and ids are real LVIS v1 categories
    real = lvis_categories.categories("v1").set_index("id")["name"]
    assert all(real[c["id"]] == c["name"] for c in train["categories"])
    # val: same categories, every frequency group has instances there
    val = json.loads(toy_val.read_text())
    assert val["categories"] == train["categories"]
    freq = {c["id"]: c["frequency"] for c in val["categories"]}
    assert {freq[a["category_id"]] for a in val["annotations"]} == {"r", "c", "f"}


def test_default_long_tail_counts_follow_lvis_v1():
    cats = toy.choose_categories(40)
    real = np.array([c.lvis_v1_train_image_count for c in cats])
    counts = toy.target_image_counts(real, 1000, 0.5)
    groups = [lvis_categories.frequency_of(int(n)) for n in counts]
    assert groups == [lvis_categories.frequency_of(int(n)) for n in real]
    assert counts.max() == 500 and counts.min() >= 1
    # order is preserved: more real images -> at least as many toy images
    order = np.argsort(real)
    assert np.all(np.diff(counts[order]) >= 0)


def test_boxes_areas_and_masks_are_consistent(toy_train):
    gt = json.loads(toy_train.read_text())
    sizes = {i["id"]: (i["height"], i["width"]) for i in gt["images"]}
    for ann in gt["annotations"][:300]:
        h, w = sizes[ann["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
        assert mask_utils.area(rle) == pytest.approx(ann["area"])
        assert list(mask_utils.toBbox(rle)) == pytest.approx(ann["bbox"], abs=0.01)
        x, y, bw, bh = ann["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h
        for polygon in ann["segmentation"]:
            assert len(polygon) >= 6 and len(polygon) % 2 == 0


def test_federated_labels(toy_train):
    gt = json.loads(toy_train.read_text())
    present = {}
    for ann in gt["annotations"]:
        present.setdefault(ann["image_id"], set()).add(ann["category_id"])
    with_neg = with_not_exhaustive = 0
    for image in gt["images"]:
        pos = present.get(image["id"], set())
        assert pos, "every toy image has annotations"
        assert not pos & set(image["neg_category_ids"])
        assert set(image["not_exhaustive_category_ids"]) <= pos
        with_neg += bool(image["neg_category_ids"])
        with_not_exhaustive += bool(image["not_exhaustive_category_ids"])
    assert with_neg == len(gt["images"])
    assert with_not_exhaustive > 0


def test_is_complete_and_ensure(tmp_path, monkeypatch):
    assert not toy.is_complete(tmp_path)
    monkeypatch.setenv("LVISNB_TOY_ROOT", str(tmp_path / "toy"))
    assert toy.default_root() == tmp_path / "toy"


@pytest.mark.parametrize("images", [0, -3])
def test_a_size_of_zero_is_refused_not_read_as_the_default(tmp_path, images):
    from lvisnb.annotations import toy

    with pytest.raises(ValueError, match="num_train_images >= 1"):
        toy.make_toy_lvis(tmp_path / "toy", num_train_images=images, num_val_images=2)
    assert not (tmp_path / "toy").exists()
