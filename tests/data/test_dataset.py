import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from torchvision import tv_tensors

from lvisnb.data.dataset import (
    CategoryMapping,
    ImageReadError,
    LVISDetection,
    collate,
    decode_masks,
)
from lvisnb.data.transforms import eval_transforms, train_transforms


def test_mapping_round_trip_and_errors():
    mapping = CategoryMapping((3, 17, 1203))
    assert mapping.num_classes == 3
    assert mapping.to_labels([1203, 3, 17]).tolist() == [3, 1, 2]
    assert mapping.to_category_ids(torch.tensor([2, 3, 1])).tolist() == [17, 1203, 3]
    assert mapping.to_labels([]).shape == (0,)
    with pytest.raises(KeyError, match="category id 4 "):
        mapping.to_labels([3, 4])
    with pytest.raises(KeyError, match="label 0"):
        mapping.to_category_ids([0])
    with pytest.raises(ValueError):
        CategoryMapping((5, 2))


def test_decode_masks_polygon_rle_and_uncompressed():
    polygon = [[2, 2, 8, 2, 8, 6, 2, 6]]
    dense = np.zeros((10, 12), dtype=np.uint8)
    dense[1:4, 5:9] = 1
    rle = mask_utils.encode(np.asfortranarray(dense))
    uncompressed = {"size": [10, 12], "counts": [15, 3, 7, 3, 7, 3, 7, 3, 72]}
    masks = decode_masks([polygon, rle, uncompressed], 10, 12)
    assert masks.shape == (3, 10, 12) and masks.dtype == np.uint8
    assert masks[0].sum() == mask_utils.area(mask_utils.frPyObjects(polygon, 10, 12))[0]
    assert (masks[1] == dense).all()
    assert masks[2].sum() == 12


def test_item_targets_match_annotations(toy_root, toy_train):
    ds = LVISDetection(toy_train, toy_root)
    raw = json.loads(toy_train.read_text())
    image, target = ds[0]
    info = ds.image_info(0)
    anns = [a for a in raw["annotations"] if a["image_id"] == info["id"]]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
    assert image.shape == (3, info["height"], info["width"])
    assert target["boxes"].dtype == torch.float32 and target["boxes"].format.value == "XYXY"
    x, y, w, h = anns[0]["bbox"]
    assert target["boxes"][0].tolist() == pytest.approx([x, y, x + w, y + h], abs=1e-3)
    assert ds.mapping.to_category_ids(target["labels"]).tolist() == [a["category_id"] for a in anns]
    assert target["masks"].shape == (len(anns), info["height"], info["width"])
    assert target["masks"].sum(dim=(1, 2)).tolist() == pytest.approx([a["area"] for a in anns])
    assert target["image_id"] == info["id"]
    sets = ds.category_sets()
    assert sets[0] == {a["category_id"] for a in anns}


def test_empty_image_has_empty_tensors(tmp_path, toy_root, toy_val):
    raw = json.loads(toy_val.read_text())
    first = raw["images"][0]["id"]
    raw["annotations"] = [a for a in raw["annotations"] if a["image_id"] != first]
    path = tmp_path / "val_empty.json"
    path.write_text(json.dumps(raw))
    ds = LVISDetection(path, toy_root, transforms=eval_transforms())
    index = ds.image_ids.index(first)
    image, target = ds[index]
    assert image.dtype == torch.float32
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["masks"].shape == (0, *image.shape[1:])
    assert len(LVISDetection(path, toy_root, skip_empty=True)) == len(ds) - 1


def test_missing_and_broken_images_are_named(tmp_path, toy_root, toy_val):
    ds = LVISDetection(toy_val, tmp_path)  # wrong root: every image is missing
    with pytest.raises(ImageReadError, match=rf"image id {ds.image_ids[0]}.*val2017"):
        ds[0]
    broken_root = tmp_path / "broken"
    info = LVISDetection(toy_val, toy_root).image_info(0)
    target = broken_root / "val2017" / f"{info['id']:012d}.jpg"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match=rf"cannot decode image id {info['id']} at .*broken"):
        LVISDetection(toy_val, broken_root)[0]


def test_train_transforms_move_boxes_and_masks_together(toy_root, toy_train):
    torch.manual_seed(0)
    ds = LVISDetection(toy_train, toy_root, transforms=train_transforms((160, 200), 260, 1.0))
    image, target = ds[0]
    assert min(image.shape[1:]) in (160, 200) or max(image.shape[1:]) <= 260
    assert max(image.shape[1:]) <= 260 and image.dtype == torch.float32
    assert target["masks"].shape[1:] == image.shape[1:]
    for box, mask in zip(target["boxes"], target["masks"], strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs) < 20:
            continue
        assert box[0] == pytest.approx(xs.min().item(), abs=2.5)
        assert box[2] == pytest.approx(xs.max().item() + 1, abs=2.5)
        assert box[1] == pytest.approx(ys.min().item(), abs=2.5)


def test_collate():
    images, targets = collate([(1, "a"), (2, "b")])
    assert images == (1, 2) and targets == ("a", "b")


def test_a_missing_image_names_the_file_and_what_the_root_should_be(toy_val, tmp_path):
    from lvisnb.data.dataset import ImageReadError

    dataset = LVISDetection(toy_val, tmp_path / "train2017")  # the split folder, not the root
    with pytest.raises(ImageReadError) as error:
        dataset[0]
    text = str(error.value)
    assert str(toy_val) in text and "coco_url's last two parts" in text
    assert "folder holding train2017/ and val2017/" in text


def test_check_images_names_how_many_are_missing_and_the_first(toy_val, toy_root, tmp_path):
    """Every image is looked for before any is read: a copy of the image folder with its
    second and fifth images removed is refused naming both counts and the first missing."""
    from lvisnb.data.dataset import ImageReadError

    LVISDetection(toy_val, toy_root).check_images()  # all there: no error
    partial = tmp_path / "root"
    (partial / "val2017").mkdir(parents=True)
    dataset = LVISDetection(toy_val, toy_root)
    for index in range(len(dataset)):
        info = dataset.image_info(index)
        source = toy_root / "val2017" / f"{info['id']:012d}.jpg"
        if index not in (1, 4):
            (partial / "val2017" / source.name).symlink_to(source)
    with pytest.raises(ImageReadError) as error:
        LVISDetection(toy_val, partial).check_images()
    second = dataset.image_info(1)["id"]
    text = str(error.value)
    assert f"2 of {len(dataset)} images are not under {partial}" in text
    assert f"image id {second}: {partial / 'val2017' / f'{second:012d}.jpg'}" in text
