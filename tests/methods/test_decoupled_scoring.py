"""Decoupled retraining, step 3: scoring and the mask pass, against the model itself."""

import math

import numpy as np
import pytest
import torch

from lvisnb.data.dataset import LVISDetection
from lvisnb.engine.inference import predict
from lvisnb.evaluation.evaluator import evaluate
from lvisnb.methods import decoupled_retraining, decoupled_scoring
from lvisnb.methods.long_tail_runs import subset_ground_truth


def _first(dataset: LVISDetection, count: int) -> LVISDetection:
    dataset.image_ids = dataset.image_ids[:count]
    return dataset


def _key(record):
    return record["image_id"], record["category_id"], tuple(record["bbox"])


def _predict_on_one_thread(net, val_set, mapping) -> list[dict]:
    """predict() as the extraction runs: one thread, batches of 2, the same arithmetic to the
    last bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return list(predict(net, val_set, mapping, batch_size=2, progress=False))
    finally:
        torch.set_num_threads(threads)


def test_the_models_own_classifier_reproduces_its_box_detections(model, val_set, val_rois):
    """The decoupled pipeline is the model: its own cls_score on the cached RoIs gives the
    detections that predict() gives (same RoIs, boxes, scores, NMS and top-k)."""
    net, mapping = model
    own = net.roi_heads.box_predictor.cls_score
    records = decoupled_scoring.score_val(own, net.roi_heads.cls_loss, val_rois)
    reference = _predict_on_one_thread(net, val_set, mapping)
    assert len(records) == len(reference) > 0
    assert all("segmentation" not in r for r in records)
    mine = {_key(r): r["score"] for r in records}
    theirs = {_key(r): r["score"] for r in reference}
    assert mine.keys() == theirs.keys()
    assert all(math.isclose(mine[k], theirs[k], rel_tol=1e-5, abs_tol=1e-7) for k in mine)


def test_retrained_scores_are_valid_lvis_results(model, train_rois, val_rois, val_set):
    # Seesaw (K + 2 outputs): its scores go through the same steps; 200 steps leave its warm-up
    fit = decoupled_retraining.retrain_classifier(
        train_rois, "seesaw", "rfs", 0, 200, preset=model[0].preset
    )
    records = decoupled_scoring.score_val(fit.classifier, fit.cls_loss, val_rois, max_dets=20)
    per_image = np.bincount([r["image_id"] for r in records])
    assert records and per_image.max() <= 20
    assert {r["image_id"] for r in records} <= set(val_set.image_ids)
    evaluation = evaluate(subset_ground_truth(val_set), records, iou_types=("bbox",))
    assert set(evaluation.metrics) == {"bbox"}
    assert 0 <= evaluation.metrics["bbox"]["AP"] <= 1


def _segm_key(record):
    return (*_key(record), record["segmentation"]["counts"])


def test_the_mask_pass_reproduces_the_models_own_masks(model, val_set, val_rois):
    """The model's own classifier, then segment_val: the masks predict() gives, pixel for
    pixel, although the mask head ran once over the detections of two runs together."""
    net, mapping = model
    own = net.roi_heads.box_predictor.cls_score
    found = decoupled_scoring.val_detections(own, net.roi_heads.cls_loss, val_rois)
    fewer = decoupled_scoring.val_detections(own, net.roi_heads.cls_loss, val_rois, max_dets=5)
    masks = decoupled_scoring.segment_val(net, val_set, val_rois, [found, fewer], progress=False)
    records = decoupled_scoring.val_records(val_rois, found, masks[0])
    reference = _predict_on_one_thread(net, val_set, mapping)
    assert len(records) == len(reference) > 0
    assert {_segm_key(r) for r in records} == {_segm_key(r) for r in reference}
    # the second run's detections are a subset of the first's: the same masks
    by_box = {_key(r): r["segmentation"] for r in records}
    for r in decoupled_scoring.val_records(val_rois, fewer, masks[1]):
        assert r["segmentation"] == by_box[_key(r)]


def test_the_mask_pass_takes_runs_without_detections(model, val_set, val_rois):
    net, _ = model
    empty = [
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0).long()}
    ] * val_rois.num_images
    masks = decoupled_scoring.segment_val(net, val_set, val_rois, [empty], progress=False)
    assert masks == [[[]] * val_rois.num_images]
    fewer_images = _first(LVISDetection(val_set.source, val_set.image_root, mapping=model[1]), 2)
    with pytest.raises(ValueError, match="same images"):
        decoupled_scoring.segment_val(net, fewer_images, val_rois, [empty], progress=False)


def test_the_mask_pass_checks_its_runs(model, val_set, val_rois):
    net, _ = model
    own = net.roi_heads.box_predictor.cls_score
    found = decoupled_scoring.val_detections(own, net.roi_heads.cls_loss, val_rois, max_dets=3)
    assert decoupled_scoring.segment_val(net, val_set, val_rois, [], progress=False) == []
    with pytest.raises(ValueError, match="run 0 has detections for 2 images"):
        decoupled_scoring.segment_val(net, val_set, val_rois, [found[:2]], progress=False)
    background = [{**f, "labels": torch.zeros_like(f["labels"])} for f in found]
    with pytest.raises(ValueError, match="run 1: labels must be in 1.."):
        decoupled_scoring.segment_val(net, val_set, val_rois, [found, background], progress=False)
    with pytest.raises(ValueError, match="mask_thresh"):
        decoupled_scoring.segment_val(
            net, val_set, val_rois, [found], mask_thresh=2.0, progress=False
        )
