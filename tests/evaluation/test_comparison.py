"""The best and worst categories of an evaluation per frequency group
(lvisnb.evaluation.comparison.best_and_worst); compare() itself: test_bootstrap.py."""

import numpy as np
import pandas as pd

from lvisnb.evaluation import comparison


def test_best_and_worst_per_group():
    per_category = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "name": ["a", "b", "c", "d", "e", "f"],
            "frequency": ["r", "r", "r", "r", "c", "f"],
            "train_image_count": [1, 2, 3, 4, 50, 500],
            "val_instances": [1, 1, 0, 1, 2, 3],
            "AP_segm": [0.1, 0.4, np.nan, 0.3, 0.5, 0.2],
        }
    )
    table = comparison.best_and_worst(per_category, "AP_segm", n=1)
    rows = list(zip(table["frequency"], table["rank"], table["name"], strict=True))
    # r: NaN skipped, best 0.4 (b), worst 0.1 (a); c and f have one category: best only
    assert rows == [("r", "best", "b"), ("r", "worst", "a"), ("c", "best", "e"), ("f", "best", "f")]


def test_best_and_worst_without_any_ap():
    columns = ["id", "name", "frequency", "train_image_count", "val_instances", "AP_segm"]
    per_category = pd.DataFrame([[1, "a", "r", 1, 0, np.nan]], columns=columns)
    assert comparison.best_and_worst(per_category).empty
