"""Decoupled classifier retraining: RoI features, retraining, scoring against the model itself."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import box_iou

from lvisnb.data.dataset import LVISDetection
from lvisnb.engine.inference import load_trained_model, predict
from lvisnb.evaluation.evaluate import evaluate
from lvisnb.methods import decoupled
from lvisnb.methods.decoupled import RoIFeatures
from lvisnb.methods.long_tail import subset_ground_truth
from lvisnb.model.normed_predictor import NormedLinear
from lvisnb.model.presets import get_preset

SMALL = {"train_scales": (160,), "test_scale": 160, "max_size": 200}  # as notebook 03's test


@pytest.fixture(scope="module")
def checkpoint(toy_root, toy_train, tmp_path_factory):
    """A 2-iteration toy checkpoint at small scale (the weights barely matter here)."""
    from lvisnb.engine.config import TrainConfig
    from lvisnb.engine.train import train

    run_dir = tmp_path_factory.mktemp("decoupled") / "train"
    config = TrainConfig(
        train_ann=str(toy_train),
        image_root=str(toy_root),
        run_dir=str(run_dir),
        device="cpu",
        max_iters=2,
        progress=False,
        overrides=SMALL,
    )
    return train(config).checkpoint


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_trained_model(checkpoint)


def _first(dataset: LVISDetection, count: int) -> LVISDetection:
    dataset.image_ids = dataset.image_ids[:count]
    return dataset


@pytest.fixture(scope="module")
def train_set(model, toy_root, toy_train):
    return _first(LVISDetection(toy_train, toy_root, mapping=model[1], skip_empty=True), 4)


@pytest.fixture(scope="module")
def val_set(model, toy_root, toy_val):
    return _first(LVISDetection(toy_val, toy_root, mapping=model[1]), 6)


@pytest.fixture(scope="module")
def train_rois(model, train_set):
    return decoupled.extract_roi_features(model[0], train_set, train=True, progress=False)


@pytest.fixture(scope="module")
def val_rois(model, val_set):
    return decoupled.extract_roi_features(model[0], val_set, train=False, progress=False)


# ----------------------------------------------------------------------------- extraction


def test_train_rois_have_box_head_features_and_sampled_labels(model, train_set, train_rois):
    net, mapping = model
    per_image = torch.bincount(train_rois.image_index, minlength=4)
    assert train_rois.features.shape == (int(per_image.sum()), net.preset.box_head_dim)
    assert train_rois.features.dtype == torch.float16
    assert train_rois.image_ids.tolist() == train_set.image_ids
    assert (per_image > 0).all() and (per_image <= net.preset.box_batch_size_per_image).all()
    assert train_rois.labels.min() >= 0 and train_rois.labels.max() <= mapping.num_classes
    # at most a quarter foreground (positive_fraction 0.25), and every image has some
    foreground = torch.bincount(train_rois.image_index[train_rois.labels > 0], minlength=4)
    assert (foreground >= 1).all()
    assert (foreground <= net.preset.box_batch_size_per_image // 4).all()
    assert train_rois.category_sets() == [
        set(mapping.to_labels(list(s)).tolist()) for s in train_set.category_sets()
    ]


def test_train_labels_are_the_ground_truth_matched_at_iou_one_half(train_set, train_rois):
    """Each RoI's label is that of the ground-truth box it overlaps most if IoU >= 0.5, else 0
    (torchvision's proposal matcher, no low-quality matches)."""
    offsets = train_rois.roi_offsets()
    for i in range(train_rois.num_images):
        target = train_set.target(i)
        boxes = resize_boxes(
            target["boxes"].as_subclass(torch.Tensor),
            train_rois.original_sizes[i].tolist(),
            train_rois.image_sizes[i].tolist(),
        )
        rois = train_rois.boxes[offsets[i] : offsets[i + 1]]
        best, index = box_iou(rois, boxes).max(dim=1)
        expected = torch.where(best >= 0.5, target["labels"][index], 0)
        assert torch.equal(train_rois.labels[offsets[i] : offsets[i + 1]], expected)
        # the ground-truth boxes are proposals too: an exact match is always a candidate
        assert (best >= 0.999).any()


def test_val_rois_keep_every_proposal_with_its_box_regression(model, val_rois):
    net, mapping = model
    rows = len(val_rois.features)
    assert val_rois.labels is None and val_rois.features.dtype == torch.float32
    assert val_rois.boxes.shape == (rows, 4)
    assert val_rois.deltas.shape == (rows, (mapping.num_classes + 1) * 4)
    per_image = torch.bincount(val_rois.image_index, minlength=val_rois.num_images)
    assert (per_image <= net.preset.rpn_post_nms_top_n_test).all()
    # resized as the model tests: shorter side test_scale, unless the longer would pass max_size
    shorter, longer = val_rois.image_sizes.min(dim=1).values, val_rois.image_sizes.max(dim=1).values
    scaled = (shorter - net.preset.test_scale).abs() <= 1  # torchvision floors the size
    assert (scaled | ((longer - net.preset.max_size).abs() <= 1)).all()
    assert val_rois.meta["detections_per_img"] == net.preset.box_detections_per_img


def test_the_cache_is_reused_for_the_same_checkpoint_only(model, train_set, checkpoint, tmp_path):
    path = tmp_path / "rois.pt"
    first, reused = decoupled.cached_roi_features(
        path, model[0], train_set, checkpoint, train=True, progress=False
    )
    assert not reused and path.is_file()
    again, reused = decoupled.cached_roi_features(
        path, model[0], train_set, checkpoint, train=True, progress=False
    )
    assert reused and torch.equal(again.features, first.features)
    payload = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert payload["meta"]["checkpoint_digest"] == decoupled.file_digest(checkpoint)
    other = tmp_path / "other.pt"  # other bytes: another model, the cache is rebuilt
    other.write_bytes(Path(checkpoint).read_bytes() + b"\0")
    _, reused = decoupled.cached_roi_features(
        path, model[0], train_set, other, train=True, progress=False
    )
    assert not reused
    assert not list(tmp_path.glob(".*tmp-*")), "no temporary file left behind"


# ----------------------------------------------------------------------------- retraining


def _synthetic(images=30, rois=16, classes=5, dim=8, rare_images=3, seed=0) -> RoIFeatures:
    """Separable RoI features: class c's RoIs around ``3 * e_c``, the background around 0.
    Class 1 (rare) is in the first ``rare_images`` images only; every image holds class 2."""
    g = torch.Generator().manual_seed(seed)
    labels, gt_labels, gt_image = [], [], []
    for i in range(images):
        present = [2, 3 + i % (classes - 2)] + ([1] if i < rare_images else [])
        gt_labels += present
        gt_image += [i] * len(present)
        drawn = torch.tensor(present)[torch.randint(len(present), (rois // 2,), generator=g)]
        labels.append(torch.cat([drawn, torch.zeros(rois - rois // 2, dtype=torch.int64)]))
    labels = torch.cat(labels)
    centres = torch.cat([torch.zeros(1, dim), 3 * torch.eye(classes + 1, dim)[1:]])
    features = centres[labels] + torch.randn(len(labels), dim, generator=g)
    return RoIFeatures(
        features=features.half(),
        boxes=torch.zeros(len(labels), 4),
        image_index=torch.arange(images).repeat_interleave(rois),
        image_ids=torch.arange(1, images + 1),
        image_sizes=torch.full((images, 2), 100),
        original_sizes=torch.full((images, 2), 100),
        category_ids=list(range(1, classes + 1)),
        labels=labels,
        gt_labels=torch.tensor(gt_labels),
        gt_image_index=torch.tensor(gt_image),
    )


@pytest.mark.parametrize("method", ["ce", "seesaw", "eqlv2", "federated"])
def test_retraining_is_deterministic_per_seed_and_the_loss_decreases(method):
    features, preset = _synthetic(), get_preset("toy")
    runs = [
        decoupled.retrain_classifier(features, method, "rfs", seed, 60, preset=preset)
        for seed in (0, 0, 1)
    ]
    assert runs[0].losses == runs[1].losses
    for a, b in zip(runs[0].classifier.parameters(), runs[1].classifier.parameters(), strict=True):
        assert torch.equal(a, b)
    assert runs[0].losses != runs[2].losses
    first, last = np.mean(runs[0].losses[:5]), np.mean(runs[0].losses[-5:])
    assert last < 0.7 * first, (first, last)
    width = 5 + (2 if method == "seesaw" else 1)
    assert runs[0].classifier(torch.zeros(1, 8)).shape == (1, width)
    assert isinstance(runs[0].classifier, NormedLinear) == (method == "seesaw")
    assert runs[0].settings["iterations"] == 60 and runs[0].settings["sampler"] == "rfs"


def test_retraining_leaves_torch_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    decoupled.retrain_classifier(_synthetic(), "federated", "rfs", 4, 5, preset=get_preset("toy"))
    assert torch.equal(torch.rand(3), expected)


def _draws_per_epoch(features, kind, preset, epochs=50):
    sampler = decoupled.image_sampler(features, kind, 0, preset)
    drawn = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    return np.bincount(drawn, minlength=features.num_images) / epochs


def test_rfs_draws_the_rare_images_more_often_than_uniform():
    """t = 0.4: the rare class (3 of 30 images, f = 0.1) has r = sqrt(0.4 / 0.1) = 2, the
    others r = 1 (class 2, in every image) or sqrt(0.4 * 3) = 1.095 (in 10 images)."""
    features, preset = _synthetic(), get_preset("toy", rfs_threshold=0.4)
    uniform = _draws_per_epoch(features, "uniform", preset)
    rfs = _draws_per_epoch(features, "rfs", preset)
    assert uniform == pytest.approx(np.ones(30))
    assert rfs[:3] == pytest.approx(np.full(3, 2.0), abs=0.3)
    assert rfs[3:].mean() == pytest.approx(1.095, abs=0.1)
    # a preset without RFS samples uniformly whatever is asked
    assert _draws_per_epoch(features, "rfs", get_preset("toy", rfs_threshold=None)) == (
        pytest.approx(np.ones(30))
    )


def test_class_image_counts_count_images_not_instances():
    features = _synthetic(images=6, rare_images=2)
    assert decoupled.class_image_counts(features).tolist() == [2, 6, 2, 2, 2]


def test_retraining_needs_train_rois(val_rois):
    with pytest.raises(ValueError, match="train RoIs"):
        decoupled.retrain_classifier(val_rois, "ce", "rfs", 0, 2, preset=get_preset("toy"))


# ----------------------------------------------------------------------------- scoring


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
    records = decoupled.score_val(own, net.roi_heads.cls_loss, val_rois)
    reference = _predict_on_one_thread(net, val_set, mapping)
    assert len(records) == len(reference) > 0
    assert all("segmentation" not in r for r in records)
    mine = {_key(r): r["score"] for r in records}
    theirs = {_key(r): r["score"] for r in reference}
    assert mine.keys() == theirs.keys()
    assert all(math.isclose(mine[k], theirs[k], rel_tol=1e-5, abs_tol=1e-7) for k in mine)


def test_retrained_scores_are_valid_lvis_results(model, train_rois, val_rois, val_set):
    # Seesaw (K + 2 outputs): its scores go through the same steps; 200 steps leave its warm-up
    fit = decoupled.retrain_classifier(train_rois, "seesaw", "rfs", 0, 200, preset=model[0].preset)
    records = decoupled.score_val(fit.classifier, fit.cls_loss, val_rois, max_dets=20)
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
    found = decoupled.val_detections(own, net.roi_heads.cls_loss, val_rois)
    fewer = decoupled.val_detections(own, net.roi_heads.cls_loss, val_rois, max_dets=5)
    masks = decoupled.segment_val(net, val_set, val_rois, [found, fewer], progress=False)
    records = decoupled.val_records(val_rois, found, masks[0])
    reference = _predict_on_one_thread(net, val_set, mapping)
    assert len(records) == len(reference) > 0
    assert {_segm_key(r) for r in records} == {_segm_key(r) for r in reference}
    # the second run's detections are a subset of the first's: the same masks
    by_box = {_key(r): r["segmentation"] for r in records}
    for r in decoupled.val_records(val_rois, fewer, masks[1]):
        assert r["segmentation"] == by_box[_key(r)]


def test_the_mask_pass_takes_runs_without_detections(model, val_set, val_rois):
    net, _ = model
    empty = [
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0).long()}
    ] * val_rois.num_images
    masks = decoupled.segment_val(net, val_set, val_rois, [empty], progress=False)
    assert masks == [[[]] * val_rois.num_images]
    fewer_images = _first(LVISDetection(val_set.source, val_set.image_root, mapping=model[1]), 2)
    with pytest.raises(ValueError, match="same images"):
        decoupled.segment_val(net, fewer_images, val_rois, [empty], progress=False)


def test_the_mask_pass_checks_its_runs(model, val_set, val_rois):
    net, _ = model
    own = net.roi_heads.box_predictor.cls_score
    found = decoupled.val_detections(own, net.roi_heads.cls_loss, val_rois, max_dets=3)
    assert decoupled.segment_val(net, val_set, val_rois, [], progress=False) == []
    with pytest.raises(ValueError, match="run 0 has detections for 2 images"):
        decoupled.segment_val(net, val_set, val_rois, [found[:2]], progress=False)
    background = [{**f, "labels": torch.zeros_like(f["labels"])} for f in found]
    with pytest.raises(ValueError, match="run 1: labels must be in 1.."):
        decoupled.segment_val(net, val_set, val_rois, [found, background], progress=False)
    with pytest.raises(ValueError, match="mask_thresh"):
        decoupled.segment_val(net, val_set, val_rois, [found], mask_thresh=2.0, progress=False)


def test_val_images_without_annotations_are_refused_before_any_extraction(
    checkpoint, toy_root, toy_train, toy_val, tmp_path
):
    import json

    from lvisnb.methods.long_tail import prepare_decoupled

    data = json.loads(Path(toy_val).read_text())
    first = sorted(i["id"] for i in data["images"])[:2]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in first]
    val_ann = tmp_path / "val_unannotated.json"
    val_ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="have no annotations"):
        prepare_decoupled(
            tmp_path, checkpoint, toy_train, val_ann, toy_root, toy_root, val_images=2
        )
    assert not (tmp_path / "long_tail").exists()  # nothing was extracted
