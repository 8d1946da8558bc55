"""Plots for the notebooks (seaborn on matplotlib). Each function returns a ``Figure``.

Colours are fixed per frequency group everywhere in the kit: :data:`FREQUENCY_COLOURS`.

Importing this module loads neither torch nor ipywidgets (a notebook that only plots starts
fast): seaborn, which imports ipywidgets (``seaborn.widgets``), is imported inside the
functions that draw with it, the browser (:mod:`lvisnb.viz.browse`) on first use, and torch only
where image pixels are read (:meth:`lvisnb.viz.scene.Scene.image`).
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
from lvisnb.viz.gallery import category_gallery as category_gallery
from lvisnb.viz.overlay import draw_federated as draw_federated
from lvisnb.viz.overlay import draw_instances
from lvisnb.viz.overlay import plot_instances as plot_instances

FREQUENCY_COLOURS = {"r": "#d1495b", "c": "#edae49", "f": "#00798c"}
GROUP_ORDER = [FREQUENCY_NAMES[g] for g in FREQUENCY_GROUPS]
GROUP_PALETTE = {FREQUENCY_NAMES[g]: FREQUENCY_COLOURS[g] for g in FREQUENCY_GROUPS}
DOT_ZORDER = {"f": 3, "c": 4, "r": 5}  # rare dots on top: the fewest must not be hidden


def _seaborn():
    """seaborn, imported on first use: it imports ipywidgets (see the module docstring)."""
    import seaborn

    return seaborn


def _despine(fig: Figure) -> None:
    """Hide the top and right spines of every axes of ``fig`` (``seaborn.despine``)."""
    for ax in fig.axes:
        ax.spines[["top", "right"]].set_visible(False)


def save(fig: Figure, run_dir: str | os.PathLike, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` as ``run_dir/name.png`` and return the path."""
    path = Path(run_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _draw_group_thresholds(ax, axis: str = "y") -> None:
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
    _draw_group_thresholds(ax)
    ax.set(
        xscale="log",
        yscale="log",
        ylabel="images with the category (in this file)",
        xlabel="rank / number of categories" if relative else "rank",
        title=title,
    )
    ax.legend(frameon=False, fontsize=8)
    _despine(fig)
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
    _seaborn().barplot(
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
    _despine(fig)
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
    _despine(fig)
    return fig


def instances_per_image(per_image: pd.DataFrame) -> Figure:
    """Histogram of annotated instances per image
    (:func:`lvisnb.annotations.statistics.instances_per_image`)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    top = int(per_image["instances"].max())
    bins = np.arange(0, top + 2) - 0.5 if top <= 60 else 60
    _seaborn().histplot(per_image["instances"], bins=bins, color="0.35", ax=ax)
    ax.axvline(
        per_image["instances"].mean(),
        color=FREQUENCY_COLOURS["f"],
        linestyle="--",
        label=f"mean {per_image['instances'].mean():.1f}",
    )
    ax.set(xlabel="annotated instances in the image", ylabel="images", title="Instances per image")
    ax.legend(frameon=False)
    _despine(fig)
    return fig


def federated_labels(federated: pd.DataFrame) -> Figure:
    """Per-image counts of positive, negative and not-exhaustive categories (box plots)."""
    long = federated.melt(
        value_vars=["positive", "negative", "not_exhaustive"], var_name="label", value_name="n"
    )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _seaborn().boxplot(data=long, x="label", y="n", color="0.8", ax=ax)
    ax.set(xlabel="", ylabel="categories per image", title="Federated labels per image")
    _despine(fig)
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
    _seaborn().stripplot(
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
    _despine(fig)
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
    _seaborn().barplot(
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
    _despine(fig)
    return fig


def loss_curve(records: list[dict], smooth: int = 10) -> Figure:
    """Training losses (moving average over ``smooth`` iterations) and the lr, per iteration."""
    frame = pd.DataFrame(records)
    if frame.empty:
        raise ValueError("no training records to plot")
    loss_cols = [c for c in frame.columns if c.startswith("loss")]
    fig, ax = plt.subplots(figsize=(7, 4))
    smoothed = frame[loss_cols].rolling(max(1, smooth), min_periods=1).mean()
    for col in loss_cols:
        ax.plot(frame["iter"], smoothed[col], label=col, linewidth=2 if col == "loss" else 1)
    ax.set(xlabel="iteration", ylabel="loss", yscale="log", title="Training loss")
    lr_ax = ax.twinx()
    lr_ax.plot(frame["iter"], frame["lr"], color="0.6", linestyle=":", label="lr")
    lr_ax.set_ylabel("learning rate")
    ax.legend(frameon=False, fontsize=7, loc="upper right")
    return fig


class LiveLossPlot:
    """A ``train(..., callback=LiveLossPlot())`` that redraws the loss curve every ``every``
    iterations in the notebook's output (one display area, updated in place)."""

    def __init__(self, every: int = 10):
        self.every = every
        self.records: list[dict] = []
        self._handle = None

    def __call__(self, record: dict) -> None:
        self.records.append(record)
        if len(self.records) % self.every:
            return
        from IPython.display import display

        fig = loss_curve(self.records)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def ap_by_group(metrics: dict[str, dict[str, float]]) -> Figure:
    """Bars of AP, APr, APc, APf for box (``bbox``) and mask (``segm``) AP.

    ``metrics``: ``lvisnb.evaluation.evaluate.evaluate(...).metrics``; undefined values (-1) are
    left out.
    """
    rows = [
        {
            "iou type": {"bbox": "box", "segm": "mask"}.get(iou_type, iou_type),
            "metric": name,
            "AP": values[name],
        }
        for iou_type, values in metrics.items()
        for name in ("APr", "APc", "APf", "AP")
        if values.get(name, -1) >= 0
    ]
    frame = pd.DataFrame(rows)
    palette = {
        "APr": FREQUENCY_COLOURS["r"],
        "APc": FREQUENCY_COLOURS["c"],
        "APf": FREQUENCY_COLOURS["f"],
        "AP": "0.5",
    }
    fig, ax = plt.subplots(figsize=(7, 4))
    _seaborn().barplot(data=frame, x="iou type", y="AP", hue="metric", palette=palette, ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.3f", fontsize=7)
    ax.set(xlabel="", ylabel="AP (IoU 0.50:0.95)", title="AP by frequency group", ylim=(0, 1))
    ax.legend(frameon=False, ncols=4, loc="upper left")
    _despine(fig)
    return fig


def _arm_labels(frame: pd.DataFrame) -> pd.Series:
    """``frame["arm"]``, or ``<sampler>+<method>`` from a leaderboard's columns."""
    if "arm" in frame.columns:
        return frame["arm"].astype(str)
    return frame["sampler"].astype(str) + "+" + frame["method"].astype(str)


def ap_by_group_with_errors(
    summary: pd.DataFrame, board: pd.DataFrame | None = None, prefix: str = "box"
) -> Figure:
    """Bars of AP, APr, APc, APf per arm (mean over seeds) with their 95% intervals.

    ``summary``: :func:`lvisnb.methods.leaderboard.over_seeds` (``<prefix>_<metric>`` with ``_low``
    / ``_high``; an ``arm`` column or ``sampler`` and ``method``). ``board``: the leaderboard's
    runs, drawn as dots (one per seed) over their arm's bar. Error bars span the t-interval
    (none for a single seed); undefined metrics (NaN) are left out.
    """
    names = ["AP", "APr", "APc", "APf"]
    colours = ["0.55", FREQUENCY_COLOURS["r"], FREQUENCY_COLOURS["c"], FREQUENCY_COLOURS["f"]]
    arms = list(_arm_labels(summary))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(arms) + 1), 4))
    x = np.arange(len(arms))
    for k, (name, colour) in enumerate(zip(names, colours, strict=True)):
        column = f"{prefix}_{name}"
        mean = summary[column].to_numpy(float)
        low = summary[f"{column}_low"].to_numpy(float)
        high = summary[f"{column}_high"].to_numpy(float)
        errors = np.nan_to_num(np.stack([mean - low, high - mean]), nan=0.0)
        offset = x + (k - (len(names) - 1) / 2) * width
        ax.bar(
            offset,
            np.nan_to_num(mean),
            width,
            color=colour,
            label=name,
            edgecolor="0.2",
            linewidth=0.5,
            yerr=errors,
            capsize=2,
            error_kw={"linewidth": 0.8},
        )
        if board is not None:
            labels = _arm_labels(board)
            for j, arm in enumerate(arms):
                values = board.loc[labels == arm, column].dropna().to_numpy(float)
                ax.scatter(np.full(len(values), offset[j]), values, s=9, color="0.1", zorder=3)
    ax.set_xticks(x, arms)
    ax.set(
        ylabel=f"{prefix} AP (IoU 0.50:0.95)",
        title=f"{prefix} AP by frequency group: mean over seeds, 95% interval",
    )
    ax.legend(frameon=False, ncols=4, loc="upper left", fontsize=8)
    ax.set_ylim(0, max(0.05, ax.get_ylim()[1] * 1.1))
    _despine(fig)
    return fig


