"""Nothing the user owns is overwritten: toy-LVIS stays in its own folder, evaluation outputs
never replace an input or a file the kit did not write (issue: 'Nothing lost')."""

import json

import pytest
from synthetic import box_mask, rle

from lvisnb import cli
from lvisnb import files as outputs
from lvisnb.annotations import full_scale, images, toy

REAL_ANNOTATIONS = '{"images": [], "annotations": [], "categories": []}'


def _user_lvis_root(tmp_path):
    """A folder as a user's LVIS/COCO download looks: real names, not toy-LVIS."""
    root = tmp_path / "lvis"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "lvis_v1_train.json").write_text(REAL_ANNOTATIONS)
    (root / "train2017").mkdir()
    (root / "train2017" / "000000000009.jpg").write_bytes(b"real coco pixels")
    return root


def _unchanged(root) -> None:
    assert (root / "annotations" / "lvis_v1_train.json").read_text() == REAL_ANNOTATIONS
    assert (root / "train2017" / "000000000009.jpg").read_bytes() == b"real coco pixels"
    assert not (root / toy.META_FILE).exists()


def test_toy_lvis_is_never_written_into_a_users_folder(tmp_path, capsys):
    root = _user_lvis_root(tmp_path)
    with pytest.raises(FileExistsError, match="not a toy-LVIS folder"):
        toy.make_toy_lvis(root, num_train_images=20, num_val_images=5)
    assert cli.main(["toy", str(root), "--if-absent"]) == 2
    assert "never into a folder" in capsys.readouterr().err
    _unchanged(root)


def test_a_toy_folder_with_foreign_files_is_refused_too(tmp_path, toy_root):
    assert toy.check_toy_folder(toy_root) == toy_root  # its own earlier output
    assert toy.check_toy_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert toy.check_toy_folder(tmp_path / "empty") == tmp_path / "empty"
    mixed = tmp_path / "mixed"
    (mixed / "annotations").mkdir(parents=True)
    (mixed / toy.META_FILE).write_text("{}")
    (mixed / "annotations" / "lvis_v1_minival.json").write_text("{}")
    with pytest.raises(FileExistsError, match="mixed"):
        toy.check_toy_folder(mixed)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        toy.check_toy_folder(tmp_path / "file")


def test_an_image_root_without_annotations_is_an_error(tmp_path, capsys):
    root = _user_lvis_root(tmp_path)
    with pytest.raises(ValueError, match="without an annotation file"):
        images.split_files("", root, "train")
    assert cli.main(["train", "--image-root", str(root), "--run-dir", str(tmp_path / "r")]) == 2
    assert "without an annotation file" in capsys.readouterr().err
    _unchanged(root)


def _gt_and_results(tmp_path):
    image = {
        "id": 1,
        "height": 100,
        "width": 100,
        "coco_url": "http://x/val2017/1.jpg",
        "neg_category_ids": [],
        "not_exhaustive_category_ids": [],
    }
    ann = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": [10, 10, 30, 30],
        "area": 900.0,
        "segmentation": [[10, 10, 40, 10, 40, 40, 10, 40]],
    }
    gt = {
        "images": [image],
        "annotations": [ann],
        "categories": [{"id": 1, "name": "a", "frequency": "r"}],
    }
    result = {
        "image_id": 1,
        "category_id": 1,
        "score": 0.9,
        "bbox": [10, 10, 30, 30],
        "segmentation": rle(box_mask(100, 100, 10, 10, 30, 30)),
    }
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "r.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps([result]))
    return gt_path, results_path


def test_evaluate_never_writes_over_its_inputs(tmp_path, capsys):
    gt, results = _gt_and_results(tmp_path)
    before = {p: p.read_bytes() for p in (gt, results)}
    base = ["evaluate", str(gt), str(results), "--iou-types", "bbox", "--no-fixed"]
    for extra in (
        ["--out", str(results)],
        ["--out", str(tmp_path / "m.json"), "--per-category-csv", str(gt)],
        ["--out", str(tmp_path / "." / "r.json"), "--overwrite"],  # never, even with the flag
    ):
        assert cli.main(base + extra) == 2
        assert "is one of the inputs" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (gt, results)} == before
    assert not (tmp_path / "m.json").exists()  # refused before the evaluation ran


def test_evaluate_replaces_only_its_own_outputs_without_the_flag(tmp_path, capsys):
    gt, results = _gt_and_results(tmp_path)
    notes, table = tmp_path / "notes.json", tmp_path / "table.csv"
    notes.write_text('{"my": "notes"}')
    table.write_text("a,b\n1,2\n")
    base = ["evaluate", str(gt), str(results), "--iou-types", "bbox", "--no-fixed"]
    assert cli.main(base + ["--out", str(notes)]) == 2
    assert "not a metrics file the kit wrote" in capsys.readouterr().err
    assert (
        cli.main(base + ["--out", str(tmp_path / "m.json"), "--per-category-csv", str(table)]) == 2
    )
    assert notes.read_text() == '{"my": "notes"}' and table.read_text() == "a,b\n1,2\n"
    metrics = tmp_path / "metrics.json"
    csv = tmp_path / "per_category.csv"
    for _ in range(2):  # the second run replaces the kit's own files without asking
        assert cli.main(base + ["--out", str(metrics), "--per-category-csv", str(csv)]) == 0
    assert outputs.is_metrics_file(metrics) and outputs.is_per_category_csv(csv)
    assert cli.main(base + ["--out", str(notes), "--overwrite"]) == 0
    assert outputs.is_metrics_file(notes)
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_the_two_outputs_must_differ(tmp_path, capsys):
    gt, results = _gt_and_results(tmp_path)
    same = str(tmp_path / "m.json")
    args = ["evaluate", str(gt), str(results), "--out", same, "--per-category-csv", same]
    assert cli.main(args) == 2
    assert "the same file" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_an_interrupted_toy_lvis_can_be_finished_and_foreign_files_are_not_touched(
    tmp_path, toy_root
):
    partial = tmp_path / "partial"
    (partial / "train2017").mkdir(parents=True)
    (partial / toy.PARTIAL_MARKER).touch()
    (partial / ".DS_Store").write_bytes(b"finder")
    assert toy.check_toy_folder(partial) == partial  # its own, interrupted
    earlier = tmp_path / "earlier"
    (earlier / "annotations").mkdir(parents=True)
    (earlier / toy.META_FILE).write_text("{}")
    (earlier / "annotations" / "lvis_v1_train.json").write_text('{"USER": "precious"}')
    with pytest.raises(FileExistsError, match="not a toy-LVIS folder"):
        toy.check_toy_folder(earlier)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / toy.META_FILE).write_text("{}")
    (linked / "train2017").symlink_to(tmp_path / "partial" / "train2017")
    with pytest.raises(FileExistsError, match="not a toy-LVIS folder"):
        toy.check_toy_folder(linked)
    user = _user_lvis_root(tmp_path)
    with pytest.raises(FileExistsError):
        full_scale.make_full_scale_lvis(user, num_images=20, num_instances=40)
    _unchanged(user)
