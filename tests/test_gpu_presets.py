"""benchmarks/gpu_presets.py: its --tiny CPU mode for every loss, and its RESULTS.md section."""

import argparse
import importlib.util
import math
import shutil
from pathlib import Path

import pytest
import torch

from lvisnb.model.losses import CLS_LOSSES
from lvisnb.model.presets import get_preset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SPEC = importlib.util.spec_from_file_location("gpu_presets", BENCHMARKS / "gpu_presets.py")
gpu_presets = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gpu_presets)  # a script, not a package module: loaded by path
from _results import read_section  # noqa: E402  (on sys.path once gpu_presets is loaded)

R50_V1 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
R50_V05 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_2x_lvis_v0.5"


def test_synthetic_batch_is_lvis_shaped():
    preset = get_preset(R50_V1, **gpu_presets.TINY_OVERRIDES)
    images, targets = gpu_presets.synthetic_batch(preset, 5, torch.Generator().manual_seed(0))
    assert len(images) == len(targets) == preset.samples_per_gpu
    height, width = max(preset.train_scales), preset.max_size
    for image, target in zip(images, targets, strict=True):
        assert image.shape == (3, height, width) and 0 <= image.min() <= image.max() <= 1
        boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
        assert boxes.shape == (5, 4) and labels.shape == (5,) and labels.dtype == torch.int64
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all()
        assert (boxes[:, 3] <= height).all() and (boxes[:, 2:] > boxes[:, :2]).all()
        assert labels.min() >= 1 and labels.max() <= preset.num_classes
        assert masks.shape == (5, height, width) and masks.dtype == torch.uint8
        # each mask fills its box: area = box area
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert torch.equal(masks.sum(dim=(1, 2)).float(), areas)


def test_class_counts_follow_the_preset_classes():
    assert gpu_presets.class_counts(get_preset(R50_V1)).shape == (1203,)
    assert gpu_presets.class_counts(get_preset(R50_V05)).shape == (1230,)
    assert (gpu_presets.class_counts(get_preset(R50_V05)) >= 1).all()


def test_tiny_mode_every_loss_writes_a_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    shutil.copy(gpu_presets.RESULTS, results)
    real_before = gpu_presets.RESULTS.read_text()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core machine, 2 threads wait on each other: 5x slower
    try:
        rows = gpu_presets.main(
            ["--tiny", "--amp", "off", "--warmup", "0", "--write", "--results", str(results)]
        )
    finally:
        torch.set_num_threads(threads)

    assert [row["loss"] for row in rows] == list(CLS_LOSSES)
    for row in rows:
        assert "error" not in row, row
        assert (row["preset"], row["amp"], row["dtype"]) == (R50_V1, "off", "float32")
        for key in ("s/iter", "train img/s", "infer img/s"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
        assert math.isnan(row["train GiB"])  # no CUDA memory counter on the CPU

    section = read_section(gpu_presets.SECTION, results)
    assert "`--tiny`" in section and f"torch {torch.__version__}" in section
    for loss in CLS_LOSSES:  # published Mem of the r50 v1 row beside each measured row
        assert f"| `{R50_V1}` | {loss} | off | float32 |" in section
    assert section.count("| 9.1 |") == len(CLS_LOSSES)
    for name in ("train_throughput", "analysis_scale"):  # the other sections stay as they were
        assert read_section(name, results) == read_section(name, gpu_presets.RESULTS)
    assert gpu_presets.RESULTS.read_text() == real_before


def test_budget_skips_cases_and_the_table_says_so():
    rows = gpu_presets.run(
        [R50_V1, R50_V05], ["ce"], ["on"], torch.device("cpu"), 1, 0, 1, budget_s=1e-9
    )
    assert [row["error"] for row in rows] == ["skipped: budget"] * 2
    args = argparse.Namespace(tiny=False, instances=12, warmup=3, iters=10)
    table = gpu_presets.markdown(rows, args, torch.device("cpu"))
    assert f"| `{R50_V1}` | ce | on | skipped: budget | | | | 9.1 |" in table
    assert f"| `{R50_V05}` | ce | on | skipped: budget | | | | - |" in table  # v0.5: no Mem


def test_arguments_are_checked():
    args = gpu_presets.parse_args([])
    assert args.presets == list(gpu_presets.SEED_PRESETS)
    assert args.losses == list(CLS_LOSSES) and args.amp == ["on", "off"]
    assert gpu_presets.parse_args(["--tiny"]).presets == [R50_V1]
    for bad in (["--losses", "focal"], ["--amp", "maybe"], ["--presets", "toy"]):
        with pytest.raises(SystemExit):
            gpu_presets.parse_args(bad)
