"""Scenes (ground truth + results + images), category galleries and label placement."""

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from synthetic import toy_detections

from lvisnb import federated, gallery, overlay
from lvisnb.data import image_path
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
