"""The ipywidgets browser, driven from Python: set values, check what was redrawn and with what."""

import json

import matplotlib.pyplot as plt
import pytest
from synthetic import toy_detections

from lvisnb import viz
from lvisnb.viz import browser as browse_module
from lvisnb.viz.browser import VIEWS, Browser, category_option
from lvisnb.viz.scene import load_scene


@pytest.fixture(scope="module")
def scene(toy_val):
    results = toy_detections(json.loads(toy_val.read_text()), seed=7)
    return load_scene(toy_val, results=results)


@pytest.fixture
def drawn(monkeypatch):
    """Records, per drawing call, the view and the category ids of the instances drawn."""
    calls = []
    real_instances, real_federated = browse_module.draw_instances, browse_module.draw_federated

    def instances(ax, image, shown, *args, **kwargs):
        calls.append(("instances", sorted({r["category_id"] for r in shown}), len(shown)))
        return real_instances(ax, image, shown, *args, **kwargs)

    def federated(ax, image, verdict, *args, **kwargs):
        calls.append(
            (
                "federated",
                sorted({r["category_id"] for r in verdict.predictions}),
                len(verdict.predictions),
            )
        )
        return real_federated(ax, image, verdict, *args, **kwargs)

    monkeypatch.setattr(browse_module, "draw_instances", instances)
    monkeypatch.setattr(browse_module, "draw_federated", federated)
    return calls


def _is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_first_view_draws_each_panel_once(scene):
    app = viz.browse(scene, score_thr=0.4)
    assert isinstance(app, Browser) and "lvisnb-browser" in app._dom_classes
    assert app.render_counts == {v: 1 for v in VIEWS}
    assert all(_is_png(app.panels[v].value) for v in VIEWS)
    assert str(app.current_image_id) in app.status.value


def test_score_threshold_redraws_predictions_only_without_reading_the_image(scene, drawn):
    app = Browser(scene, score_thr=0.2)
    reads, before = scene.reads, app.panels["gt"].value
    drawn.clear()
    app.score.value = 0.6
    assert app.render_counts == {"gt": 1, "predictions": 2, "federated": 2}
    assert scene.reads == reads and app.panels["gt"].value is before
    expected = scene.predictions(app.current_image_id, 0.6)
    assert [c[2] for c in drawn] == [len(expected), len(expected)]  # predictions, federated


def test_hidden_panels_are_not_drawn_until_shown(scene):
    app = Browser(scene)
    app.show["federated"].value = False
    assert app.panels["federated"].layout.display == "none"
    app.score.value = 0.7
    app.index.value = 2
    assert app.render_counts["federated"] == 1 and app.render_counts["gt"] == 2
    app.show["federated"].value = True
    assert app.panels["federated"].layout.display is None
    assert app.render_counts["federated"] == 2
    app.show["federated"].value = False
    app.show["federated"].value = True  # nothing changed meanwhile: no redraw
    assert app.render_counts["federated"] == 2


def test_slider_and_id_box_follow_each_other(scene):
    app = Browser(scene)
    app.index.value = 3
    assert app.image_id.value == scene.image_ids[3] == app.current_image_id
    app.image_id.value = scene.image_ids[5]
    assert app.index.value == 5
    assert app.render_counts["gt"] == 3
    app.image_id.value = 987654321
    assert app.index.value == 5 and "987654321 is not among" in app.status.value


def test_category_filter_draws_only_that_category(scene, drawn):
    app = Browser(scene)
    category_id = next(c for c in sorted(scene.names) if len(scene.images_with(c)) >= 2)
    drawn.clear()
    app.category.value = category_option(scene, category_id)
    assert app.category_id == category_id
    assert drawn and all(ids in ([], [category_id]) for _, ids, _ in drawn)
    app.category.value = ""
    assert app.category_id is None


def test_next_image_with_the_category_moves_and_wraps(scene):
    app = Browser(scene)
    assert app.next_with_category() is None and "choose a category" in app.status.value
    category_id = next(c for c in sorted(scene.names) if len(scene.images_with(c, 0.3)) >= 2)
    having = scene.images_with(category_id, 0.3)
    app.category.value = category_option(scene, category_id)
    app.score.value = 0.3
    app.image_id.value = having[-1]
    app.next_button.click()  # wraps around to the first image with it
    assert app.current_image_id == having[0]
    assert app.next_with_category() == having[1]


def test_group_toggle_narrows_the_category_options(scene):
    app = Browser(scene)
    app.group.value = "r"
    rare = {c for c, f in scene.frequency.items() if f == "r"}
    assert {app._option_to_id[o] for o in app.category.options} == rare
    app.group.value = ""
    assert len(app.category.options) == len(scene.names)


def test_without_results_only_ground_truth_can_be_shown(toy_val):
    app = viz.browse(toy_val, category=None)
    assert not app.show["predictions"].value and app.show["predictions"].disabled
    assert app.render_counts == {"gt": 1}
    fig = viz.view_grid(app.scene, app.image_ids[:2])
    assert len(fig.axes) == 2  # one ground-truth panel per image
    plt.close(fig)


def test_show_falls_back_to_a_static_grid_without_a_front_end(scene, monkeypatch):
    monkeypatch.setenv(browse_module.HEADLESS_ENV, "1")
    assert not browse_module.front_end_attached()
    app = Browser(scene, category=None)
    fig = viz.show(app, "auto", n_images=2)
    assert fig is not None and len(fig.axes) == 2 * len(VIEWS)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith(f"image {app.current_image_id}: ground truth")
    plt.close(fig)
    with pytest.raises(ValueError, match="interactive"):
        viz.show(app, "maybe")
