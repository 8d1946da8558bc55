"""lvisnb.model.builder: the torchvision Mask R-CNN a preset builds (every seed row, shapes only),
the toy model end to end on CPU, and the cosine predictors of the Seesaw rows."""

import pytest
import torch
import torchvision
from mmdet_rows import ARCHS, CLASSIFIER_PARAMS, FC_PARAMS, SEED_NAMES, SEESAW_NAMES
from synthetic import MASK_RCNN_LOSSES, detection_batch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from lvisnb.model import builder as M
from lvisnb.model.backbone_weights import backbone_name
from lvisnb.model.builder import PresizedRCNNTransform, build_model
from lvisnb.model.presets import PRESETS, SEED_PRESETS, TOY, get_preset
from lvisnb.model.train_targets import EvalBatchNorm2d


@pytest.fixture(scope="module")
def meta_models():
    """Every seed preset's model, shapes only (device="meta": no memory, no weights)."""
    return {name: build_model(name, weights=False, device="meta") for name in SEED_PRESETS}


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    return build_model("toy", num_classes=5, weights=False)


def _trunk_state_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {
        k: tuple(v.shape)
        for k, v in module.state_dict().items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }


@pytest.mark.parametrize("loss", ["seesaw", "eqlv2", "federated"])
def test_every_seed_row_builds_with_every_loss(loss):
    counts = torch.ones(1230)
    for name in SEED_PRESETS:
        preset = get_preset(name, cls_loss=loss)
        model = build_model(
            preset, weights=False, device="meta", class_image_counts=counts[: preset.num_classes]
        )
        heads = model.roi_heads
        assert heads.cls_loss.name == loss and heads.cls_loss.num_classes == preset.num_classes
        width = preset.num_classes + (2 if loss == "seesaw" else 1)
        assert heads.box_predictor.cls_score.out_features == width
        assert heads.box_predictor.bbox_pred.out_features == 4 * (preset.num_classes + 1)


@pytest.mark.parametrize("name", sorted(SEESAW_NAMES))
def test_seesaw_models_have_the_cosine_predictors(name):
    model = build_model(name, weights=False, device="meta")
    heads = model.roi_heads
    assert type(heads.box_predictor.cls_score).__name__ == "NormedLinear"
    assert heads.box_predictor.cls_score.out_features == 1203 + 2
    assert heads.box_predictor.bbox_pred.out_features == 4 * 1204
    mask_logits = type(heads.mask_predictor.mask_fcn_logits).__name__
    assert mask_logits == ("NormedConv2d" if SEESAW_NAMES[name][1] else "Conv2d")
    assert heads.cls_loss.cum_samples.shape == (1204,)


# ----------------------------------------------------------------------------- seed models


