"""Training computes what mmdetection 3.3.0's own code computes (issue 23 §2, training).

With the same weights (mmdetection's, saved by mmengine and loaded by the kit), the same image
and targets, and every anchor and RoI sampled (so no random choice is left), the RPN and RoI
losses equal mmdetection's (L1 box losses, its normalisation, its assigner's low-quality
matches with ``min_pos_iou``, binarised aligned mask targets), and one SGD step moves every
weight the same way (BN statistics fixed, affine trained in layer2-4: ``norm_eval=True,
frozen_stages=1``). Losses agree to 1e-4 relative; each weight tensor's step to 1e-3 of its
largest step (float32 sums of thousands of terms, taken in another order).
"""

import pytest
import torch

from lvisnb.engine.model_source import load_mmdet_model
from lvisnb.model.mmdet_weights import convert_mmdet_state_dict
from lvisnb.model.presets import TORCHVISION_OPS, get_preset
from tests.model.mmdet_reference import (
    MMDET_AVAILABLE,
    SKIP_REASON,
    build_reference,
    compare_losses,
    reference_losses,
    save_reference_checkpoint,
    seeded_targets,
)

pytestmark = pytest.mark.skipif(not MMDET_AVAILABLE, reason=SKIP_REASON)
R50 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
CLASSES = 12
SEESAW = "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_normed_mask_mstrain_2x_lvis_v1"
TRAINING_TORCHVISION = {
    k: TORCHVISION_OPS[k]
    for k in ("box_loss", "rpn_min_pos_iou", "box_min_pos_iou", "mask_targets")
}


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    """mmdetection's R-50 of 12 classes (seeded, every anchor and RoI sampled) and its file."""
    reference, _ = build_reference(R50, seed=0, num_classes=CLASSES, sample_all=True)
    path = tmp_path_factory.mktemp("mmdet") / "train.pth"
    return reference, save_reference_checkpoint(reference, path)


def _kit(path, **overrides):
    preset = get_preset(
        R50,
        num_classes=CLASSES,
        rpn_batch_size_per_image=10**6,
        box_batch_size_per_image=10**6,
        **overrides,
    )
    return load_mmdet_model(path, preset).train()


def _losses(reference, kit, seed, height, width, count=5):
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))
    boxes, labels, masks = seeded_targets(seed, height, width, count=count)
    expected = reference_losses(reference.train(), image, boxes, labels, masks)
    got = kit([image], [{"boxes": boxes, "labels": labels, "masks": masks}])
    return expected, got


@pytest.mark.parametrize(
    ("seed", "height", "width", "count"),
    [(0, 224, 320, 5), (1, 320, 224, 5), (4, 256, 256, 1), (5, 192, 352, 9)],
)
def test_losses_equal_mmdetections(reference_file, seed, height, width, count):
    reference, path = reference_file
    expected, got = _losses(reference, _kit(path), seed, height, width, count)
    for name, value in expected.items():
        assert value > 0, name
        assert torch.allclose(got[name], value, rtol=1e-4, atol=1e-6), (name, got[name], value)


def test_seesaw_losses_equal_mmdetections(tmp_path):
    """A Seesaw row (normed classifier and mask logits, Seesaw's C + 2 scores and its class
    counts, whole numbers as mmdetection's float buffer holds them)."""
    expected, got = compare_losses(SEESAW, tmp_path, seed=1, size=(256, 224), count=5)
    for name, value in expected.items():
        assert value > 0, name
        assert torch.allclose(got[name], value, rtol=1e-4, atol=1e-6), (name, got[name], value)


def test_torchvisions_training_choices_are_not_mmdetections(reference_file):
    """The comparison can fail: with torchvision's box loss, matchers and mask targets (toy's)
    the box and mask losses differ."""
    reference, path = reference_file
    expected, got = _losses(reference, _kit(path, **TRAINING_TORCHVISION), 2, 224, 320)
    for name in ("loss_rpn_box_reg", "loss_box_reg", "loss_mask"):
        assert not torch.allclose(got[name], expected[name], rtol=1e-3), name


def test_one_sgd_step_moves_the_weights_alike(reference_file):
    """Last in this file: it steps the module's reference model."""
    reference, path = reference_file
    kit = _kit(path)
    image = torch.rand(3, 256, 288, generator=torch.Generator().manual_seed(3))
    boxes, labels, masks = seeded_targets(3, 256, 288, count=4)
    optimisers = [
        torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad],
            lr=0.02,
            momentum=0.9,
            weight_decay=1e-4,
        )
        for model in (reference, kit)
    ]
    before = {k: v.clone() for k, v in kit.state_dict().items()}
    sum(reference_losses(reference.train(), image, boxes, labels, masks).values()).backward()
    sum(kit([image], [{"boxes": boxes, "labels": labels, "masks": masks}]).values()).backward()
    for optimiser in optimisers:
        optimiser.step()
    expected = kit.state_dict()
    moved = convert_mmdet_state_dict(reference.state_dict(), expected, kit.preset)
    # every weight's step equal to 1e-3 of the largest step of its tensor (float32 sums of
    # thousands of terms in another order)
    for key, value in expected.items():
        step = (value.float() - before[key].float()).abs().max().item()
        gap = (moved[key].float() - value.float()).abs().max().item()
        assert gap <= 1e-3 * step + 1e-7, (key, gap, step)
    # the step moved the BN affine of layer2-4, not the stem's and layer1's, nor any statistics
    assert not torch.equal(
        kit.backbone.body.layer2[0].bn1.weight, before["backbone.body.layer2.0.bn1.weight"]
    )
    assert torch.equal(
        kit.backbone.body.layer1[0].bn1.weight, before["backbone.body.layer1.0.bn1.weight"]
    )
    for key in (
        "backbone.body.layer3.0.bn2.running_mean",
        "backbone.body.layer3.0.bn2.running_var",
    ):
        assert torch.equal(expected[key], before[key]), key
