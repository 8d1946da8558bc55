"""Category gallery: the instances of one category across a data set, as crops with masks.

To see what a rare category looks like (its ground truth, largest first) and what the model
takes for it (its predictions, best scored first, each with its federated verdict at IoU 0.5:
matched, false positive or ignored; :mod:`lvisnb.viz.verdicts`). An image that cannot be read
shows a message in its cell; the rest of the gallery is drawn.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lvisnb.annotations.categories import FREQUENCY_GROUPS, embedded_train_image_counts
from lvisnb.annotations.images import ImageReadError
from lvisnb.viz import verdicts as federated
from lvisnb.viz.overlay import STATUS_COLOURS, Shape, category_colour, draw_shapes, instance_box
from lvisnb.viz.scene import Scene

SOURCES = ("gt", "predictions")


@dataclass
class Tile:
    """One gallery cell: an instance record, its image id, a caption and a status (the
    federated verdict for predictions, ``None`` for ground truth)."""

    record: dict
    image_id: int
    caption: str
    status: str | None = None


def gallery_tiles(
    scene: Scene,
    category,
    source: str = "gt",
    limit: int = 24,
    score_thr: float = 0.0,
    iou_type: str | None = None,
) -> list[Tile]:
    """The ``limit`` first instances of ``category`` (LVIS id or name).

    ``source="gt"``: annotations, largest ``area`` (px^2) first; ``"predictions"``: results
    scoring at least ``score_thr``, highest score first, each with its federated verdict on its
    image (matched against that category's ground truth at IoU 0.5, ``iou_type`` masks or
    boxes).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    category_id = scene.category_id(category)
    if source == "gt":
        anns = [a for i in scene.image_ids for a in scene.ground_truth(i, category_id)]
        anns.sort(key=lambda a: -float(a.get("area", 0.0)))
        return [
            Tile(a, int(a["image_id"]), f"img {a['image_id']} · {a.get('area', 0):.0f} px²")
            for a in anns[:limit]
        ]
    if not scene.has_results:
        raise ValueError("this scene has no results: load it with results to see predictions")
    found = [(r, i) for i in scene.image_ids for r in scene.predictions(i, score_thr, category_id)]
    found.sort(key=lambda pair: -float(pair[0]["score"]))
    tiles = []
    for image_id in sorted({i for _, i in found[:limit]}):
        verdict = scene.verdict(image_id, score_thr, category_id, iou_type)
        for record, status in zip(verdict.predictions, verdict.prediction_status, strict=True):
            tiles.append(Tile(record, image_id, f"img {image_id} · {record['score']:.2f}", status))
    tiles.sort(key=lambda t: -float(t.record["score"]))
    return tiles[:limit]


def _crop_window(record: dict, height: int, width: int, pad: float, min_size: int):
    x, y, w, h = instance_box(record, height, width)
    side_x, side_y = max(w * (1 + 2 * pad), min_size), max(h * (1 + 2 * pad), min_size)
    cx, cy = x + w / 2, y + h / 2
    return (
        max(cx - side_x / 2, 0),
        min(cx + side_x / 2, width),
        max(cy - side_y / 2, 0),
        min(cy + side_y / 2, height),
    )