@pytest.mark.parametrize("name", SEED_NAMES)
def test_seed_model_architecture(name, meta_models):
    model = meta_models[name]
    p = PRESETS[name]
    arch = next(a for a in ARCHS if f"_{a}_fpn_" in name)
    backbone, groups, width, _ = ARCHS[arch]
    assert model.preset == p
    assert next(model.parameters()).device.type == "meta"
    body = model.backbone.body
    assert backbone_name(model) == backbone
    assert [len(getattr(body, f"layer{i}")) for i in range(1, 5)] == (
        [3, 4, 6, 3] if backbone == "resnet50" else [3, 4, 23, 3]
    )
    assert body.layer1[0].conv2.groups == groups
    assert body.layer1[0].conv2.out_channels == width
    assert body.layer4[-1].conv3.out_channels == 2048
    assert "fc" not in dict(body.named_children()) and "avgpool" not in dict(body.named_children())

    # trunk = torchvision's classifier without fc: same keys and shapes, same parameter count
    weight_numel = sum(
        v.numel()
        for k, v in body.state_dict().items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )  # conv weights + norm affine
    assert weight_numel == CLASSIFIER_PARAMS[backbone] - FC_PARAMS
    reference = {
        "resnet50": torchvision.models.resnet50,
        "resnet101": torchvision.models.resnet101,
        "resnext101_64x4d": torchvision.models.resnext101_64x4d,
    }.get(backbone)
    if reference is not None:
        with torch.device("meta"):
            tv = reference()
        assert _trunk_state_shapes(body) == _trunk_state_shapes(tv)
        assert weight_numel == sum(
            q.numel() for k, q in tv.named_parameters() if not k.startswith("fc.")
        )

    # norm: mmdetection's BN in eval mode everywhere in the trunk (statistics fixed, affine
    # trained); stem + layer1 frozen, layer2-4 train, BN affine included
    norms = [m for m in body.modules() if "norm" in type(m).__name__.lower()]
    assert norms and all(isinstance(m, EvalBatchNorm2d) for m in norms)
    assert not any(isinstance(m, FrozenBatchNorm2d | nn.GroupNorm) for m in body.modules())
    for key, param in body.named_parameters():
        assert param.requires_grad == key.startswith(("layer2", "layer3", "layer4")), key
    assert body.layer2[0].bn1.weight.requires_grad and not body.layer2[0].bn1.training
    assert any(p_.requires_grad for p_ in body.layer2.parameters())

    # FPN: C2-C5 -> 256 channels, P6 by max pooling
    fpn = model.backbone.fpn
    assert model.backbone.out_channels == 256
    assert [b[0].in_channels for b in fpn.inner_blocks] == [256, 512, 1024, 2048]
    assert {b[0].out_channels for b in fpn.layer_blocks} == {256}
    assert type(fpn.extra_blocks).__name__ == "LastLevelMaxPool"

    # RPN anchors: one size per level, 3 ratios
    anchors = model.rpn.anchor_generator
    assert anchors.sizes == ((32,), (64,), (128,), (256,), (512,))
    assert anchors.aspect_ratios == ((0.5, 1.0, 2.0),) * 5
    assert anchors.num_anchors_per_location() == [3] * 5
    assert model.rpn.head.cls_logits.out_channels == 3

    # predictors: num_classes + 1 (background) logits
    classes = p.num_classes + 1
    assert classes == (1204 if name.endswith("_v1") else 1231)
    box = model.roi_heads.box_predictor
    assert box.cls_score.out_features == classes
    assert box.bbox_pred.out_features == 4 * classes
    assert box.cls_score.in_features == 1024
    assert model.roi_heads.box_head.fc6.in_features == 256 * 7 * 7
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == classes
    assert model.roi_heads.mask_predictor.conv5_mask.in_channels == 256
    assert len(model.roi_heads.mask_head) == 4

    # RoI heads: sampler and test settings
    heads = model.roi_heads
    assert (heads.score_thresh, heads.nms_thresh, heads.detections_per_img) == (1e-4, 0.5, 300)
    assert heads.fg_bg_sampler.batch_size_per_image == 512
    assert heads.fg_bg_sampler.positive_fraction == 0.25
    assert (heads.proposal_matcher.high_threshold, heads.proposal_matcher.low_threshold) == (
        0.5,
        0.5,
    )
    rpn = model.rpn
    assert (rpn.proposal_matcher.high_threshold, rpn.proposal_matcher.low_threshold) == (0.7, 0.3)
    assert rpn.fg_bg_sampler.batch_size_per_image == 256
    assert rpn.nms_thresh == 0.7

    # RPN top-n in train and eval mode
    model.train()
    assert (rpn.pre_nms_top_n(), rpn.post_nms_top_n()) == (2000, 1000)
    model.eval()
    assert (rpn.pre_nms_top_n(), rpn.post_nms_top_n()) == (1000, 1000)

    # transform: test resize 800 / 1333, mmdetection's mean/std
    assert isinstance(model.transform, PresizedRCNNTransform)
    assert (model.transform.min_size, model.transform.max_size) == ((800,), 1333)
    assert model.transform.image_mean == pytest.approx([0.485, 0.456, 0.406])
    assert model.transform.size_divisible == 32


def test_num_classes_argument_overrides_the_preset():
    model = build_model(SEED_NAMES[0], num_classes=7, weights=False, device="meta")
    assert model.preset.num_classes == 7
    assert model.roi_heads.box_predictor.cls_score.out_features == 8
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 8
    assert PRESETS[SEED_NAMES[0]].num_classes == 1203


def test_toy_needs_num_classes():
    with pytest.raises(ValueError, match=r"num_classes.*build_model\('toy', num_classes="):
        build_model("toy", weights=False)


# ----------------------------------------------------------------------------- toy model


def test_toy_model_structure(toy_model):
    assert toy_model.preset.num_classes == 5
    assert backbone_name(toy_model) == "resnet10"
    body = toy_model.backbone.body
    assert all(p.requires_grad for p in body.parameters())  # trainable_layers=5: stem included
    assert isinstance(body.bn1, nn.GroupNorm) and body.bn1.num_groups == 16
    assert not any(isinstance(m, FrozenBatchNorm2d | nn.BatchNorm2d) for m in toy_model.modules())
    assert toy_model.backbone.out_channels == TOY.fpn_channels == 64
    assert toy_model.roi_heads.box_predictor.cls_score.out_features == 6
    assert toy_model.roi_heads.box_predictor.bbox_pred.out_features == 24
    assert toy_model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 6
    assert toy_model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert toy_model.roi_heads.detections_per_img == 100


