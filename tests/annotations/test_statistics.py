import numpy as np
import pandas as pd
import pytest

from lvisnb.annotations import statistics as analysis
from lvisnb.annotations.tables import LVISTables


@pytest.fixture
def tables():
    """3 images, categories 1 (f), 2 (c), 3 (r), hand-countable."""
    images = pd.DataFrame(
        {
            "id": [10, 11, 12],
            "width": [100] * 3,
            "height": [100] * 3,
            "path": ["a", "b", "c"],
            "neg_category_ids": [[3], [], [2, 3]],
            "not_exhaustive_category_ids": [[1], [], []],
        }
    )
    rows = [  # (id, image, category, area)
        (1, 10, 1, 100.0),
        (2, 10, 1, 2000.0),
        (3, 10, 2, 10000.0),
        (4, 11, 1, 500.0),
        (5, 11, 3, 50.0),
        (6, 12, 1, 9216.0),
    ]
    anns = pd.DataFrame(rows, columns=["id", "image_id", "category_id", "area"])
    anns[["x", "y", "w", "h"]] = 0.0
    cats = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["a", "b", "c"],
            "synset": [None] * 3,
            "frequency": pd.Categorical(["f", "c", "r"], categories=["r", "c", "f"]),
            "image_count": pd.array([None] * 3, dtype="Int64"),
            "instance_count": pd.array([None] * 3, dtype="Int64"),
        }
    )
    return LVISTables(images, anns, cats)


def test_category_counts(tables):
    counts = analysis.category_counts(tables).set_index("id")
    assert counts.loc[1, "image_count"] == 3 and counts.loc[1, "instance_count"] == 4
    assert counts.loc[2, "image_count"] == 1 and counts.loc[3, "instance_count"] == 1
    assert counts.loc[1, "rank"] == 1
    assert counts.loc[1, "image_fraction"] == pytest.approx(1.0)
    assert (counts["frequency_from_counts"] == "r").all()  # every count <= 10


def test_frequency_groups(tables):
    groups = analysis.frequency_groups(tables)
    assert groups.loc["f", "instances"] == 4 and groups.loc["r", "instances"] == 1
    assert groups.loc["c", "category_share"] == pytest.approx(1 / 3)
    assert groups["instance_share"].sum() == pytest.approx(1.0)
    assert groups.loc["f", "images_with_group"] == 3


def test_sizes_use_coco_thresholds(tables):
    sizes = analysis.object_sizes(tables)
    # areas 100, 2000, 10000, 500, 50, 9216 -> small: 100, 500, 50; medium: 2000; large: 10000, 9216
    assert sizes.loc["all", ["small", "medium", "large"]].tolist() == [3, 1, 2]
    assert sizes.loc["f", ["small", "medium", "large"]].tolist() == [2, 1, 1]
    assert sizes.loc["all", "large_share"] == pytest.approx(2 / 6)


def test_instances_and_federated_per_image(tables):
    per_image = analysis.instances_per_image(tables).set_index("image_id")
    assert per_image["instances"].tolist() == [3, 2, 1]
    assert per_image["categories"].tolist() == [2, 2, 1]
    fed = analysis.federated_labels(tables).set_index("image_id")
    assert fed.loc[12, "negative"] == 2 and fed.loc[10, "not_exhaustive"] == 1
    assert fed.loc[10, "verified"] == 3 and fed.loc[10, "unverified"] == 0
    assert fed.loc[12, "unverified"] == 0 and fed.loc[11, "unverified"] == 1


def test_rank_frequency_fit_recovers_a_power_law():
    ranks = np.arange(1, 201)
    counts = pd.DataFrame({"rank": ranks, "image_count": np.round(5000 * ranks**-1.3)})
    fit = analysis.rank_frequency_fit(counts)
    assert fit.alpha == pytest.approx(1.3, abs=0.02)
    assert fit.r2 > 0.99
    assert fit.predict(np.array([1.0]))[0] == pytest.approx(5000, rel=0.05)


def test_report_on_toy(toy_train):
    from lvisnb.annotations.tables import read_tables

    report = analysis.long_tail_report(read_tables(toy_train))
    summary = report.summary()
    assert summary["categories"] == 40 and summary["categories_with_images"] == 40
    counts = report.counts
    assert (counts["frequency"] == counts["frequency_from_counts"]).all()
    assert sum(g["categories"] for g in summary["groups"].values()) == 40


def test_lvis_v1_train_counts():
    ref = analysis.lvis_v1_train_counts()
    assert len(ref) == 1203 and ref["rank"].iloc[0] == 1
    assert ref["image_count"].is_monotonic_decreasing
