"""The plots of annotation statistics, and what importing the plotting modules loads."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lvisnb.viz import plots as viz  # noqa: E402


def test_importing_the_plotting_modules_loads_neither_torch_nor_ipywidgets():
    """seaborn imports ipywidgets (seaborn.widgets): only the functions drawing with it load it."""
    import subprocess
    import sys

    modules = (
        "lvisnb.viz.plots",
        "lvisnb.viz.metric_plots",
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