def test_toy_train_step_returns_five_finite_losses_and_backpropagates(toy_model):
    images, targets = detection_batch()
    toy_model.train()
    toy_model.zero_grad()
    losses = toy_model(images, targets)
    assert set(losses) == MASK_RCNN_LOSSES
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in toy_model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert toy_model.backbone.body.conv1.weight.grad.abs().sum() > 0
    assert toy_model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad.abs().sum() > 0
    toy_model.zero_grad()


def test_presized_transform_keeps_train_sizes_and_resizes_in_eval(toy_model):
    images, targets = detection_batch()
    toy_model.train()
    batch, out_targets = toy_model.transform(images, targets)
    assert batch.image_sizes == [(160, 200), (176, 144)]
    assert batch.tensors.shape[-2] % 32 == 0 and batch.tensors.shape[-1] % 32 == 0
    for before, after in zip(targets, out_targets, strict=True):
        assert torch.equal(before["boxes"], after["boxes"])
        assert torch.equal(before["masks"], after["masks"])
    # normalised with the preset's mean/std, not resized
    mean = torch.tensor(TOY.image_mean).view(3, 1, 1)
    std = torch.tensor(TOY.image_std).view(3, 1, 1)
    expected = (images[0] - mean) / std
    assert torch.allclose(batch.tensors[0, :, :160, :200], expected, atol=1e-6)

    toy_model.eval()
    try:
        # toy: test_scale 288, max_size 352
        evaluated, _ = toy_model.transform([torch.rand(3, 100, 120), torch.rand(3, 160, 200)])
    finally:
        toy_model.train()
    (h0, w0), (h1, w1) = evaluated.image_sizes
    assert min(h0, w0) == 288 and max(h0, w0) <= 352  # shorter side to test_scale
    assert max(h1, w1) == 352 and min(h1, w1) < 288  # longer side capped by max_size
    assert h1 / w1 == pytest.approx(160 / 200, abs=0.01)


def test_toy_eval_returns_detections_in_input_pixels(toy_model):
    images, _ = detection_batch(seed=1)
    toy_model.eval()
    try:
        with torch.no_grad():
            outputs = toy_model(images)
    finally:
        toy_model.train()
    assert len(outputs) == len(images)
    for image, out in zip(images, outputs, strict=True):
        _, h, w = image.shape
        k = len(out["boxes"])
        assert 0 < k <= TOY.box_detections_per_img
        assert out["boxes"].shape == (k, 4)
        assert out["labels"].shape == out["scores"].shape == (k,)
        assert out["masks"].shape == (k, 1, h, w)  # the input image, not the resized one
        boxes = out["boxes"]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 3] <= h + 1e-3).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert ((out["labels"] >= 1) & (out["labels"] <= 5)).all()
        assert (out["scores"] >= TOY.box_score_thresh).all()
        assert (out["masks"] >= 0).all() and (out["masks"] <= 1).all()


# ----------------------------------------------------------------------------- weights


def test_meta_build_never_fetches_weights(monkeypatch):
    monkeypatch.setattr(M, "load_backbone_weights", lambda *a, **k: pytest.fail("fetched"))
    model = build_model(SEED_NAMES[2], device=torch.device("meta"))  # weights=True by default
    assert backbone_name(model) == "resnext101_32x4d"


def test_no_weight_init_skips_the_draws_and_restores_them():
    """Inside, a module keeps its allocated memory (no random draw); after, even after an
    error, torch.nn.init is torch's again; a kit model built inside and loaded strictly equals
    the model it was saved from."""
    from lvisnb.model.builder import no_weight_init

    originals = {name: getattr(torch.nn.init, name) for name in ("kaiming_uniform_", "normal_")}
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    with no_weight_init():
        torch.nn.Linear(64, 64)
    assert torch.equal(torch.random.get_rng_state(), state)  # nothing drawn
    with pytest.raises(RuntimeError), no_weight_init():
        raise RuntimeError("a failed build")
    assert {name: getattr(torch.nn.init, name) for name in originals} == originals
    source = build_model(get_preset("toy"), num_classes=5, weights=False)
    with no_weight_init():
        loaded = build_model(get_preset("toy"), num_classes=5, weights=False)
    loaded.load_state_dict(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
