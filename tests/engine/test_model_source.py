"""One loader for a kit checkpoint, an mmdetection checkpoint file and a published row's name,
and ``lvisnb predict`` writing results ``lvisnb evaluate`` scores (issue 23 §1)."""

import json

import pytest
import torch

from lvisnb import cli
from lvisnb.data.dataset import LVISDetection
from lvisnb.engine import model_source
from lvisnb.engine.inference import predict
from lvisnb.engine.model_source import is_kit_checkpoint, load_model
from lvisnb.evaluation.evaluator import evaluate
from lvisnb.model.mmdet_weights import MMDetCheckpointError
from lvisnb.model.presets import get_preset
from tests.engine.test_inference import _untrained_checkpoint, _val_subset
from tests.model.mmdet_reference import (
    MMDET_AVAILABLE,
    SKIP_REASON,
    build_reference,
    save_reference_checkpoint,
    small_reference_file,
)

R50 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
needs_mmdet = pytest.mark.skipif(not MMDET_AVAILABLE, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def small_mmdet_file(tmp_path_factory):
    """An mmdetection R-50 of 12 classes, saved by mmengine."""
    if not MMDET_AVAILABLE:
        pytest.skip(SKIP_REASON)
    return small_reference_file(tmp_path_factory.mktemp("mmdet"), R50, 4, "small.pth")


@needs_mmdet
def test_an_mmdetection_file_predicts_lvis_results(small_mmdet_file, toy_root, toy_val, tmp_path):
    ann, kept = _val_subset(toy_val, tmp_path)
    ids = tuple(sorted(c["id"] for c in json.loads(ann.read_text())["categories"]))[:12]
    preset = get_preset(R50, num_classes=12, test_scale=160, max_size=200)
    model, mapping = load_model(small_mmdet_file, preset, category_ids=ids)
    assert not model.training and mapping.category_ids == ids
    records = list(
        predict(model, LVISDetection(ann, toy_root, mapping=mapping), mapping, progress=False)
    )
    assert records and {r["image_id"] for r in records} <= kept
    assert {r["category_id"] for r in records} <= set(ids)
    assert evaluate(ann, records, iou_types=("bbox", "segm")).metrics["segm"]["AP"] >= 0


@needs_mmdet
def test_a_partial_class_set_needs_its_ids(small_mmdet_file):
    preset = get_preset(R50, num_classes=12)
    with pytest.raises(ValueError, match="small.pth: a model of 12 classes, not LVIS v1's 1203"):
        load_model(small_mmdet_file, preset)
    with pytest.raises(MMDetCheckpointError, match="small.pth: an mmdetection model of 12 classes"):
        load_model(small_mmdet_file, preset, category_ids=(1, 2, 3))
    with pytest.raises(ValueError, match="small.pth: category ids must be unique and ascending"):
        load_model(small_mmdet_file, preset, category_ids=tuple(range(12, 0, -1)))


@needs_mmdet
def test_class_names_in_the_file_give_the_mapping_and_preset(tmp_path):
    """mmdetection 3.x keeps its classes in meta["dataset_meta"]["classes"]: a model of some
    LVIS categories maps its labels by those names (here toy-LVIS's first 12, by LVIS v1 name)."""
    from lvisnb.annotations.categories import categories

    table = categories("v1")
    chosen = table.iloc[[46, 80, 111, 200, 300, 400, 500, 600, 700, 800, 900, 1000]]
    model, _ = build_reference(R50, seed=6, num_classes=12)
    path = save_reference_checkpoint(model, tmp_path / "named.pth", classes=list(chosen["name"]))
    loaded, mapping = load_model(path)
    assert loaded.preset.name == R50 and loaded.preset.num_classes == 12
    assert mapping.category_ids == tuple(int(i) for i in chosen["id"])
    bad = save_reference_checkpoint(model, tmp_path / "bad.pth", classes=["no_such_thing"] * 12)
    with pytest.raises(ValueError, match="bad.pth: meta class 'no_such_thing' is a category of no"):
        load_model(bad)


def test_a_kit_checkpoint_loads_as_before(toy_val, tmp_path):
    ann, _ = _val_subset(toy_val, tmp_path)
    path = _untrained_checkpoint(tmp_path / "final.pt", ann)
    assert is_kit_checkpoint(path)
    model, mapping = load_model(path, preset=R50)  # the file's own preset wins
    assert model.preset.name == "toy" and mapping.num_classes == 40


@needs_mmdet
def test_a_published_name_fetches_and_names_its_preset(small_mmdet_file, monkeypatch):
    fetched = []
    monkeypatch.setattr(
        model_source,
        "published_checkpoint",
        lambda name, progress: fetched.append(name) or small_mmdet_file,
    )
    with pytest.raises(MMDetCheckpointError, match=f"12 classes, preset '{R50}' has 1203"):
        load_model(R50)
    assert fetched == [R50]


def test_neither_a_file_nor_a_published_name(tmp_path):
    with pytest.raises(
        FileNotFoundError, match="nope.pth: no such checkpoint file, nor a published"
    ):
        load_model(tmp_path / "nope.pth")
    assert not is_kit_checkpoint(tmp_path / "nope.pth")


@needs_mmdet
@pytest.mark.slow
def test_lvisnb_predict_then_evaluate(toy_root, toy_val, tmp_path, capsys):
    """The command line on an R-50 file of toy-LVIS's 40 categories (their names in the file's
    meta, as mmdetection 3.x writes them), run at the row's 800 px."""
    ann, _ = _val_subset(toy_val, tmp_path)
    names = [
        c["name"] for c in sorted(json.loads(ann.read_text())["categories"], key=lambda c: c["id"])
    ]
    model, _ = build_reference(R50, seed=5, num_classes=len(names))
    with torch.no_grad():  # a confident background: tens of detections an image, not 300
        model.roi_head.bbox_head.fc_cls.bias[-1] += 9.0
    path = save_reference_checkpoint(model, tmp_path / "r50_toy.pth", classes=names)
    out = tmp_path / "results.json"
    argv = ["predict", str(path), "--ann-file", str(ann), "--image-root", str(toy_root)]
    assert cli.main([*argv, "--out", str(out), "--device", "cpu", "--num-workers", "0"]) == 0
    assert "detections of 2 images" in capsys.readouterr().out
    records = json.loads(out.read_text())
    assert len(records) > 0
    assert cli.main(["evaluate", str(ann), str(out), "--out", str(tmp_path / "m.json")]) == 0
    # a user's file at --out is never replaced
    mine = tmp_path / "mine.json"
    mine.write_text('{"mine": 1}')
    assert cli.main([*argv, "--out", str(mine), "--device", "cpu"]) == 2
    assert mine.read_text() == '{"mine": 1}'
