"""Plots of what training and evaluation measured (notebooks 02, 03, 05); each returns a
``Figure``.

The loss curve (:func:`loss_curve`, live in a notebook: :class:`LiveLossPlot`), AP by frequency
group (:func:`ap_by_group`, with bootstrap intervals: :func:`ap_by_group_with_errors`), paired
differences against a baseline (:func:`paired_differences`) and per-category AP against
training data (:func:`ap_vs_train_count`). Colours and the figure style are those of
:mod:`lvisnb.viz.plots`; like it, importing this module loads neither torch nor ipywidgets.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lvisnb.annotations.categories import FREQUENCY_NAMES
from lvisnb.viz.plots import (
    FREQUENCY_COLOURS,
    GROUP_ORDER,
    GROUP_PALETTE,
    despine,
    draw_group_thresholds,
    import_seaborn,
)


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
        from IPython.display import display  # a notebook's front end: only when drawing live

        fig = loss_curve(self.records)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def ap_by_group(metrics: dict[str, dict[str, float]]) -> Figure:
    """Bars of AP, APr, APc, APf for box (``bbox``) and mask (``segm``) AP.

    ``metrics``: ``lvisnb.evaluation.evaluator.evaluate(...).metrics``; undefined values (-1) are
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
    import_seaborn().barplot(data=frame, x="iou type", y="AP", hue="metric", palette=palette, ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.3f", fontsize=7)
    ax.set(xlabel="", ylabel="AP (IoU 0.50:0.95)", title="AP by frequency group", ylim=(0, 1))
    ax.legend(frameon=False, ncols=4, loc="upper left")
    despine(fig)
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

    ``summary``: :func:`lvisnb.methods.ranking.over_seeds` (``<prefix>_<metric>`` with ``_low``
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
    despine(fig)
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
    despine(fig)
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
    import_seaborn().scatterplot(
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
        draw_group_thresholds(ax, axis="x")
    label = {"AP_segm": "mask AP", "AP_bbox": "box AP"}.get(column, column)
    ax.set(xlabel=xlabel, ylabel=label, title=f"Per-category {label} against training data")
    ax.legend(frameon=False, title="")
    despine(fig)
    return fig
