"""Instances drawn over their image: masks, contours, boxes and labels coloured by r/c/f group.

Colours: each frequency group has one colour family (rare: reds, common: ambers, frequent:
teals; the same hues as :data:`lvisnb.viz.plots.FREQUENCY_COLOURS`), and a category gets a fixed
shade within its family (by its LVIS id), so the same category looks the same in every figure
and its group can be read at a glance. Masks are filled semi-transparently with a crisp,
opaque contour; labels sit on an opaque background beside their box, placed so that they
overlap as little as possible where objects crowd (:func:`place_labels`).

The federated view (:func:`draw_federated`) colours by verdict instead
(:mod:`lvisnb.viz.verdicts`): matched and false-positive predictions filled, ignored ones only
outlined, missed ground truth in dashed orange.

Instances are LVIS records: ground-truth annotations or results, with ``category_id`` (LVIS
id), ``bbox`` XYWH in image pixels (optional for results), ``segmentation`` (polygons,
uncompressed or compressed RLE; optional) and, for results, ``score``. Figures of their own:
:func:`plot_instances` (one image) and :func:`gt_beside_predictions` (ground truth beside the
predictions above a score threshold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pycocotools.mask as mask_utils
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from lvisnb.annotations.categories import FREQUENCY_GROUPS, FREQUENCY_NAMES
from lvisnb.annotations.masks import decode_masks, segmentation_rle
from lvisnb.viz import verdicts as federated


def _shades(colormap: str, n: int, keep: int) -> list[tuple[float, float, float]]:
    """The last ``keep`` of ``n`` evenly spaced RGB samples of a matplotlib colormap, its two
    ends left out: seaborn's ``color_palette(colormap, n)[n - keep:]``, without importing
    seaborn (which imports ipywidgets)."""
    samples = mpl.colormaps[colormap](np.linspace(0, 1, n + 2)[1:-1])[:, :3]
    return [tuple(float(v) for v in rgb) for rgb in samples[n - keep :]]


# one colour family per frequency group, light to dark (RGB in [0, 1])
FAMILIES: dict[str, list[tuple[float, float, float]]] = {
    "r": _shades("Reds", 6, 4),
    "c": _shades("YlOrBr", 6, 4),
    "f": _shades("GnBu", 8, 4),
}


LABEL_FONT_SIZE = 6.0  # points


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


@dataclass
class Shape:
    """One instance as drawn: its record, colours and styles (internal to the drawers).

    ``fill``: blend the mask into the image; ``linestyle``: of the contour (and of the box, or
    of the box alone for records without a mask); ``label``: text drawn on an opaque patch of
    ``colour`` (None: no label).
    """

    record: Mapping
    colour: tuple[float, float, float]
    fill: bool = True
    linestyle: str = "solid"
    linewidth: float = 1.2
    label: str | None = None
    box: bool = True


def draw_shapes(
    ax: Axes,
    image: np.ndarray,
    shapes: Sequence[Shape],
    *,
    alpha: float = 0.45,
    show_boxes: bool = True,
    show_labels: bool = True,
    fontsize: float = LABEL_FONT_SIZE,
    max_labels: int = 40,
) -> Axes:
    """Draw ``image`` (``(H, W, 3)`` uint8 RGB) and ``shapes`` on ``ax``: masks blended with
    opacity ``alpha`` where ``fill``, crisp contours, dashed boxes, labels placed so that they
    overlap as little as possible (:func:`place_labels`), at most ``max_labels`` of them (the
    first ones: order ``shapes`` by importance). Returns ``ax``."""
    height, width = image.shape[:2]
    canvas = image.astype(np.float32) / 255.0
    outlines = []
    for shape in shapes:
        mask = instance_mask(shape.record, height, width)
        if mask is None:
            continue
        if shape.fill:
            inside = mask.astype(bool)
            canvas[inside] = (1 - alpha) * canvas[inside] + alpha * np.asarray(shape.colour)
        outlines.append((mask, shape))
    ax.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
    ax.set(xlim=(0, width), ylim=(height, 0))
    ax.set_axis_off()
    for mask, shape in outlines:
        ax.contour(
            mask,
            levels=[0.5],
            colors=[shape.colour],
            linewidths=shape.linewidth,
            linestyles=shape.linestyle,
        )
    boxes = np.array([instance_box(s.record, height, width) for s in shapes], dtype=float)
    boxes = boxes.reshape(-1, 4)
    for shape, (x, y, w, h) in zip(shapes, boxes, strict=True):
        if show_boxes and shape.box:
            ax.add_patch(
                Rectangle(
                    (x, y),
                    w,
                    h,
                    fill=False,
                    edgecolor=shape.colour,
                    linewidth=1.0,
                    linestyle="--" if shape.linestyle == "solid" else shape.linestyle,
                )
            )
    labelled = [i for i, s in enumerate(shapes) if s.label and show_labels][:max_labels]
    if labelled:
        texts = [shapes[i].label for i in labelled]
        sizes = label_sizes(ax, texts, width, fontsize)
        xyxy = boxes[labelled].copy()
        xyxy[:, 2:] += xyxy[:, :2]
        for i, (x, y) in zip(labelled, place_labels(xyxy, sizes, width, height), strict=True):
            ax.text(
                x,
                y,
                shapes[i].label,
                fontsize=fontsize,
                color="white",
                va="top",
                ha="left",
                clip_on=True,
                bbox={"facecolor": shapes[i].colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.9},
            )
    return ax


def label_sizes(ax: Axes, texts: Sequence[str], width: int, fontsize: float) -> np.ndarray:
    """``(N, 2)`` estimated ``[width, height]`` of label patches in image pixels on ``ax``.

    A character is taken as 0.6 em wide and a line as 1.5 em high with the patch's padding,
    converted from points to screen pixels (``dpi / 72``) and to image pixels by the ratio of
    the image's width to the axes' width on screen.
    """
    axes_pixels = max(ax.get_window_extent().width, 1.0)
    image_per_point = width / axes_pixels * ax.figure.dpi / 72.0
    lengths = np.array([len(t) for t in texts], dtype=float)
    return np.stack(
        [
            (0.6 * lengths + 0.6) * fontsize * image_per_point,
            np.full_like(lengths, 1.6 * fontsize * image_per_point),
        ],
        axis=1,
    )


def place_labels(boxes: np.ndarray, sizes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Top-left corners ``(N, 2)`` for N labels of ``sizes`` (``[w, h]``) beside ``boxes``.

    ``boxes``: ``(N, 4)`` XYXY image pixels (y down). Labels are placed in order (put the most
    important first); each takes the first spot that overlaps no label placed before it
    (above the box's top-left corner, inside it, below the bottom-left corner, inside it, the
    same two at the top-right, then stacked further above and below), else the spot of least
    overlap. Spots are kept inside the image.
    """
    placed: list[tuple[float, float, float, float]] = []
    corners = np.zeros((len(boxes), 2))
    for i, ((x0, y0, x1, y1), (w, h)) in enumerate(zip(boxes, sizes, strict=True)):
        spots = [(x0, y0 - h), (x0, y0), (x0, y1), (x0, y1 - h), (x1 - w, y0 - h), (x1 - w, y0)]
        spots += [spot for k in (1, 2, 3) for spot in ((x0, y0 - (k + 1) * h), (x0, y1 + k * h))]
        best, best_overlap = None, np.inf
        for x, y in spots:
            x = min(max(x, 0.0), max(width - w, 0.0))
            y = min(max(y, 0.0), max(height - h, 0.0))
            overlap = sum(
                max(0.0, min(x + w, px1) - max(x, px0)) * max(0.0, min(y + h, py1) - max(y, py0))
                for px0, py0, px1, py1 in placed
            )
            if overlap < best_overlap:
                best, best_overlap = (x, y), overlap
            if overlap == 0:
                break
        corners[i] = best
        placed.append((best[0], best[1], best[0] + w, best[1] + h))
    return corners


