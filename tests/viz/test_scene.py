"""The scene of notebook 04: ground truth + results + images by image; results checked as the
evaluator checks them; the images it picks; category lookup."""

import json
import shutil
from pathlib import Path

import lvis
import matplotlib
import numpy as np
import pytest
from synthetic import box_mask, rle

from lvisnb.annotations.images import ImageReadError, image_path
from lvisnb.viz import browser, gallery
from lvisnb.viz.scene import load_scene

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
    figure = browser.view_grid(scene, [image_id])
    assert len(figure.axes) == len(browser.VIEWS)


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
        {
            "image_id": image["id"],
            "category_id": val["categories"][0]["id"],
            "score": (i % 7) / 7,
            "bbox": [i % 50, 0, 10, 10],
            "id": i,
        }
        for i in range(400)
    ]
    scene = load_scene(toy_val, results=records)
    expected = lvis.LVISResults.limit_dets_per_image(None, records, 300)
    expected = sorted(expected, key=lambda r: r["score"], reverse=True)  # ties: input order
    assert [r["id"] for r in scene.results[image["id"]]] == [r["id"] for r in expected]


# ------------------------------------------------------------------ indexing, picking images

REAL = Path(__file__).parents[1] / "fixtures" / "lvis_v0.5_val_100.json"
RARE_IMAGE = 73946  # the one image of the real v0.5 subset with a rare instance


def test_scene_indexes_ground_truth_and_results_by_image(scene, results, toy_val):
    raw = json.loads(toy_val.read_text())
    assert scene.image_ids == sorted(i["id"] for i in raw["images"])
    assert sum(len(scene.ground_truth(i)) for i in scene.image_ids) == len(raw["annotations"])
    per_image = {}
    for record in results:
        per_image[record["image_id"]] = per_image.get(record["image_id"], 0) + 1
    # every record indexed, but for LVIS's top 300 per image
    indexed = sum(len(v) for v in scene.results.values())
    assert indexed == sum(min(n, 300) for n in per_image.values())
    image_id = results[0]["image_id"]
    scores = [r["score"] for r in scene.predictions(image_id)]
    assert scores == sorted(scores, reverse=True)
    assert all(s >= 0.5 for s in (r["score"] for r in scene.predictions(image_id, 0.5)))


def test_categories_resolve_by_id_or_name_and_unknown_names_suggest(scene):
    category_id = scene.image_ids and next(iter(scene.names))
    name = scene.names[category_id]
    assert scene.category_id(name) == scene.category_id(str(category_id)) == category_id
    with pytest.raises(ValueError, match="did you mean"):
        scene.category_id(name[:-1] + "x")
    with pytest.raises(ValueError, match="category id 999999"):
        scene.category_id(999999)


def test_results_naming_an_unknown_category_are_reported(toy_val, results):
    bad = [dict(r) for r in results[:5]]
    bad[3]["category_id"] = 999999
    with pytest.raises(ValueError, match=r"results\[3\].*category_id.*999999"):
        load_scene(toy_val, results=bad)


def test_images_are_read_once_while_cached(scene):
    scene._cache.clear()
    before = scene.reads
    first = scene.image(scene.image_ids[0])
    again = scene.image(scene.image_ids[0])
    assert again is first and scene.reads == before + 1
    assert first.dtype == np.uint8 and first.shape[2] == 3


def test_results_are_cut_to_the_top_300_per_image_as_lvis_does(scene, results):
    per_image = {}
    for record in results:
        per_image.setdefault(record["image_id"], []).append(record["score"])
    crowded = next(i for i, scores in per_image.items() if len(scores) > 300)
    kept = [r["score"] for r in scene.predictions(crowded)]
    assert kept == sorted(per_image[crowded], reverse=True)[:300]


def test_images_with_a_category_are_those_annotating_or_predicting_it(scene):
    category_id = gallery.rarest_categories(scene, 1, with_predictions=True)[0]
    for score_thr in (0.0, 0.5):
        expected = sorted(
            i
            for i in scene.image_ids
            if scene.ground_truth(i, category_id) or scene.predictions(i, score_thr, category_id)
        )
        assert scene.images_with(category_id, score_thr) == expected


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    """Black stand-ins, of the recorded sizes, for the real subset's 100 COCO images."""
    from PIL import Image

    root = tmp_path_factory.mktemp("coco")
    for record in json.loads(REAL.read_text())["images"]:
        path = image_path(record, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (record["width"], record["height"])).save(path)
    return root


