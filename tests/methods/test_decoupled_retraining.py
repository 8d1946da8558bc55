"""Decoupled retraining, step 2: the classifier trained on cached RoIs, deterministic per seed."""

import numpy as np
import pytest
import torch

from lvisnb.methods import decoupled_retraining
from lvisnb.methods.decoupled_features import RoIFeatures
from lvisnb.model.normed_predictor import NormedLinear
from lvisnb.model.presets import get_preset


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
        decoupled_retraining.retrain_classifier(features, method, "rfs", seed, 60, preset=preset)
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
    decoupled_retraining.retrain_classifier(
        _synthetic(), "federated", "rfs", 4, 5, preset=get_preset("toy")
    )
    assert torch.equal(torch.rand(3), expected)


def _draws_per_epoch(features, kind, preset, epochs=50):
    sampler = decoupled_retraining.image_sampler(features, kind, 0, preset)
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
    assert decoupled_retraining.class_image_counts(features).tolist() == [2, 6, 2, 2, 2]


def test_retraining_needs_train_rois(val_rois):
    with pytest.raises(ValueError, match="train RoIs"):
        decoupled_retraining.retrain_classifier(
            val_rois, "ce", "rfs", 0, 2, preset=get_preset("toy")
        )