def paired_differences(differences: pd.DataFrame) -> Figure:
    """Each arm's paired difference from the baseline, one panel per metric (a forest plot).

    ``differences``: :func:`lvisnb.methods.long_tail_summary.paired_differences` (``arm``,
    ``metric``, ``mean``, ``low``, ``high``). A dot is the mean difference over seeds, its line the
    95% t-interval; an interval that crosses the dashed zero line does not tell the arm from the
    baseline. Panels are coloured by frequency group (AP in grey).
    """
    metrics = list(dict.fromkeys(differences["metric"]))
    arms = list(dict.fromkeys(differences["arm"]))
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(2.4 * len(metrics) + 1.5, 0.5 * len(arms) + 1.5),
        sharey=True,
        squeeze=False,
    )
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = differences[differences["metric"] == metric].set_index("arm").reindex(arms)
        group = metric[-1] if metric[-3:-1] == "AP" else ""  # box_APr -> r, box_AP -> ""
        colour = FREQUENCY_COLOURS.get(group, "0.35")
        y = np.arange(len(arms))
        mean = rows["mean"].to_numpy(float)
        errors = np.nan_to_num(np.stack([mean - rows["low"], rows["high"] - mean]), nan=0.0)
        ax.errorbar(mean, y, xerr=errors, fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="0.4", linestyle="--", linewidth=0.8)
        ax.set(title=metric, xlabel="difference")
        ax.set_yticks(y, arms)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    axes[0][0].invert_yaxis()  # the first arm on top (the axes share y: invert once)
    axes[0][0].set_ylabel("arm minus baseline")
    _despine(fig)
    fig.tight_layout()
    return fig


