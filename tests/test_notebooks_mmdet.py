"""Notebooks 03, 04 and 05 on a model of mmdetection's own (issue 23 §1): the checkpoint
parameter takes an mmdetection file as it takes a kit checkpoint.

The file is what the parity harness makes: mmdetection's R-50 LVIS v1 row built from its own
config with seeded weights and toy-LVIS's 40 categories, saved by mmengine with their names in
``meta["dataset_meta"]["classes"]`` (as mmdetection 3.x saves them), run at the row's 800 px on
3 val images."""

import json
from pathlib import Path

import nbformat
import pytest
import torch

from lvisnb import notebook_runner as runner
from tests.engine.test_inference import _val_subset
from tests.model.mmdet_reference import (
    MMDET_AVAILABLE,
    SKIP_REASON,
    build_reference,
    save_reference_checkpoint,
)

ROOT = Path(__file__).resolve().parent.parent / "notebooks"
R50 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
pytestmark = [pytest.mark.skipif(not MMDET_AVAILABLE, reason=SKIP_REASON), pytest.mark.slow]


@pytest.fixture(scope="module")
def mmdet_file(tmp_path_factory, toy_val):
    names = [
        c["name"]
        for c in sorted(json.loads(toy_val.read_text())["categories"], key=lambda c: c["id"])
    ]
    model, _ = build_reference(R50, seed=8, num_classes=len(names))
    with torch.no_grad():  # a confident background: tens of detections an image, not 300
        model.roi_head.bbox_head.fc_cls.bias[-1] += 9.0
    folder = tmp_path_factory.mktemp("mmdet")
    return save_reference_checkpoint(model, folder / "r50_toy_categories.pth", classes=names)


def _run(notebook: str, run_dir: Path, parameters: dict) -> None:
    executed = runner.run_notebooks(
        run_dir, notebooks_dir=ROOT, select=[notebook], parameters=parameters
    )
    cells = nbformat.read(executed[0], as_version=4).cells
    errors = [
        o
        for c in cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors[0].get("evalue")


def test_notebooks_03_and_04_on_an_mmdetection_file(mmdet_file, toy_root, toy_val, tmp_path):
    ann, kept = _val_subset(toy_val, tmp_path, n_images=1)
    common = {"image_root": str(toy_root), "checkpoint": str(mmdet_file)}
    run_03 = tmp_path / "run03"
    _run("03_per_frequency_ap.ipynb", run_03, {**common, "ann_file": str(ann), "max_dets": 20})
    records = json.loads((run_03 / "results.json").read_text())
    assert records and {r["image_id"] for r in records} <= kept
    assert max(sum(r["image_id"] == i for r in records) for i in kept) <= 20
    metrics = json.loads((run_03 / "metrics.json").read_text())
    assert 0 <= metrics["metrics"]["segm"]["AP"] <= 1
    # notebook 04 with no results yet runs the same file into its run_dir
    run_04 = tmp_path / "run04"
    _run("04_mask_visualisation.ipynb", run_04, {**common, "ann_file": str(ann), "device": "cpu"})
    assert json.loads((run_04 / "results.json").read_text())
    assert (run_04 / "vis_grid.png").stat().st_size > 10_000


def test_notebook_05_retrains_an_mmdetection_files_classifier(
    mmdet_file, toy_root, toy_train, toy_val, tmp_path
):
    parameters = {
        "checkpoint": str(mmdet_file),
        "train_ann": str(toy_train),
        "val_ann": str(toy_val),
        "image_root": str(toy_root),
        "methods": "ce",
        "uniform": True,
        "seeds": 1,
        "iterations": 150,
        "train_images": 2,
        "val_images": 1,
        "masks": False,
    }
    _run("05_long_tail_methods.ipynb", tmp_path, parameters)
    summary = json.loads((tmp_path / "long_tail_methods.json").read_text())
    assert summary["protocol"] == "decoupled" and summary["arms"] == ["uniform+ce", "rfs+ce"]
    assert 0 <= summary["leaderboard"][0]["box_AP"] <= 1
