"""Category galleries: one category's instances across a split, and which category to show."""

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from lvisnb.annotations.images import image_path
from lvisnb.viz import gallery
from lvisnb.viz import verdicts as federated
from lvisnb.viz.scene import load_scene


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


def test_rarest_categories_rank_by_training_data_not_a_val_files_image_count(tmp_path):
    """Real v0.5 val subset: LVIS v1 train counts (embedded), not the file's own
    ``image_count`` (which counts these 100 images)."""
    from lvisnb.annotations.categories import embedded_train_image_counts

    real = Path(__file__).parents[1] / "fixtures" / "lvis_v0.5_val_100.json"
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


def test_gallery_category_falls_back_to_the_rarest_predicted_then_annotated(scene, toy_val):
    assert (
        gallery.gallery_category(scene, None)
        == gallery.rarest_categories(scene, 1, with_predictions=True)[0]
    )
    name = scene.names[gallery.rarest_categories(scene, 1)[0]]
    assert gallery.gallery_category(scene, name.upper()) == scene.category_id(name)
    without_results = load_scene(toy_val)
    assert gallery.gallery_category(without_results) == gallery.rarest_categories(scene, 1)[0]
    empty = json.loads(toy_val.read_text()) | {"annotations": []}
    with pytest.raises(ValueError, match="no annotation.*parameter category"):
        gallery.gallery_category(load_scene(empty, image_root=toy_val.parent))