def ap_vs_train_count(
    per_category: pd.DataFrame, column: str = "AP_segm", count_source: str | None = None
) -> Figure:
    """Per-category AP (``column``) against its number of training images, log x.

    ``per_category``: ``evaluate(...).per_category`` (``train_image_count``, ``val_images``,
    ``frequency``); categories without val ground truth (NaN AP) are left out. ``count_source``:
    what the training counts are (``evaluation.info["train_count_source"]``), for the axis.
    Where no training count is known (no train file, not a whole LVIS category set) the x axis
    is the number of images *of the evaluated file* with the category, and says so. Dashed
    lines: the r/c and c/f boundaries at 10 and 100 training images.
    """
    known = per_category["train_image_count"].notna().any()
    count = "train_image_count" if known else "val_images"
    frame = per_category.dropna(subset=[column, count]).copy()
    frame = frame[frame[count] > 0]
    frame["group"] = frame["frequency"].astype(str).map(FREQUENCY_NAMES)
    frame["train images"] = frame[count].astype(float)
    xlabel = f"{count_source or 'training images'} of the category (log)"
    if not known:
        xlabel = "images in this file with the category (log; no training counts known)"
    fig, ax = plt.subplots(figsize=(7, 4))
    _seaborn().scatterplot(
        data=frame,
        x="train images",
        y=column,
        hue="group",
        hue_order=GROUP_ORDER,
        palette=GROUP_PALETTE,
        s=40,
        ax=ax,
    )
    ax.set_xscale("log")
    if known:  # the r/c/f boundaries are numbers of training images
        _draw_group_thresholds(ax, axis="x")
    label = {"AP_segm": "mask AP", "AP_bbox": "box AP"}.get(column, column)
    ax.set(xlabel=xlabel, ylabel=label, title=f"Per-category {label} against training data")
    ax.legend(frameon=False, title="")
    _despine(fig)
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


# the browser lives in lvisnb.viz.browse (ipywidgets), imported when first used: lvisnb.viz.plots
# itself loads neither ipywidgets nor torch; notebooks reach everything through lvisnb.viz.plots


def browse(*args, **kwargs):
    """:func:`lvisnb.viz.browse.browse` (the interactive browser of notebook 04)."""
    from lvisnb.viz import browse as module

    return module.browse(*args, **kwargs)


def show(*args, **kwargs):
    """:func:`lvisnb.viz.browse.show` (the browser, or its static grid without a front end)."""
    from lvisnb.viz import browse as module

    return module.show(*args, **kwargs)


def view_grid(*args, **kwargs):
    """:func:`lvisnb.viz.browse.view_grid` (a static grid of images with their overlays)."""
    from lvisnb.viz import browse as module

    return module.view_grid(*args, **kwargs)
