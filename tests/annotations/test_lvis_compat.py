import copy

import lvis
import numpy as np
import pytest

from lvisnb.annotations import validate as data
from lvisnb.annotations.lvis_compat import LVISEval


def _detections_from_gt(gt, jitter, rng):
    """Ground-truth boxes as detections, shifted by up to ``jitter`` of their size."""
    results = []
    for ann in gt.anns.values():
        x, y, w, h = ann["bbox"]
        dx, dy = rng.uniform(-jitter, jitter, size=2) * (w, h)
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": [x + dx, y + dy, w, h],
                "score": float(rng.uniform(0.5, 1)),
            }
        )
    return results


def test_official_accumulate_breaks_on_numpy2_and_ours_does_not(toy_val):
    gt = data.load_lvis(toy_val)
    results = _detections_from_gt(gt, 0.0, np.random.default_rng(0))
    official = lvis.LVISEval(gt, copy.deepcopy(results), "bbox")
    official.evaluate()
    if not hasattr(np, "float"):
        with pytest.raises(AttributeError):
            official.accumulate()
    ours = LVISEval(gt, results, "bbox")
    ours.run()
    metrics = ours.get_results()
    assert metrics["AP"] == pytest.approx(1.0)
    assert set(metrics) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"}
    assert not hasattr(np, "float")  # numpy itself was not patched


def test_lvis_eval_scores_imperfect_detections_below_one(toy_val):
    gt = data.load_lvis(toy_val)
    results = _detections_from_gt(gt, 0.3, np.random.default_rng(1))
    ev = LVISEval(gt, results, "bbox")
    ev.run()
    metrics = ev.get_results()
    assert 0.05 < metrics["AP"] < 0.95
    assert metrics["AP50"] > metrics["AP75"]
    for group in ("APr", "APc", "APf"):
        assert 0 <= metrics[group] <= 1
