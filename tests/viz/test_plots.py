"""The AP-against-training-data plot says what its x axis counts."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lvisnb.viz import plots as viz  # noqa: E402


def _table(train):
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "frequency": pd.Categorical(["r", "c", "f"], categories=["r", "c", "f"]),
            "train_image_count": pd.array(train, dtype="Int64"),
            "val_images": [1, 3, 9],
            "AP_segm": [0.1, 0.2, 0.4],
        }
    )


def test_training_counts_on_the_x_axis_when_known():
    fig = viz.ap_vs_train_count(_table([5, 50, 500]), "AP_segm", "LVIS v1 train images")
    assert fig.axes[0].get_xlabel() == "LVIS v1 train images of the category (log)"
    xs = [x for c in fig.axes[0].collections for x in c.get_offsets()[:, 0].tolist()]
    assert sorted(xs) == [5, 50, 500]
    plt.close(fig)


def test_images_of_the_file_when_no_training_count_is_known():
    unknown = "unknown (no train file given)"
    fig = viz.ap_vs_train_count(_table([None, None, None]), "AP_segm", unknown)
    assert "images in this file" in fig.axes[0].get_xlabel()
    xs = [x for c in fig.axes[0].collections for x in c.get_offsets()[:, 0].tolist()]
    assert sorted(xs) == [1, 3, 9]
    plt.close(fig)


def test_importing_the_plotting_modules_loads_neither_torch_nor_ipywidgets():
    """seaborn imports ipywidgets (seaborn.widgets): only the functions drawing with it load it."""
    import subprocess
    import sys

    modules = (
        "lvisnb.viz.plots",
        "lvisnb.annotations.statistics",
        "lvisnb.viz.gallery",
        "lvisnb.viz.scene",
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = [m for m in ('torch', 'ipywidgets', 'seaborn') if m in sys.modules]\n"
        "    print(name, loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [f"{name} []" for name in modules]


def _counts():
    """Groups interleave along the rank, as in a val file: every group at every rank."""
    frequency = ["f", "c", "r"] * 10
    return pd.DataFrame(
        {
            "id": range(1, 31),
            "rank": range(1, 31),
            "image_count": [40 - i for i in range(30)],
            "frequency": pd.Categorical(frequency, categories=["r", "c", "f"]),
        }
    )


def test_rank_frequency_draws_rare_dots_over_common_over_frequent():
    fig = viz.rank_frequency(_counts())
    ax = fig.axes[0]
    zorder = {c.get_label(): c.get_zorder() for c in ax.collections}
    assert zorder["rare"] > zorder["common"] > zorder["frequent"]
    # the legend keeps the order r, c, f
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rare", "common", "frequent"]
    plt.close(fig)


def test_size_distribution_is_not_dwarfed_by_a_group_of_one_instance():
    """One rare instance beside 50 common and 200 frequent ones: every group's curve rises
    from 0 to 1 on a shared axis (a per-group density made the lone rare instance a bar
    1 / bin width high, flattening the others)."""
    counts = _counts()
    rng = np.random.default_rng(0)
    ids = [3] + [2] * 50 + [1] * 200  # 3 is rare, 2 common, 1 frequent
    annotations = pd.DataFrame({"category_id": ids, "area": rng.uniform(100, 40_000, len(ids))})
    fig = viz.size_distribution(annotations, counts)
    ax = fig.axes[0]
    curves = {line.get_label(): line.get_ydata() for line in ax.lines if line.get_label()[0] != "_"}
    assert set(curves) == {"rare (1)", "common (50)", "frequent (200)"}
    for y in curves.values():
        assert y[0] == 0 and y[-1] == 1 and np.all(np.diff(y) >= 0)
    assert ax.get_ylim()[1] <= 1.05
    plt.close(fig)


def _over_seeds():
    """Two arms' means and intervals as lvisnb.methods.leaderboard.over_seeds gives them."""
    rows = []
    for arm, base in (("rfs+ce", 0.2), ("rfs+seesaw", 0.3)):
        row = {"sampler": arm.split("+")[0], "method": arm.split("+")[1], "seeds": 3}
        for k, name in enumerate(("AP", "APr", "APc", "APf")):
            mean = base + k / 10
            row |= {
                f"box_{name}": mean,
                f"box_{name}_low": mean - 0.05,
                f"box_{name}_high": mean + 0.05,
            }
        rows.append(row)
    rows[0]["box_APr_low"] = rows[0]["box_APr_high"] = np.nan  # one seed: no interval
    return pd.DataFrame(rows)


def test_ap_by_group_with_errors_draws_a_bar_per_arm_and_group_with_its_interval():
    summary = _over_seeds()
    board = pd.DataFrame(
        {
            "sampler": ["rfs"] * 3,
            "method": ["ce"] * 3,
            "seed": [0, 1, 2],
            "box_AP": [0.1, 0.2, 0.3],
            "box_APr": [0.3] * 3,
            "box_APc": [0.4] * 3,
            "box_APf": [0.5] * 3,
        }
    )
    fig = viz.ap_by_group_with_errors(summary, board)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rfs+ce", "rfs+seesaw"]
    bars = [c for c in ax.containers if hasattr(c, "errorbar")]
    assert [c.get_label() for c in bars] == ["AP", "APr", "APc", "APf"]
    heights = [round(p.get_height(), 3) for c in bars for p in c.patches]
    assert heights == [0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.6]
    segments = bars[0].errorbar.lines[2][0].get_segments()  # AP of rfs+ce: 0.15 .. 0.25
    assert [round(y, 3) for y in segments[0][:, 1]] == [0.15, 0.25]
    dots = [
        y for c in ax.collections if c.get_offsets().shape[0] == 3 for y in c.get_offsets()[:, 1]
    ]
    assert sorted(dots)[:3] == [0.1, 0.2, 0.3]  # box_AP of the three seeds
    plt.close(fig)


def test_paired_differences_plot_has_a_panel_per_metric_and_a_zero_line():
    differences = pd.DataFrame(
        {
            "arm": ["uniform+ce", "rfs+seesaw"] * 2,
            "metric": ["box_AP"] * 2 + ["box_APr"] * 2,
            "mean": [-0.02, 0.01, -0.05, 0.04],
            "low": [-0.04, -0.01, -0.09, 0.01],
            "high": [0.0, 0.03, -0.01, 0.07],
        }
    )
    fig = viz.paired_differences(differences)
    assert [ax.get_title() for ax in fig.axes] == ["box_AP", "box_APr"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["uniform+ce", "rfs+seesaw"]
    assert viz.FREQUENCY_COLOURS["r"] in {
        matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[1].lines
    }
    plt.close(fig)
