"""Inference to LVIS result records: format, coordinates, category ids, streaming save."""

import json
from types import SimpleNamespace

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from torch import nn

from lvisnb.annotations.lvis_compat import LVISEval
from lvisnb.annotations.validate import load_lvis
from lvisnb.data.dataset import LVISDetection
from lvisnb.engine.inference import masks_to_rle, predict, save_results
from lvisnb.engine.run_results import results_for_evaluation
from lvisnb.model.builder import build_model


class _GroundTruthModel(nn.Module):
    """Answers every image with its own ground truth (labels, XYXY boxes, masks), score 0.9."""

    def __init__(self, dataset: LVISDetection):
        super().__init__()
        self.dataset = dataset
        self.next_index = 0
        self.roi_heads = SimpleNamespace(score_thresh=0.05, detections_per_img=100)
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        outputs = []
        for image in images:
            target = self.dataset.target(self.next_index)
            assert tuple(image.shape[1:]) == tuple(target["masks"].shape[1:])
            self.next_index += 1
            count = len(target["labels"])
            outputs.append(
                {
                    "boxes": target["boxes"].as_subclass(torch.Tensor),
                    "labels": target["labels"],
                    "scores": torch.full((count,), 0.9),
                    "masks": target["masks"].as_subclass(torch.Tensor)[:, None].float(),
                }
            )
        return outputs


def test_ground_truth_as_results_scores_ap_one(toy_root, toy_val, tmp_path):
    gt = load_lvis(toy_val)
    dataset = LVISDetection(gt, toy_root)
    dataset.image_ids = dataset.image_ids[:12]
    model = _GroundTruthModel(dataset)
    path = tmp_path / "results.json"
    count = save_results(path, predict(model, dataset, batch_size=3, progress=False))
    records = json.loads(path.read_text())
    assert count == len(records) == sum(len(gt.img_ann_map.get(i, [])) for i in dataset.image_ids)
    assert model.roi_heads.score_thresh == 0.05  # restored after the call
    first_ann = gt.img_ann_map[records[0]["image_id"]][0]
    assert records[0]["category_id"] == first_ann["category_id"]  # LVIS ids, not labels
    assert records[0]["bbox"] == pytest.approx(first_ann["bbox"], abs=0.01)  # XYWH
    assert isinstance(records[0]["segmentation"]["counts"], str)
    gt_subset = load_lvis(toy_val)
    for iou_type in ("bbox", "segm"):
        evaluation = LVISEval(gt_subset, str(path), iou_type)
        evaluation.params.img_ids = dataset.image_ids
        evaluation.run()
        results = evaluation.get_results()
        assert results["AP"] == pytest.approx(1.0), iou_type


def test_records_of_a_real_model(toy_root, toy_val):
    dataset = LVISDetection(toy_val, toy_root)
    dataset.image_ids = dataset.image_ids[:2]
    torch.manual_seed(0)
    model = build_model("toy", num_classes=dataset.mapping.num_classes, weights=False)
    records = list(predict(model, dataset, max_dets=20, score_thresh=0.0, progress=False))
    assert records, "an untrained model still proposes boxes at threshold 0"
    ids = set(dataset.mapping.category_ids)
    per_image = {}
    for record in records:
        assert set(record) == {"image_id", "category_id", "bbox", "score", "segmentation"}
        info = dataset.lvis.imgs[record["image_id"]]
        x, y, w, h = record["bbox"]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0
        assert x + w <= info["width"] + 0.01 and y + h <= info["height"] + 0.01
        assert record["category_id"] in ids
        assert record["segmentation"]["size"] == [info["height"], info["width"]]
        per_image[record["image_id"]] = per_image.get(record["image_id"], 0) + 1
    assert max(per_image.values()) <= 20
    assert model.training  # predict() put the model back in the mode it found it in


def test_masks_to_rle_round_trips():
    masks = torch.zeros(3, 7, 5, dtype=torch.bool)
    masks[0, 1:4, 2:5] = True
    masks[2, 6, 0] = True
    rles = masks_to_rle(masks)
    assert [r["size"] for r in rles] == [[7, 5]] * 3
    decoded = mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in rles])
    np.testing.assert_array_equal(decoded.transpose(2, 0, 1), masks.numpy().astype(np.uint8))
    assert masks_to_rle(torch.zeros(0, 4, 4, dtype=torch.bool)) == []


def test_save_results_streams_a_generator(tmp_path):
    def records():
        for i in range(5):
            yield {"image_id": i, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}

    path = tmp_path / "out" / "results.json"
    assert save_results(path, records()) == 5
    assert [r["image_id"] for r in json.loads(path.read_text())] == list(range(5))
    assert save_results(path, iter(())) == 0
    assert json.loads(path.read_text()) == []