def _group_legend(ax: Axes, groups_seen: set[str]) -> None:
    handles = [
        Patch(color=FAMILIES[g][-1], label=FREQUENCY_NAMES[g])
        for g in FREQUENCY_GROUPS
        if g in groups_seen
    ]
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.8)


def instance_label(
    record: Mapping, names: Mapping[int, str] | None, frequency: Mapping[int, str] | None = None
) -> str:
    """``name`` (default: the id), `` (r)`` with ``frequency``, and the score for results."""
    category_id = int(record["category_id"])
    text = (names or {}).get(category_id, str(category_id))
    if frequency is not None:
        text += f" ({frequency[category_id]})"
    if "score" in record:
        text += f" {record['score']:.2f}"
    return text


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
    shapes = [
        Shape(
            record,
            category_colour(int(record["category_id"]), frequency[int(record["category_id"])]),
            label=instance_label(record, names),
        )
        for record in instances
    ]
    draw_shapes(ax, image, shapes, alpha=alpha, show_boxes=show_boxes, show_labels=show_labels)
    if legend:
        _group_legend(ax, {frequency[int(r["category_id"])] for r in instances})
    return ax


# ----------------------------------------------------------------------------- federated view

STATUS_COLOURS: dict[str, tuple[float, float, float]] = {
    federated.MATCHED: (0.18, 0.62, 0.27),
    federated.FALSE_POSITIVE: (0.84, 0.15, 0.16),
    federated.IGNORED_NOT_EXHAUSTIVE: (0.58, 0.40, 0.74),
    federated.IGNORED_UNVERIFIED: (0.50, 0.50, 0.50),
    federated.NOT_EVALUATED: (0.20, 0.20, 0.20),
    federated.MISSED: (1.00, 0.50, 0.05),
}
_STATUS_TAG = {
    federated.MATCHED: "TP",
    federated.FALSE_POSITIVE: "FP",
    federated.IGNORED_NOT_EXHAUSTIVE: "ignored",
    federated.IGNORED_UNVERIFIED: "unverified",
    federated.NOT_EVALUATED: "area 0",
}


