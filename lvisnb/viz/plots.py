"""The kit's figure style and the plots of annotation statistics (notebooks 01, 02).

Colours are fixed per frequency group everywhere in the kit: :data:`FREQUENCY_COLOURS`; every
figure is written into a run directory with :func:`save`. The plots of one annotation file's
long tail (:func:`rank_frequency`, :func:`group_shares`, :func:`size_distribution`,
:func:`instances_per_image`, :func:`federated_labels`) and of what repeat-factor sampling shows
the model (:func:`repeat_factors_by_group`, :func:`epoch_composition`) each return a
``Figure``; the plots of training and evaluation are in :mod:`lvisnb.viz.metric_plots`.

Importing this module loads neither torch nor ipywidgets (a notebook that only plots starts
fast): seaborn, which imports ipywidgets (``seaborn.widgets``), is imported inside the functions
that draw with it (:func:`import_seaborn`).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lvisnb.annotations.categories import (
    COMMON_MAX_IMAGES,
    FREQUENCY_GROUPS,
    FREQUENCY_NAMES,
    RARE_MAX_IMAGES,
)
from lvisnb.annotations.statistics import RankFrequencyFit

FREQUENCY_COLOURS = {"r": "#d1495b", "c": "#edae49", "f": "#00798c"}
GROUP_ORDER = [FREQUENCY_NAMES[g] for g in FREQUENCY_GROUPS]
GROUP_PALETTE = {FREQUENCY_NAMES[g]: FREQUENCY_COLOURS[g] for g in FREQUENCY_GROUPS}
DOT_ZORDER = {"f": 3, "c": 4, "r": 5}  # rare dots on top: the fewest must not be hidden


def import_seaborn():
    """seaborn, imported on first use: it imports ipywidgets (see the module docstring)."""
    import seaborn  # imports ipywidgets: loaded by the plots that draw with it only

    return seaborn


def despine(fig: Figure) -> None:
    """Hide the top and right spines of every axes of ``fig`` (``seaborn.despine``)."""
    for ax in fig.axes:
        ax.spines[["top", "right"]].set_visible(False)


def save(fig: Figure, run_dir: str | os.PathLike, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` as ``run_dir/name.png`` and return the path."""
    path = Path(run_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def draw_group_thresholds(ax, axis: str = "y") -> None:
    """Dashed lines at LVIS's r/c and c/f boundaries (10 and 100 training images)."""
    line = ax.axhline if axis == "y" else ax.axvline
    for value in (RARE_MAX_IMAGES + 0.5, COMMON_MAX_IMAGES + 0.5):
        line(value, color="0.4", linestyle="--", linewidth=0.8, zorder=0)


def rank_frequency(
    counts: pd.DataFrame,
    fit: RankFrequencyFit | None = None,
    lvis_v1: pd.DataFrame | None = None,
    title: str = "Rank-frequency of categories",
) -> Figure:
    """Log-log plot of image count against rank, one dot per category coloured by r/c/f.

    ``counts`` has ``rank``, ``image_count``, ``frequency`` (as from
    :func:`lvisnb.annotations.statistics.category_counts`). With ``lvis_v1`` (real LVIS v1 train
    counts, :func:`lvisnb.annotations.statistics.lvis_v1_train_counts`) both are drawn against the
    *relative* rank ``rank / number of categories``, so data sets with different vocabularies share
    an axis; the r/c/f boundaries (10 and 100 images) are absolute and drawn as dashed lines.

    Groups come from the file's ``frequency`` (LVIS train counts) and ranks from this file's
    counts, so the groups' dots interleave (in a val file most of all): rare dots are drawn
    on top of common ones and those on top of frequent ones (:data:`DOT_ZORDER`), so that
    the many frequent dots hide none of the few rare ones.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    relative = lvis_v1 is not None
    used = counts[counts["image_count"] > 0]
    x = used["rank"] / len(counts) if relative else used["rank"]
    if lvis_v1 is not None:
        ref_x = lvis_v1["rank"] / len(lvis_v1)
        ax.plot(
            ref_x,
            lvis_v1["image_count"],
            color="0.55",
            linewidth=1.5,
            label=f"LVIS v1 train ({len(lvis_v1)} categories)",
        )
    for g in FREQUENCY_GROUPS:
        sel = (used["frequency"] == g).to_numpy()
        ax.scatter(
            np.asarray(x)[sel],
            used["image_count"].to_numpy()[sel],
            s=18,
            color=FREQUENCY_COLOURS[g],
            label=FREQUENCY_NAMES[g],
            zorder=DOT_ZORDER[g],
        )
    if fit is not None and not relative:
        ranks = np.geomspace(1, used["rank"].max(), 50)
        ax.plot(
            ranks,
            fit.predict(ranks),
            color="k",
            linewidth=1,
            label=f"fit: count ~ rank^-{fit.alpha:.2f} (R²={fit.r2:.2f})",
        )
    draw_group_thresholds(ax)
    ax.set(
        xscale="log",
        yscale="log",
        ylabel="images with the category (in this file)",
        xlabel="rank / number of categories" if relative else "rank",
        title=title,
    )
    ax.legend(frameon=False, fontsize=8)
    despine(fig)
    return fig


def group_shares(groups: pd.DataFrame) -> Figure:
    """Bars: share of categories vs share of instances in each frequency group.

    ``groups`` is :func:`lvisnb.annotations.statistics.frequency_groups`' table.
    """
    long = groups.reset_index().melt(
        id_vars=["frequency", "group"],
        value_vars=["category_share", "instance_share"],
        var_name="share of",
        value_name="share",
    )
    long["share of"] = long["share of"].map(
        {"category_share": "categories", "instance_share": "instances"}
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    import_seaborn().barplot(
        data=long,
        x="group",
        y="share",
        hue="share of",
        order=GROUP_ORDER,
        palette=["0.65", "0.25"],
        ax=ax,
    )
    for patch, g in zip(ax.patches, GROUP_ORDER * 2, strict=False):
        patch.set_edgecolor(GROUP_PALETTE[g])
        patch.set_linewidth(2)
    ax.set(xlabel="", ylabel="share", ylim=(0, 1), title="Categories vs instances per group")
    for container in ax.containers:
        ax.bar_label(
            container, fmt="%.0f%%", labels=[f"{v.get_height():.0%}" for v in container], fontsize=8
        )
    despine(fig)
    return fig


def size_distribution(annotations: pd.DataFrame, counts: pd.DataFrame) -> Figure:
    """Cumulative distribution of object size ``sqrt(area)`` (px, log x) per frequency group.

    ``annotations``: ``category_id`` and ``area`` (mask area, px^2) per instance; ``counts``:
    ``id`` and ``frequency`` per category (:func:`lvisnb.annotations.statistics.category_counts`).
    Each group's curve rises from 0 to 1 (the share of its instances at most that size; the
    legend gives the number of instances), so groups of very different sizes compare on one
    axis and the median size is read at 0.5. A density histogram normalised per group does
    not: a group of one instance is one bar of density 1 / bin width, which dwarfs the other
    groups; normalised over all groups (or as counts) the rare group, about 1% of LVIS
    instances, is flat along the axis. Groups without instances are left out. The COCO size
    boundaries 32 and 96 px (area 32^2 and 96^2) are drawn as dashed lines.
    """
    group = annotations["category_id"].map(counts.set_index("id")["frequency"])
    frame = pd.DataFrame(
        {
            "size": np.sqrt(annotations["area"].clip(lower=1)),
            "group": group.astype(str).map(FREQUENCY_NAMES),
        }
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    for g in FREQUENCY_GROUPS:
        sizes = np.sort(frame.loc[frame["group"] == FREQUENCY_NAMES[g], "size"].to_numpy())
        if not len(sizes):
            continue
        share = np.arange(1, len(sizes) + 1) / len(sizes)
        ax.step(
            np.r_[sizes[0], sizes],
            np.r_[0.0, share],
            where="post",
            linewidth=1.6,
            color=FREQUENCY_COLOURS[g],
            label=f"{FREQUENCY_NAMES[g]} ({len(sizes)})",
            zorder=DOT_ZORDER[g],
        )
    for edge, label in ((32, "small | medium"), (96, "medium | large")):
        ax.axvline(edge, color="0.3", linestyle="--", linewidth=0.8)
        ax.text(edge, 0.02, f" {label}", fontsize=8, va="bottom")
    ax.set(
        xscale="log",
        ylim=(0, 1.02),
        xlabel="object size sqrt(mask area) [px]",
        ylabel="share of the group's instances <= size",
        title="Object sizes by frequency group (cumulative)",
    )
    ax.legend(frameon=False, fontsize=8, title="group (instances)", title_fontsize=8)
    despine(fig)
    return fig


def instances_per_image(per_image: pd.DataFrame) -> Figure:
    """Histogram of annotated instances per image
    (:func:`lvisnb.annotations.statistics.instances_per_image`)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    top = int(per_image["instances"].max())
    bins = np.arange(0, top + 2) - 0.5 if top <= 60 else 60
    import_seaborn().histplot(per_image["instances"], bins=bins, color="0.35", ax=ax)
    ax.axvline(
        per_image["instances"].mean(),
        color=FREQUENCY_COLOURS["f"],
        linestyle="--",
        label=f"mean {per_image['instances'].mean():.1f}",
    )
    ax.set(xlabel="annotated instances in the image", ylabel="images", title="Instances per image")
    ax.legend(frameon=False)
    despine(fig)
    return fig


