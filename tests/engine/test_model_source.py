"""One loader for a kit checkpoint, an mmdetection checkpoint file and a published row's name,
and ``lvisnb predict`` writing results ``lvisnb evaluate`` scores (issue 23 §1)."""

import json
from pathlib import Path

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
    install_mmcv_stand_in,
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


def _named_copy(source, path, names):
    """``source``'s weights saved again with ``names`` as mmdetection 3.x's meta classes."""
    state = torch.load(source, weights_only=True)["state_dict"]
    torch.save({"meta": {"dataset_meta": {"classes": tuple(names)}}, "state_dict": state}, path)
    return path


@needs_mmdet
def test_class_names_are_looked_up_in_the_presets_lvis_version(small_mmdet_file, tmp_path):
    """1,067 names are categories of both versions under other ids: a v0.5 row's classes are
    v0.5 ids; names of the other version than the preset are refused; the mapping carries the
    version, so a whole annotation file of the other version is refused before inference."""
    from lvisnb.annotations.categories import categories

    v05, v1 = categories("v0.5"), categories("v1")
    both = v05[v05["name"].isin(set(v1["name"]))].iloc[:12]
    by_v1 = dict(zip(v1["name"], v1["id"], strict=True))
    assert [by_v1[n] for n in both["name"]] != list(both["id"])  # the versions disagree
    path = _named_copy(small_mmdet_file, tmp_path / "v05_named.pth", both["name"])
    v05_row = "mask_rcnn_r50_fpn_sample1e-3_mstrain_2x_lvis_v0.5"
    model, mapping = load_model(path, v05_row)
    assert mapping.category_ids == tuple(int(i) for i in both["id"])
    assert mapping.lvis_version == "v0.5" and model.preset.dataset == "v0.5"
    v1_only = v1[~v1["name"].isin(set(v05["name"]))].iloc[:12]
    path = _named_copy(small_mmdet_file, tmp_path / "v1_named.pth", v1_only["name"])
    with pytest.raises(
        MMDetCheckpointError, match="are LVIS v1 categories, preset .* is LVIS v0.5"
    ):
        load_model(path, v05_row)
    model, mapping = load_model(path)  # the preset inferred: the v1 row
    assert mapping.lvis_version == "v1"
    real = Path(__file__).parents[1] / "fixtures" / "lvis_v0.5_val_100.json"
    dataset = LVISDetection(real, tmp_path, mapping=mapping)
    with pytest.raises(ValueError, match="LVIS v0.5 .* but LVIS v1 is expected"):
        next(predict(model, dataset, mapping, progress=False))


@needs_mmdet
def test_meta_classes_that_do_not_fit_are_named(small_mmdet_file, tmp_path):
    from lvisnb.annotations.categories import categories

    v05, v1 = categories("v0.5"), categories("v1")
    names = list(v1["name"][:12])
    short = _named_copy(small_mmdet_file, tmp_path / "short.pth", names[:11])
    with pytest.raises(MMDetCheckpointError, match="meta names 11 classes, the weights have 12"):
        load_model(short)
    only_v05 = next(n for n in v05["name"] if n not in set(v1["name"]))
    only_v1 = next(n for n in v1["name"] if n not in set(v05["name"]))
    mixed = _named_copy(small_mmdet_file, tmp_path / "mixed.pth", [only_v05, only_v1, *names[2:]])
    with pytest.raises(MMDetCheckpointError, match="mix LVIS v1-only and v0.5-only"):
        load_model(mixed)
    swapped = _named_copy(
        small_mmdet_file, tmp_path / "swapped.pth", [names[1], names[0]] + names[2:]
    )
    with pytest.raises(MMDetCheckpointError, match=f"{names[1]!r} then {names[0]!r}"):
        load_model(swapped)


@needs_mmdet
def test_a_file_without_names_of_some_categories_needs_preset_and_ids(small_mmdet_file):
    with pytest.raises(MMDetCheckpointError, match="name it with --preset .*_v1, .*_v0.5"):
        load_model(small_mmdet_file, category_ids=tuple(range(1, 13)))
    _, mapping = load_model(small_mmdet_file, R50, category_ids=tuple(range(1, 13)))
    assert mapping.category_ids == tuple(range(1, 13)) and mapping.lvis_version is None


@needs_mmdet
def test_non_finite_weights_are_refused_naming_them(small_mmdet_file, tmp_path):
    payload = torch.load(small_mmdet_file, weights_only=True)
    payload["state_dict"]["roi_head.bbox_head.fc_cls.weight"][3, 5] = float("nan")
    torch.save(payload, tmp_path / "nan.pth")
    with pytest.raises(MMDetCheckpointError, match=r"1 weight not finite .*\(roi_head.bbox_head"):
        load_model(tmp_path / "nan.pth", get_preset(R50, num_classes=12))


def test_a_kit_checkpoint_of_torchs_older_format_is_one(toy_val, tmp_path):
    ann, _ = _val_subset(toy_val, tmp_path)
    path = _untrained_checkpoint(tmp_path / "final.pt", ann)
    old = tmp_path / "old_format.pt"
    torch.save(torch.load(path, weights_only=True), old, _use_new_zipfile_serialization=False)
    assert is_kit_checkpoint(old)


@needs_mmdet
def test_a_local_copy_of_a_published_file_is_hash_checked(small_mmdet_file, tmp_path):
    from lvisnb.model.mmdet_zoo import PUBLISHED, DownloadError

    copy = tmp_path / PUBLISHED[R50].file_name
    copy.write_bytes(small_mmdet_file.read_bytes())
    with pytest.raises(DownloadError, match="not the published file of that name"):
        load_model(copy)


@needs_mmdet
@pytest.mark.parametrize(
    ("dataset", "version"), [("LVISV1Dataset", "v1"), ("LVISV05Dataset", "v0.5")]
)
def test_mmdetections_own_class_lists_name_every_lvis_category(dataset, version, tmp_path):
    """The class names mmdetection's LVIS datasets hold (and its checkpoints' meta repeats),
    one of them spelt otherwise than in the LVIS files, are every category id in order."""
    install_mmcv_stand_in()  # mmdet.datasets imports mmcv's ops
    from mmdet import datasets

    from lvisnb.annotations.categories import categories
    from lvisnb.engine.model_source import _ids_of_names

    names = getattr(datasets, dataset).METAINFO["classes"]
    found, ids = _ids_of_names(tuple(names), tmp_path / "x.pth", version)
    assert found == version
    assert ids == tuple(int(i) for i in categories(version)["id"])