def federated_shapes(
    verdict: federated.ImageVerdict,
    frequency: Mapping[int, str],
    names: Mapping[int, str] | None = None,
) -> list[Shape]:
    """Shapes of the federated view: counted predictions filled (matched green, false positive
    red), ignored ones outlined only (not exhaustive: dashed purple; unverified: dotted grey),
    missed ground truth outlined in thick dashed orange, matched ground truth in thin white.
    Labels carry the group letter, the score and the verdict; ``[NE]`` marks a category that is
    not exhaustively annotated in this image."""
    shapes = []
    for record, status in zip(verdict.instances, verdict.instance_status, strict=True):
        if status == federated.NOT_EVALUATED:
            label = instance_label(record, names, frequency) + " area 0"
            shapes.append(
                Shape(
                    record,
                    STATUS_COLOURS[status],
                    fill=False,
                    linestyle="dotted",
                    linewidth=0.8,
                    label=label,
                )
            )
        elif status == federated.MISSED:
            label = instance_label(record, names, frequency) + " missed"
            if int(record["category_id"]) in verdict.not_exhaustive:
                label += " [NE]"
            shapes.append(
                Shape(
                    record,
                    STATUS_COLOURS[federated.MISSED],
                    fill=False,
                    linestyle="dashed",
                    linewidth=2.0,
                    label=label,
                    box=False,
                )
            )
        else:
            shapes.append(Shape(record, (1.0, 1.0, 1.0), fill=False, linewidth=0.8, box=False))
    # label priority: counted before ignored, then by score
    order = sorted(
        range(len(verdict.predictions)),
        key=lambda i: (
            verdict.prediction_status[i] not in federated.COUNTED,
            -float(verdict.predictions[i]["score"]),
        ),
    )
    for i in order:
        record, status = verdict.predictions[i], verdict.prediction_status[i]
        counted = status in federated.COUNTED
        label = instance_label(record, names, frequency) + " " + _STATUS_TAG[status]
        if int(record["category_id"]) in verdict.not_exhaustive:
            label += " [NE]"
        linestyle = {
            federated.IGNORED_NOT_EXHAUSTIVE: "dashed",
            federated.IGNORED_UNVERIFIED: "dotted",
            federated.NOT_EVALUATED: "dotted",
        }.get(status, "solid")
        shapes.append(
            Shape(
                record,
                STATUS_COLOURS[status],
                fill=counted,
                linestyle=linestyle,
                linewidth=1.4,
                label=label,
            )
        )
    return shapes