def federated_labels(federated: pd.DataFrame) -> Figure:
    """Per-image counts of positive, negative and not-exhaustive categories (box plots)."""
    long = federated.melt(
        value_vars=["positive", "negative", "not_exhaustive"], var_name="label", value_name="n"
    )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    import_seaborn().boxplot(data=long, x="label", y="n", color="0.8", ax=ax)
    ax.set(xlabel="", ylabel="categories per image", title="Federated labels per image")
    despine(fig)
    return fig


def repeat_factors_by_group(
    category_factors: dict[int, float], frequency: dict[int, str], threshold: float
) -> Figure:
    """Each category's RFS repeat factor ``r(c) = max(1, sqrt(t / f(c)))`` by frequency group."""
    frame = pd.DataFrame(
        {
            "r(c)": list(category_factors.values()),
            "group": [FREQUENCY_NAMES[frequency[c]] for c in category_factors],
        }
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    import_seaborn().stripplot(
        data=frame,
        x="group",
        y="r(c)",
        hue="group",
        order=GROUP_ORDER,
        palette=GROUP_PALETTE,
        size=6,
        jitter=0.25,
        legend=False,
        ax=ax,
    )
    ax.axhline(1, color="0.4", linestyle="--", linewidth=0.8)
    ax.set(xlabel="", ylabel="repeat factor r(c)", title=f"RFS repeat factors (t = {threshold:g})")
    despine(fig)
    return fig


def epoch_composition(composition: pd.DataFrame) -> Figure:
    """Grouped bars of the share of sampled instances-categories per group.

    ``composition``: rows r/c/f, one column per setting (e.g. "uniform", "RFS expected",
    "RFS observed"), values summing to 1 per column.
    """
    long = (
        composition.rename(index=FREQUENCY_NAMES)
        .reset_index(names="group")
        .melt(id_vars="group", var_name="sampling", value_name="share")
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    import_seaborn().barplot(
        data=long,
        x="group",
        y="share",
        hue="sampling",
        order=GROUP_ORDER,
        palette="Greys",
        edgecolor="0.2",
        ax=ax,
    )
    ax.set_yscale("log")
    ax.set(
        xlabel="",
        ylabel="share of sampled categories (log)",
        title="What one epoch shows the model",
    )
    for container in ax.containers:
        ax.bar_label(container, labels=[f"{v.get_height():.1%}" for v in container], fontsize=7)
    despine(fig)
    return fig
