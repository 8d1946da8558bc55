"""The scene of notebook 04 checks results as the evaluator does, and draws box-only results."""

import json

import lvis
import matplotlib
import numpy as np
import pytest
from synthetic import box_mask, rle

from lvisnb import browse
from lvisnb.scene import load_scene

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def val(toy_val):
    return json.loads(toy_val.read_text())


def _records(val, boxes=True, masks=True, n=40):
    images = {i["id"]: i for i in val["images"]}
    out = []
    for ann in val["annotations"][:n]:
        image = images[ann["image_id"]]
        record = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 0.9}
        if boxes:
            record["bbox"] = list(ann["bbox"])
        if masks:
            mask = box_mask(image["height"], image["width"], *ann["bbox"])
            record["segmentation"] = rle(mask)
        out.append(record)
    return out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"bbox": [1, 2, -3, 4]}, r"results\[3\].*'bbox' has a negative width"),
        ({"score": True}, r"results\[3\].*'score' must be a number, got True"),
        ({"segmentation": {"size": [1, 1], "counts": "0"}}, r"results\[3\].*segmentation.size"),
    ],
)
def test_scene_rejects_what_evaluation_rejects(toy_val, val, change, expected):
    records = _records(val)
    records[3] |= change
    with pytest.raises(ValueError, match=expected):
        load_scene(toy_val, results=records)


@pytest.mark.parametrize("counts", ["garbage~~", "truncated"])
def test_scene_rejects_a_garbage_or_truncated_rle_without_hanging(toy_val, val, counts):
    records = _records(val)
    good = records[3]["segmentation"]["counts"]
    records[3]["segmentation"]["counts"] = "~~~" if counts == "garbage~~" else good[:-3] + "o"
    with pytest.raises(ValueError, match=r"results\[3\].*segmentation.counts.*not a valid"):
        load_scene(toy_val, results=records)


def test_scene_results_must_be_a_list_or_a_path(toy_val, val):
    with pytest.raises(TypeError, match="path to an LVIS results JSON file or a list.*dict"):
        load_scene(toy_val, results={"annotations": _records(val)})


def test_box_only_results_get_box_verdicts_and_draw(toy_val, val):
    scene = load_scene(toy_val, results=_records(val, masks=False))
    assert not scene.has_masks
    image_id = val["annotations"][0]["image_id"]
    counts = scene.verdict(image_id).counts()  # boxes: every box is its GT's, all matched
    assert counts["matched"] == len(scene.predictions(image_id)) > 0
    with pytest.raises(ValueError, match="no masks.*iou_type='bbox'"):
        scene.verdict(image_id, iou_type="segm")
    figure = browse.view_grid(scene, [image_id])
    assert len(figure.axes) == len(browse.VIEWS)


def test_polygon_results_are_accepted_and_drawn(toy_val, val):
    records = _records(val, n=5)
    x, y, w, h = records[0]["bbox"]
    records[0]["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    scene = load_scene(toy_val, results=records)
    assert scene.has_masks
    verdict = scene.verdict(records[0]["image_id"])
    assert verdict.prediction_status.count("matched") >= 1
    assert np.isfinite(verdict.prediction_iou).all()


def test_mask_only_results_get_box_verdicts_from_their_masks(toy_val, val):
    scene = load_scene(toy_val, results=_records(val, boxes=False))
    image_id = val["annotations"][0]["image_id"]
    counts = scene.verdict(image_id, iou_type="bbox").counts()  # mask = GT box: all matched
    assert counts["matched"] == len(scene.predictions(image_id)) > 0


def test_results_with_boxes_on_some_records_only_are_refused(toy_val, val):
    records = _records(val)
    del records[0]["bbox"]
    with pytest.raises(ValueError, match=r"results\[1\].*'bbox' is given but results\[0\]"):
        load_scene(toy_val, results=records)


def test_scene_cuts_each_image_to_300_as_lvis_results(toy_val, val):
    image = val["images"][0]
    records = [
        {"image_id": image["id"], "category_id": val["categories"][0]["id"],
         "score": (i % 7) / 7, "bbox": [i % 50, 0, 10, 10], "id": i}
        for i in range(400)
    ]  # fmt: skip
    scene = load_scene(toy_val, results=records)
    expected = lvis.LVISResults.limit_dets_per_image(None, records, 300)
    expected = sorted(expected, key=lambda r: r["score"], reverse=True)  # ties: input order
    assert [r["id"] for r in scene.results[image["id"]]] == [r["id"] for r in expected]
