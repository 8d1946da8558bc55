"""The plots of training and evaluation: AP against training data says what its x axis counts;
AP by group with intervals; paired differences."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lvisnb.viz import metric_plots  # noqa: E402
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
    fig = metric_plots.ap_vs_train_count(_table([5, 50, 500]), "AP_segm", "LVIS v1 train images")
    assert fig.axes[0].get_xlabel() == "LVIS v1 train images of the category (log)"
    xs = [x for c in fig.axes[0].collections for x in c.get_offsets()[:, 0].tolist()]
    assert sorted(xs) == [5, 50, 500]
    plt.close(fig)


def test_images_of_the_file_when_no_training_count_is_known():
    unknown = "unknown (no train file given)"
    fig = metric_plots.ap_vs_train_count(_table([None, None, None]), "AP_segm", unknown)
    assert "images in this file" in fig.axes[0].get_xlabel()
    xs = [x for c in fig.axes[0].collections for x in c.get_offsets()[:, 0].tolist()]
    assert sorted(xs) == [1, 3, 9]
    plt.close(fig)


def _over_seeds():
    """Two arms' means and intervals as lvisnb.methods.ranking.over_seeds gives them."""
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
    fig = metric_plots.ap_by_group_with_errors(summary, board)
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
    fig = metric_plots.paired_differences(differences)
    assert [ax.get_title() for ax in fig.axes] == ["box_AP", "box_APr"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["uniform+ce", "rfs+seesaw"]
    assert viz.FREQUENCY_COLOURS["r"] in {
        matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[1].lines
    }
    plt.close(fig)