# ---------------------------------------------------------------- results_for_evaluation

SMALL = {"train_scales": (128,), "test_scale": 128, "max_size": 160}  # quick on a CPU


def _val_subset(toy_val, folder, n_images=2):
    """The first ``n_images`` of toy val with their annotations, written into ``folder``."""
    data = json.loads(toy_val.read_text())
    keep = {image["id"] for image in data["images"][:n_images]}
    data["images"] = [image for image in data["images"] if image["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    path = folder / "lvis_v1_val.json"
    path.write_text(json.dumps(data))
    return path, keep


def _untrained_checkpoint(path, ann):
    """A kit checkpoint (the fields load_trained_model reads) of an untrained toy model."""
    from dataclasses import asdict

    from lvisnb.model.checkpoint import save_checkpoint
    from lvisnb.model.presets import get_preset

    mapping = LVISDetection(ann, ann.parent).mapping
    preset = get_preset("toy", **SMALL)
    torch.manual_seed(0)
    model = build_model(preset, num_classes=mapping.num_classes, weights=False)
    config = {
        "preset": json.loads(json.dumps(asdict(preset))),
        "resolved": {"lvis_version": mapping.lvis_version},
    }
    payload = {"config": config, "category_ids": list(mapping.category_ids)}
    return save_checkpoint(path, {**payload, "model": model.state_dict()})


def test_an_existing_results_file_is_taken_as_it_is(tmp_path):
    given = tmp_path / "mine.json"
    given.write_text("[]")
    path, seconds, description = results_for_evaluation(
        tmp_path / "run", "val.json", tmp_path, results_file=given
    )
    assert (path, seconds) == (given, None) and str(given) in description
    assert not (tmp_path / "run").exists()  # nothing ran, nothing was written
    with pytest.raises(ValueError, match="not both"):
        results_for_evaluation(tmp_path, "val.json", tmp_path, "final.pt", results_file=given)
    with pytest.raises(FileNotFoundError, match="results_file not found: .*absent.json"):
        results_for_evaluation(tmp_path, "val.json", tmp_path, results_file="absent.json")


def test_without_a_checkpoint_the_run_directorys_is_asked_for(tmp_path):
    expected = str(tmp_path / "checkpoints" / "final.pt")
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at {expected}: train one"):
        results_for_evaluation(tmp_path, "val.json", tmp_path)


def test_a_checkpoint_is_run_into_results_json(toy_root, toy_val, tmp_path):
    ann, kept = _val_subset(toy_val, tmp_path)
    run_dir = tmp_path / "run"
    _untrained_checkpoint(run_dir / "checkpoints" / "final.pt", ann)
    produced = results_for_evaluation(
        run_dir, ann, toy_root, device="cpu", max_dets=5, progress=False
    )
    assert produced.path == run_dir / "results.json" and produced.seconds > 0
    records = json.loads(produced.path.read_text())
    per_image = {}
    for record in records:
        per_image[record["image_id"]] = per_image.get(record["image_id"], 0) + 1
    assert records and set(per_image) <= kept and max(per_image.values()) <= 5
    assert produced.description.startswith(f"{len(records):,} detections on 2 images from ")
    # a second run replaces the kit's own results.json; a user's file there is refused
    other = tmp_path / "other.pt"
    (run_dir / "checkpoints" / "final.pt").rename(other)
    assert (
        results_for_evaluation(
            run_dir, ann, toy_root, other, device="cpu", max_dets=1, progress=False
        ).seconds
        > 0
    )
    again = json.loads(produced.path.read_text())
    assert again and len(again) <= len({r["image_id"] for r in again}) <= 2  # 1 per image
    produced.path.write_text('[{"my": "results"}]')
    with pytest.raises(FileExistsError, match="results.json exists and is not a results file"):
        results_for_evaluation(run_dir, ann, toy_root, other, device="cpu", progress=False)
    assert produced.path.read_text() == '[{"my": "results"}]'


def test_save_results_never_replaces_a_users_file(tmp_path):
    from lvisnb.engine.inference import save_results

    record = {"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5}
    mine = tmp_path / "mine.json"
    mine.write_text("my notes")
    with pytest.raises(FileExistsError, match="not a results file the kit wrote"):
        save_results(mine, [record])
    assert mine.read_text() == "my notes"
    assert save_results(mine, [record], overwrite=True) == 1
    assert save_results(mine, [record, record]) == 2  # its own file: replaced
    with pytest.raises(FileExistsError, match="is a folder"):
        save_results(tmp_path, [record])
