"""Instances over their image: masks tinted by frequency group, contours, boxes, labels."""

import matplotlib.pyplot as plt
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from lvisnb.annotations.validate import load_lvis
from lvisnb.data.dataset import LVISDetection
from lvisnb.viz import overlay
from lvisnb.viz import verdicts as federated


@pytest.fixture(scope="module")
def sample(toy_root, toy_val):
    gt = load_lvis(toy_val)
    dataset = LVISDetection(gt, toy_root)
    index = next(
        i for i in range(len(dataset)) if len(gt.img_ann_map.get(dataset.image_ids[i], [])) >= 3
    )
    image, _ = dataset[index]
    anns = gt.img_ann_map[dataset.image_ids[index]]
    frequency = {c["id"]: c["frequency"] for c in gt.dataset["categories"]}
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    return np.asarray(image.permute(1, 2, 0)), anns, frequency, names


def test_masks_are_tinted_with_their_group_colour_and_the_rest_is_untouched(sample):
    image, anns, frequency, names = sample
    fig, ax = plt.subplots()
    overlay.draw_instances(ax, image, anns[:1], frequency, names, alpha=0.5)
    drawn = np.asarray(ax.get_images()[0].get_array())
    mask = overlay.instance_mask(anns[0], *image.shape[:2]).astype(bool)
    colour = np.asarray(
        overlay.category_colour(anns[0]["category_id"], frequency[anns[0]["category_id"]])
    )
    expected = 0.5 * image[mask] / 255.0 + 0.5 * colour
    np.testing.assert_allclose(drawn[mask], expected, atol=1e-5)
    np.testing.assert_allclose(drawn[~mask], image[~mask] / 255.0, atol=1e-6)
    labels = [t.get_text() for t in ax.texts]
    assert labels == [names[anns[0]["category_id"]]]
    assert ax.get_legend() is not None
    plt.close(fig)


def test_colours_are_fixed_per_category_and_grouped_by_frequency():
    assert overlay.category_colour(7, "r") == overlay.category_colour(7, "r")
    rare, frequent = (
        np.asarray(overlay.category_colour(7, "r")),
        np.asarray(overlay.category_colour(7, "f")),
    )
    assert rare[0] > rare[2] and frequent[2] > frequent[0]  # reds vs teals
    with pytest.raises(ValueError, match="frequency group"):
        overlay.category_colour(7, "x")


def test_results_with_rle_and_no_box_are_drawn_with_their_score(sample):
    image, anns, frequency, names = sample
    height, width = image.shape[:2]
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[10:30, 20:60] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    result = {
        "category_id": anns[0]["category_id"],
        "score": 0.87,
        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
    }
    fig = overlay.plot_instances(image, [result], frequency, names, title="predictions")
    ax = fig.axes[0]
    assert ax.texts[0].get_text().endswith("0.87")
    box = [p for p in ax.patches if hasattr(p, "get_width")][0]
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (20, 10, 40, 20)
    plt.close(fig)


def test_a_mask_of_the_wrong_size_is_a_clear_error(sample):
    image, anns, frequency, _ = sample
    rle = mask_utils.encode(np.asfortranarray(np.ones((5, 5), dtype=np.uint8)))
    bad = {"category_id": anns[0]["category_id"], "segmentation": rle, "bbox": [0, 0, 5, 5]}
    with pytest.raises(ValueError, match="does not fit"):
        overlay.draw_instances(plt.gca(), image, [bad], frequency)
    plt.close("all")


def test_ground_truth_beside_predictions_above_the_threshold(sample):
    image, anns, frequency, names = sample
    results = [dict(a, score=s) for a, s in zip(anns[:3], (0.9, 0.5, 0.1), strict=True)]
    fig = overlay.gt_beside_predictions(image, anns, results, frequency, names, score_thr=0.3)
    left, right = fig.axes[:2]
    assert len(left.texts) == len(anns)
    assert [t.get_text().split()[-1] for t in right.texts] == ["0.90", "0.50"]
    assert "2 of 3" in right.get_title()
    plt.close(fig)


@pytest.mark.parametrize("legend", [True, False])
def test_federated_note_sits_outside_the_image_and_hides_no_label(legend):
    """The note naming negative / not-exhaustive categories once covered the labels in the
    image's top-left corner; it now sits under the image (under the legend, as the legend is)."""
    from lvisnb.viz import verdicts as federated

    image = {
        "id": 1,
        "height": 100,
        "width": 120,
        "neg_category_ids": [2],
        "not_exhaustive_category_ids": [3],
    }
    predictions = [
        {"category_id": 2, "score": 0.9, "bbox": [0.0, 0.0, 30.0, 20.0]},
        {"category_id": 4, "score": 0.8, "bbox": [2.0, 2.0, 20.0, 20.0]},
    ]
    verdict = federated.image_verdict(image, [], predictions, iou_type="bbox")
    frequency, names = {2: "r", 3: "c", 4: "f"}, {2: "anvil", 3: "beret", 4: "cup"}
    fig, ax = plt.subplots(figsize=(4, 3.5))
    pixels = np.zeros((100, 120, 3), dtype=np.uint8)
    overlay.draw_federated(ax, pixels, verdict, frequency, names, legend=legend)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    notes = [t for t in ax.texts if t.get_text().startswith("not exhaustive: beret")]
    assert len(notes) == 1 and "negative: anvil" in notes[0].get_text()
    note = notes[0].get_bbox_patch().get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    assert note.y1 <= axes.y0  # below the image axes, wholly outside them
    labels = [t.get_window_extent(renderer) for t in ax.texts if t is not notes[0]]
    assert len(labels) == 2 and not any(note.overlaps(label) for label in labels)
    if legend:
        assert note.y1 <= ax.get_legend().get_window_extent(renderer).y0 + 1  # under it
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
    tags = {
        "TP": federated.MATCHED,
        "FP": federated.FALSE_POSITIVE,
        "ignored": federated.IGNORED_NOT_EXHAUSTIVE,
        "unverified": federated.IGNORED_UNVERIFIED,
    }
    for tag, status in tags.items():
        shown = sum(label.split(" [NE]")[0].endswith(" " + tag) for label in labels)
        assert shown == counts[status], (tag, shown, counts)
    plt.close(fig)