def _copy_images(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def test_default_pick_prefers_images_with_rare_categories_on_real_lvis(real_root, recwarn):
    scene = load_scene(REAL, image_root=real_root)
    rare = [
        i
        for i in scene.image_ids
        if any(scene.frequency[a["category_id"]] == "r" for a in scene.ground_truth(i))
    ]
    assert rare == [RARE_IMAGE]  # the fixture as documented in tests/data/README.md
    picked = scene.pick_images(None, 3)
    assert picked[0] == RARE_IMAGE and picked == scene.showcase(3) and len(picked) == 3
    assert not recwarn.list


def test_image_ids_are_parsed_from_text_or_numbers(real_root):
    scene = load_scene(REAL, image_root=real_root)
    assert scene.pick_images("91654, 73946,91654", 1) == [91654, 73946]  # all given, in order
    assert scene.pick_images(73946) == [73946]
    assert scene.parse_image_ids(" ") is None and scene.parse_image_ids(None) is None
    with pytest.raises(ValueError, match=r"image_ids: 'x7' is not an image id"):
        scene.pick_images("73946, x7")
    with pytest.raises(ValueError, match=r"image id 5 \(image_ids\) is not in .*lvis_v0.5_val"):
        scene.pick_images("5")


def test_not_one_readable_image_fails_early_naming_image_root(tmp_path):
    scene = load_scene(REAL, image_root=tmp_path)
    first = scene.images[scene.image_ids[0]]
    expected = str(image_path(first, tmp_path))
    with pytest.raises(FileNotFoundError) as caught:
        scene.pick_images(None, 3)
    message = str(caught.value)
    assert f"image_root {tmp_path}" in message and expected in message
    assert "not one image of" in message and "val2017/" in message
    with pytest.raises(FileNotFoundError, match="not one image given as image_ids"):
        scene.pick_images(str(RARE_IMAGE))


def test_some_unreadable_images_give_one_warning_with_their_count(real_root, tmp_path):
    root = _copy_images(real_root, tmp_path / "coco")
    scene = load_scene(REAL, image_root=root)
    image_path(scene.images[RARE_IMAGE], root).unlink()
    broken = scene.showcase(2)[1]
    image_path(scene.images[broken], root).write_bytes(b"not an image")
    with pytest.warns(UserWarning) as caught:
        picked = scene.pick_images(None, 3)
    assert len(caught) == 1
    assert "2 of the 100 images of" in str(caught[0].message)
    assert "the pick skips them" in str(caught[0].message)
    assert RARE_IMAGE not in picked and broken not in picked and len(picked) == 3
    with pytest.warns(UserWarning, match="1 of the 2 images given as image_ids"):
        assert scene.pick_images([RARE_IMAGE, picked[0]]) == [RARE_IMAGE, picked[0]]
    # every file broken: an error naming the file that would not decode
    for image_id in scene.image_ids:
        image_path(scene.images[image_id], root).unlink(missing_ok=True)
    image_path(scene.images[broken], root).write_bytes(b"not an image")
    expected = f"not one image of .* cannot decode image id {broken}"
    with pytest.raises(ImageReadError, match=expected):
        scene.pick_images(None, 3)


def test_categories_resolve_by_lvis_synonym_in_any_case(tmp_path):
    scene = load_scene(REAL, image_root=tmp_path)
    sofa = next(c for c, name in scene.names.items() if name == "sofa")
    cat = next(c for c, name in scene.names.items() if name == "cat")
    assert scene.category_id("couch") == scene.category_id("Sofa") == sofa
    assert scene.category_id("Cat") == cat
    with pytest.raises(ValueError, match=r"did you mean couch \(= sofa\)"):
        scene.category_id("cuoch")


def test_reading_an_image_for_drawing_does_not_import_torch(toy_root, toy_val):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lvisnb.viz.scene import load_scene\n"
        f"scene = load_scene({str(toy_val)!r}, {str(toy_root)!r})\n"
        "pixels = scene.image(scene.image_ids[0])\n"
        "print(pixels.dtype, pixels.shape[2], 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["uint8", "3", "False"]
