"""Scenes (ground truth + results + images), category galleries and label placement."""

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from synthetic import toy_detections

from lvisnb import federated, gallery, overlay
from lvisnb.data import ImageReadError, image_path
from lvisnb.scene import load_scene


@pytest.fixture(scope="module")
def results(toy_val):
    return toy_detections(json.loads(toy_val.read_text()), seed=5)


@pytest.fixture(scope="module")
def scene(toy_val, results):
    return load_scene(toy_val, results=results)


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


def test_ground_truth_gallery_is_the_category_largest_first(scene):
    category_id = gallery.rarest_categories(scene, 1)[0]
    tiles = gallery.gallery_tiles(scene, category_id, "gt", limit=100)
    expected = [a for i in scene.image_ids for a in scene.ground_truth(i, category_id)]
    assert len(tiles) == len(expected) > 0
    areas = [t.record["area"] for t in tiles]
    assert areas == sorted(areas, reverse=True)
    assert all(t.record["category_id"] == category_id and t.status is None for t in tiles)
    fig = gallery.category_gallery(scene, scene.names[category_id], "gt")
    assert scene.names[category_id] in fig._suptitle.get_text()
    assert len([ax for ax in fig.axes if ax.get_images()]) == len(tiles)
    plt.close(fig)


def test_prediction_gallery_is_best_scored_first_with_federated_verdicts(scene):
    category_id = gallery.rarest_categories(scene, 1, with_predictions=True)[0]
    tiles = gallery.gallery_tiles(scene, category_id, "predictions", limit=10, score_thr=0.2)
    scores = [t.record["score"] for t in tiles]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.2
    for tile in tiles:
        verdict = scene.verdict(tile.image_id, 0.2, category_id)
        index = next(i for i, r in enumerate(verdict.predictions) if r is tile.record)
        assert tile.status == verdict.prediction_status[index]
        assert tile.status in federated.PREDICTION_STATUSES


def test_an_unreadable_image_gets_a_message_and_the_rest_is_drawn(tmp_path, toy_root, toy_val):
    scene = load_scene(toy_val, image_root=tmp_path)
    category_id = gallery.rarest_categories(scene, 1)[0]
    tiles = gallery.gallery_tiles(scene, category_id, "gt")
    image_ids = sorted({t.image_id for t in tiles})
    assert len(image_ids) >= 2
    for image_id in image_ids:
        source = image_path(scene.images[image_id], toy_root)
        target = image_path(scene.images[image_id], tmp_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    broken = image_path(scene.images[image_ids[0]], tmp_path)
    broken.write_bytes(b"not an image")
    fig = gallery.plot_gallery(scene, tiles)
    assert [i for i, _ in fig.unreadable] == [image_ids[0]] * sum(
        t.image_id == image_ids[0] for t in tiles
    )
    assert str(broken) in fig.unreadable[0][1]
    drawn = [ax for ax in fig.axes if ax.get_images()]
    assert len(drawn) == sum(t.image_id != image_ids[0] for t in tiles)
    assert any("could not be read" in t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)


def test_labels_of_crowded_boxes_do_not_overlap_when_there_is_room():
    boxes = np.array([[40, 40, 60, 60]] * 8, dtype=float)  # eight boxes on one spot
    sizes = np.array([[18, 6]] * 8, dtype=float)
    corners = overlay.place_labels(boxes, sizes, 200, 200)
    rects = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(corners, sizes, strict=True)]
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[2] <= 200 and 0 <= a[1] and a[3] <= 200
        for b in rects[i + 1 :]:
            overlap_x = min(a[2], b[2]) - max(a[0], b[0])
            overlap_y = min(a[3], b[3]) - max(a[1], b[1])
            assert overlap_x <= 1e-9 or overlap_y <= 1e-9, (a, b)
    # the first label takes the first spot: above the top-left corner
    np.testing.assert_allclose(corners[0], [40, 34])
    # near the image edge a label stays inside
    corner = overlay.place_labels(np.array([[0.0, 0.0, 10, 10]]), np.array([[30.0, 6]]), 20, 20)
    assert corner[0, 0] == 0 and corner[0, 1] == 0