def draw_federated(
    ax: Axes,
    image: np.ndarray,
    verdict: federated.ImageVerdict,
    frequency: Mapping[int, str],
    names: Mapping[int, str] | None = None,
    *,
    alpha: float = 0.45,
    show_labels: bool = True,
    legend: bool = True,
) -> Axes:
    """The federated view of one image (see :func:`federated_shapes` for the styles), a legend
    with counts under the image and, under the legend, a note naming the image's
    not-exhaustive and negative categories (both outside the image axes). ``image``:
    ``(H, W, 3)`` uint8 RGB; ``frequency`` / ``names`` keyed by LVIS category id."""
    draw_shapes(
        ax, image, federated_shapes(verdict, frequency, names), alpha=alpha, show_labels=show_labels
    )
    notes = []
    for title, ids in (("not exhaustive", verdict.not_exhaustive), ("negative", verdict.negative)):
        if ids:
            shown = [(names or {}).get(c, str(c)) for c in sorted(ids)]
            extra = f" +{len(shown) - 4}" if len(shown) > 4 else ""
            notes.append(f"{title}: {', '.join(shown[:4])}{extra}")
    key = None
    if legend:
        counts = verdict.counts()
        handles = [
            Patch(
                facecolor=STATUS_COLOURS[s] if s in federated.COUNTED else "none",
                edgecolor=STATUS_COLOURS[s],
                linewidth=1.5,
                linestyle="solid" if s in federated.COUNTED else "--",
                label=f"{s} ({counts[s]})",
            )
            for s in (*federated.PREDICTION_STATUSES, federated.MISSED)
        ]
        # below the image, so that it hides none of it
        key = ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=3,
            fontsize=6,
            frameon=False,
            handlelength=1.5,
            columnspacing=1.0,
        )
    if notes:  # under the legend: outside the image, it covers no prediction's label
        _note_below(ax, "\n".join(notes), key)
    return ax


def _note_below(ax: Axes, text: str, legend=None):
    """``text`` in a box under ``ax`` (under ``legend`` when given, itself under the axes):
    outside the image, so that it covers none of the labels drawn on it. Returns the text."""
    bbox = {"facecolor": "white", "alpha": 0.8, "edgecolor": "0.6", "pad": 2}
    if legend is None:
        xy, coords, ha = (0.0, 0.0), "axes fraction", "left"
    else:  # a fraction of the legend's box, known once it is drawn
        xy, coords, ha = (0.5, 0.0), legend, "center"
    return ax.annotate(
        text,
        xy=xy,
        xycoords=coords,
        xytext=(0, -4),
        textcoords="offset points",
        va="top",
        ha=ha,
        fontsize=6,
        bbox=bbox,
        annotation_clip=False,
    )


def instance_box(instance: Mapping, height: int, width: int) -> tuple[float, float, float, float]:
    """XYWH box of a record: its ``bbox``, else the extent of its mask, read from the RLE
    without decoding it (``pycocotools.mask.toBbox``; zeros for no or an empty mask)."""
    if instance.get("bbox") is not None:
        return tuple(float(v) for v in instance["bbox"])
    if not instance.get("segmentation"):
        return (0.0, 0.0, 0.0, 0.0)
    rle = segmentation_rle(instance["segmentation"], height, width)
    return tuple(float(v) for v in mask_utils.toBbox(rle))


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


def gt_beside_predictions(
    image: np.ndarray,
    gt_instances: list[dict],
    results: list[dict],
    frequency: dict[int, str],
    names: dict[int, str] | None = None,
    score_thr: float = 0.3,
    title: str = "",
) -> Figure:
    """Ground truth (left) beside the predictions scoring at least ``score_thr`` (right).

    ``image``: ``(H, W, 3)`` uint8 RGB; ``gt_instances`` / ``results``: the LVIS records of this
    image (see :mod:`lvisnb.viz.overlay`), ``frequency`` / ``names`` keyed by LVIS category id.
    """
    shown = [r for r in results if r.get("score", 1.0) >= score_thr]
    height, width = image.shape[:2]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.5 * height / max(width, 1)))
    draw_instances(left, image, gt_instances, frequency, names, legend=False)
    left.set_title(f"ground truth ({len(gt_instances)})", fontsize=9)
    draw_instances(right, image, shown, frequency, names)
    right.set_title(
        f"predictions, score >= {score_thr:g} ({len(shown)} of {len(results)})", fontsize=9
    )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
