"""The AP-against-training-data plot says what its x axis counts."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from lvisnb import viz  # noqa: E402


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
