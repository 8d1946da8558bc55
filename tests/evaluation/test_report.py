"""evaluation.json, the headline of an evaluation in a run directory
(lvisnb.evaluation.report.evaluation_summary, write_evaluation_summary)."""

import json
from types import SimpleNamespace

import pytest

from lvisnb.evaluation import report


def _evaluation(results="results.json"):
    names = ("AP", "AP50", "APr", "APc", "APf")
    metrics = {
        "bbox": dict(zip(names, (0.25, 0.5, -1.0, 0.125, 0.375), strict=True)),
        "segm": dict(zip(names, (0.2, 0.4, 0.0, 0.1, 0.3), strict=True)),
    }
    info = {"gt": "val.json", "results": results, "backend": "fast"}
    return SimpleNamespace(metrics=metrics, info=info)


def test_evaluation_summary_keeps_the_headline_metrics():
    summary = report.evaluation_summary(_evaluation(), inference_seconds=12.5)
    assert summary == {
        "ann_file": "val.json",
        "results_file": "results.json",
        "backend": "fast",
        "inference_seconds": 12.5,
        "box": {"AP": 0.25, "APr": -1.0, "APc": 0.125, "APf": 0.375},
        "mask": {"AP": 0.2, "APr": 0.0, "APc": 0.1, "APf": 0.3},
    }
    segm_only = _evaluation()
    del segm_only.metrics["bbox"]
    assert "box" not in report.evaluation_summary(segm_only)
    assert report.evaluation_summary(segm_only)["inference_seconds"] is None


def test_write_evaluation_summary_refuses_a_users_file(tmp_path):
    path = report.write_evaluation_summary(tmp_path, _evaluation(), 3.0)
    assert path == tmp_path / "evaluation.json"
    assert json.loads(path.read_text())["box"]["APf"] == 0.375
    report.write_evaluation_summary(tmp_path, _evaluation("other.json"))  # its own: replaced
    assert json.loads(path.read_text())["results_file"] == "other.json"
    path.write_text("[1, 2]")
    with pytest.raises(FileExistsError, match="not a summary of an evaluation the kit wrote"):
        report.write_evaluation_summary(tmp_path, _evaluation())
    assert path.read_text() == "[1, 2]"
