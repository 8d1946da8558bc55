"""Instances drawn over their image: masks, contours, boxes and labels coloured by r/c/f group.

Colours: each frequency group has one colour family (rare: reds, common: ambers, frequent:
teals; the same hues as :data:`lvisnb.viz.FREQUENCY_COLOURS`), and a category gets a fixed
shade within its family (by its LVIS id), so the same category looks the same in every figure
and its group can be read at a glance. Masks are filled semi-transparently with a crisp,
opaque contour; labels sit on an opaque background at the box's top-left corner.

Instances are LVIS records: ground-truth annotations or results, with ``category_id`` (LVIS
id), ``bbox`` XYWH in image pixels (optional for results), ``segmentation`` (polygons,
uncompressed or compressed RLE; optional) and, for results, ``score``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.patches import Patch, Rectangle

from lvisnb.categories import FREQUENCY_GROUPS, FREQUENCY_NAMES
from lvisnb.dataset import decode_masks

# one colour family per frequency group, light to dark (RGB in [0, 1])
FAMILIES: dict[str, list[tuple[float, float, float]]] = {
    "r": sns.color_palette("Reds", 6)[2:],
    "c": sns.color_palette("YlOrBr", 6)[2:],
    "f": sns.color_palette("GnBu", 8)[4:],
}


def category_colour(category_id: int, group: str) -> tuple[float, float, float]:
    """The fixed RGB colour of LVIS category ``category_id`` in frequency group ``group``."""
    if group not in FAMILIES:
        raise ValueError(f"frequency group {group!r} is not one of {list(FAMILIES)}")
    family = FAMILIES[group]
    return family[int(category_id) % len(family)]


def instance_mask(instance: Mapping, height: int, width: int) -> np.ndarray | None:
    """Binary ``(height, width)`` uint8 mask of an LVIS record's ``segmentation``, or None."""
    segmentation = instance.get("segmentation")
    if not segmentation:
        return None
    return decode_masks([segmentation], height, width)[0]


def draw_instances(
    ax: Axes,
    image: np.ndarray,
    instances: Sequence[Mapping],
    frequency: Mapping[int, str],
    names: Mapping[int, str] | None = None,
    *,
    alpha: float = 0.45,
    show_boxes: bool = True,
    show_labels: bool = True,
    legend: bool = True,
) -> Axes:
    """Draw ``image`` (``(H, W, 3)`` uint8 RGB) with ``instances`` on ``ax``; returns ``ax``.

    ``frequency`` maps an LVIS category id to "r"/"c"/"f" (the colour family), ``names`` to the
    label text (default: the id). A result's ``score`` is appended to its label. Masks are
    blended into the image with opacity ``alpha`` and outlined; boxes are drawn dashed.
    """
    height, width = image.shape[:2]
    canvas = image.astype(np.float32) / 255.0
    outlines = []
    for instance in instances:
        category_id = int(instance["category_id"])
        colour = np.asarray(category_colour(category_id, frequency[category_id]))
        mask = instance_mask(instance, height, width)
        if mask is not None:
            inside = mask.astype(bool)
            canvas[inside] = (1 - alpha) * canvas[inside] + alpha * colour
            outlines.append((mask, colour))
    ax.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
    for mask, colour in outlines:
        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=1.2)
    groups_seen = set()
    for instance in instances:
        category_id = int(instance["category_id"])
        group = frequency[category_id]
        groups_seen.add(group)
        colour = category_colour(category_id, group)
        x, y, w, h = _box(instance, height, width)
        if show_boxes:
            ax.add_patch(
                Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.0,
                          linestyle="--")
            )  # fmt: skip
        if show_labels:
            text = (names or {}).get(category_id, str(category_id))
            if "score" in instance:
                text += f" {instance['score']:.2f}"
            ax.text(
                x, y, text, fontsize=6, color="white", va="bottom", ha="left", clip_on=True,
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.9},
            )  # fmt: skip
    if legend and groups_seen:
        handles = [
            Patch(color=FAMILIES[g][-1], label=FREQUENCY_NAMES[g])
            for g in FREQUENCY_GROUPS
            if g in groups_seen
        ]
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.8)
    ax.set(xlim=(0, width), ylim=(height, 0))
    ax.set_axis_off()
    return ax


def _box(instance: Mapping, height: int, width: int) -> tuple[float, float, float, float]:
    """XYWH box of a record: its ``bbox``, else the extent of its mask."""
    if instance.get("bbox") is not None:
        return tuple(float(v) for v in instance["bbox"])
    mask = instance_mask(instance, height, width)
    if mask is None or not mask.any():
        return (0.0, 0.0, 0.0, 0.0)
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1))  # fmt: skip


def plot_instances(
    image: np.ndarray,
    instances: Sequence[Mapping],
    frequency: Mapping[int, str],
    names: Mapping[int, str] | None = None,
    title: str = "",
    **options,
):
    """A new figure with :func:`draw_instances`; ``options`` go to it."""
    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(6, 6 * height / max(width, 1)))
    draw_instances(ax, image, instances, frequency, names, **options)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