def test_federated_view_draws_each_verdict_in_its_style(scene):
    image_id = next(
        i
        for i in scene.image_ids
        if len(set(scene.verdict(i, 0.3).prediction_status)) >= 3
        and len(scene.predictions(i, 0.3)) + len(scene.ground_truth(i)) <= 40
    )  # every label fits under max_labels
    verdict = scene.verdict(image_id, 0.3)
    fig, ax = plt.subplots()
    overlay.draw_federated(ax, scene.image(image_id), verdict, scene.frequency, scene.names)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    counts = verdict.counts()
    for status in (*federated.PREDICTION_STATUSES, federated.MISSED):
        assert f"{status} ({counts[status]})" in legend
    labels = [t.get_text() for t in ax.texts]
    tags = {"TP": federated.MATCHED, "FP": federated.FALSE_POSITIVE,
            "ignored": federated.IGNORED_NOT_EXHAUSTIVE,
            "unverified": federated.IGNORED_UNVERIFIED}  # fmt: skip
    for tag, status in tags.items():
        shown = sum(label.split(" [NE]")[0].endswith(" " + tag) for label in labels)
        assert shown == counts[status], (tag, shown, counts)
    plt.close(fig)


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
            i for i in scene.image_ids
            if scene.ground_truth(i, category_id) or scene.predictions(i, score_thr, category_id)
        )  # fmt: skip
        assert scene.images_with(category_id, score_thr) == expected


def test_rarest_categories_rank_by_training_data_not_a_val_files_image_count(tmp_path):
    """Real v0.5 val subset: LVIS v1 train counts (embedded), not the file's own
    ``image_count`` (which counts these 100 images)."""
    from lvisnb.categories import embedded_train_image_counts

    real = Path(__file__).parent / "data" / "lvis_v0.5_val_100.json"
    scene = load_scene(real, image_root=tmp_path)
    counts, _ = embedded_train_image_counts(scene.dataset["categories"])
    train = dict(zip((c["id"] for c in scene.dataset["categories"]), counts.tolist(), strict=True))
    present = {a["category_id"] for anns in scene.instances.values() for a in anns}
    chosen = gallery.rarest_categories(scene, 3)
    assert [train[c] for c in chosen] == sorted(train[c] for c in present)[:3]


def test_rarest_categories_of_a_toy_file_take_the_rarest_group_first(scene):
    chosen = gallery.rarest_categories(scene, 5)
    groups = ["rcf".index(scene.frequency[c]) for c in chosen]
    assert groups == sorted(groups) and groups[0] == 0


# ----------------------------------------------------------------------------- notebook 04's picks

REAL = Path(__file__).parent / "data" / "lvis_v0.5_val_100.json"
RARE_IMAGE = 73946  # the one image of the real v0.5 subset with a rare instance


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
    rare = [i for i in scene.image_ids
            if any(scene.frequency[a["category_id"]] == "r" for a in scene.ground_truth(i))]
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


def test_gallery_category_falls_back_to_the_rarest_predicted_then_annotated(scene, toy_val):
    assert gallery.gallery_category(scene, None) == gallery.rarest_categories(
        scene, 1, with_predictions=True)[0]  # fmt: skip
    name = scene.names[gallery.rarest_categories(scene, 1)[0]]
    assert gallery.gallery_category(scene, name.upper()) == scene.category_id(name)
    without_results = load_scene(toy_val)
    assert gallery.gallery_category(without_results) == gallery.rarest_categories(scene, 1)[0]
    empty = json.loads(toy_val.read_text()) | {"annotations": []}
    with pytest.raises(ValueError, match="no annotation.*parameter category"):
        gallery.gallery_category(load_scene(empty, image_root=toy_val.parent))
