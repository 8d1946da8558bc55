"""benchmarks/published_inference.py: a published row's file from --checkpoint-dir is loaded as
``lvisnb predict`` loads it and timed; a row whose file cannot be had is an error row."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from lvisnb.annotations.categories import categories
from lvisnb.model import mmdet_zoo
from lvisnb.model.mmdet_zoo import PUBLISHED, DownloadError, PublishedModel, sha256_prefix
from tests.model.mmdet_reference import (
    MMDET_AVAILABLE,
    SKIP_REASON,
    build_reference,
    save_reference_checkpoint,
)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SPEC = importlib.util.spec_from_file_location(
    "published_inference", BENCHMARKS / "published_inference.py"
)
published_inference = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(published_inference)  # a script, not a package module: loaded by path
from _results import read_section  # noqa: E402  (on sys.path once the script is loaded)

R50 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
R101 = "mask_rcnn_r101_fpn_sample1e-3_mstrain_1x_lvis_v1"


@pytest.mark.skipif(not MMDET_AVAILABLE, reason=SKIP_REASON)
def test_a_published_file_is_timed_and_a_missing_one_is_an_error_row(tmp_path, monkeypatch):
    """The R-50 row's file (an mmdetection-saved model of 12 LVIS v1 categories, named as the
    published file) is timed on the CPU; the R-101 row's, not there and not downloadable,
    is reported as an error row; the section is written to the given file only."""
    model, _ = build_reference(R50, seed=0, num_classes=12)
    names = list(categories("v1")["name"][:12])
    saved = save_reference_checkpoint(model, tmp_path / "r50.pth", classes=names)
    digest = sha256_prefix(saved)  # the row, as published, of this stand-in file
    row = PublishedModel(PUBLISHED[R50].config, f"https://example.invalid/{R50}-{digest}.pth")
    monkeypatch.setitem(PUBLISHED, R50, row)
    saved.rename(tmp_path / row.file_name)

    def offline(name, progress=True):
        raise DownloadError(f"{PUBLISHED[name].url}: download failed (offline)")

    monkeypatch.setattr(mmdet_zoo, "published_checkpoint", offline)
    monkeypatch.setattr("lvisnb.engine.model_source.published_checkpoint", offline)
    results = tmp_path / "RESULTS.md"
    argv = ["--models", f"{R50},{R101}", "--checkpoint-dir", str(tmp_path), "--device", "cpu"]
    argv += ["--images", "2", "--warmup", "0", "--amp", "off", "--image-size", "60,80"]
    argv += ["--test-scale", "64", "--max-size", "96", "--write", "--results", str(results)]
    rows = published_inference.main(argv)

    assert [row["model"] for row in rows] == [R50, R101]
    timed, missing = rows
    assert timed["source"] == str(tmp_path / PUBLISHED[R50].file_name)
    assert timed["dtype"] == "float32" and math.isfinite(timed["img/s"]) and timed["img/s"] > 0
    assert timed["GiB"] is None and timed["dets/img"] >= 0
    assert missing["error"].startswith("DownloadError:") and "offline" in missing["error"]
    section = read_section(published_inference.SECTION, results)
    assert f"| `{R50}` | off | float32 |" in section
    assert f"| `{R101}` | off | DownloadError:" in section


def test_arguments_are_checked():
    args = published_inference.parse_args([])
    assert args.models == list(PUBLISHED) and args.amp == ["on", "off"]
    assert args.preset_overrides == {}
    for bad in (
        ["--models", "toy"],
        ["--amp", "maybe"],
        ["--images", "0"],
        ["--ann-file", "x.json"],
    ):
        with pytest.raises(SystemExit):
            published_inference.parse_args(bad)


def test_noise_images_are_seeded():
    args = published_inference.parse_args(["--images", "2", "--warmup", "1"])
    first, second = published_inference.images_of(args), published_inference.images_of(args)
    assert len(first) == 3 and first[0].shape == (3, 480, 640)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