def plot_gallery(
    scene: Scene,
    tiles: list[Tile],
    columns: int = 6,
    title: str = "",
    pad: float = 0.25,
    min_size: int = 24,
) -> Figure:
    """A grid of crops, one per tile: the instance's box widened by ``pad`` of its size on each
    side (at least ``min_size`` pixels), its mask filled (ground truth in its category's colour,
    predictions in the colour of their verdict) and a caption. A cell whose image cannot be
    read holds the reason instead. ``fig.unreadable`` lists ``(image_id, message)``."""
    columns = max(1, min(columns, len(tiles) or 1))
    rows = max(1, math.ceil(len(tiles) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.0 * columns, 2.1 * rows), squeeze=False, layout="constrained"
    )
    unreadable = []
    for ax, tile in zip(axes.flat, tiles, strict=False):
        try:
            image = scene.image(tile.image_id)
        except ImageReadError as error:
            unreadable.append((tile.image_id, str(error)))
            ax.text(
                0.5,
                0.5,
                f"image {tile.image_id}\ncould not be read:\n{error}",
                ha="center",
                va="center",
                fontsize=5,
                wrap=True,
                color="0.3",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            continue
        height, width = image.shape[:2]
        category_id = int(tile.record["category_id"])
        colour = (
            category_colour(category_id, scene.frequency[category_id])
            if tile.status is None
            else STATUS_COLOURS[tile.status]
        )
        fill = tile.status is None or tile.status in federated.COUNTED
        draw_shapes(
            ax, image, [Shape(tile.record, colour, fill=fill, box=False)], show_labels=False
        )
        x0, x1, y0, y1 = _crop_window(tile.record, height, width, pad, min_size)
        ax.set(xlim=(x0, x1), ylim=(y1, y0))
        caption = tile.caption if tile.status is None else f"{tile.caption}\n{tile.status}"
        ax.set_title(caption, fontsize=6, color="black" if tile.status is None else colour)
    for ax in list(axes.flat)[len(tiles) :]:
        ax.set_axis_off()
    if not tiles:
        axes.flat[0].text(
            0.5, 0.5, "no instances", ha="center", va="center", transform=axes.flat[0].transAxes
        )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.unreadable = unreadable
    return fig


def category_gallery(
    scene: Scene,
    category,
    source: str = "gt",
    limit: int = 24,
    score_thr: float = 0.0,
    columns: int = 6,
    iou_type: str | None = None,
) -> Figure:
    """:func:`gallery_tiles` drawn by :func:`plot_gallery`, titled with the category's name,
    frequency group and what is shown."""
    category_id = scene.category_id(category)
    tiles = gallery_tiles(scene, category_id, source, limit, score_thr, iou_type)
    group = scene.frequency[category_id]
    what = (
        "ground truth, largest first"
        if source == "gt"
        else f"predictions with score >= {score_thr:g}, best first"
    )
    title = f"{scene.names[category_id]} (id {category_id}, {group}): {what}"
    return plot_gallery(scene, tiles, columns=columns, title=title)


def rarest_categories(scene: Scene, n: int = 1, with_predictions: bool = False) -> list[int]:
    """LVIS ids of the ``n`` rarest categories among those annotated in this scene (and
    predicted, with ``with_predictions``).

    Rarest: fewest LVIS v1 train images (embedded) for a whole LVIS category set
    (:func:`lvisnb.annotations.categories.embedded_train_image_counts`); for any other file, such as
    toy-LVIS, the rarest frequency group (r, then c, then f: LVIS sets it from the train split
    in every file) and within it the fewest images of this scene. A file's own ``image_count``
    is not used: in a val file it can count val images. Ties by id.
    """
    present = {int(a["category_id"]) for anns in scene.instances.values() for a in anns}
    if with_predictions:
        present &= {int(r["category_id"]) for recs in scene.results.values() for r in recs}
    records = scene.dataset["categories"]
    embedded = embedded_train_image_counts(records)
    if embedded is not None:
        counts = dict(zip((int(c["id"]) for c in records), embedded[0].tolist(), strict=True))
        known_first = lambda c: (counts.get(c, -1) < 0, counts.get(c, -1), c)  # noqa: E731
        return sorted(present, key=known_first)[:n]
    images = Counter(
        c for anns in scene.instances.values() for c in {int(a["category_id"]) for a in anns}
    )
    group = {g: i for i, g in enumerate(FREQUENCY_GROUPS)}
    return sorted(present, key=lambda c: (group.get(scene.frequency[c], 3), images[c], c))[:n]


def gallery_category(scene: Scene, category: int | str | None = None) -> int:
    """LVIS id of the category a gallery shows: ``category`` (an id, a name or an LVIS
    synonym in any case, :meth:`lvisnb.viz.scene.Scene.category_id`), or with ``None`` (or "")
    the rarest category annotated and predicted (:func:`rarest_categories`), else, when
    nothing annotated was predicted or there are no results, the rarest one annotated.

    ``ValueError`` for an unknown category, or when the ground truth has no annotation and no
    ``category`` is given.
    """
    if category not in (None, ""):
        return scene.category_id(category)
    found = rarest_categories(scene, 1, with_predictions=scene.has_results)
    found = found or rarest_categories(scene, 1)
    if not found:
        raise ValueError(
            f"{scene.source} has no annotation to choose a gallery category from; "
            "give one (parameter category)"
        )
    return found[0]
