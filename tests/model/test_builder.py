"""lvisnb.model.builder: presets = mmdetection's LVIS configs, the torchvision Mask R-CNN they
build, the toy model end to end on CPU, the AMP dtype and backbone weight loading (never online)."""

import dataclasses
import re
import socket
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from synthetic import MASK_RCNN_LOSSES, detection_batch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from lvisnb.engine.schedule import scaled_lr, schedule_iters
from lvisnb.model import builder as M
from lvisnb.model.builder import (
    PRESETS,
    SEED_PRESETS,
    SEESAW_PRESETS,
    TOY,
    Preset,
    PresizedRCNNTransform,
    autocast_dtype,
    backbone_name,
    build_model,
    build_resnet,
    get_preset,
    load_backbone_weights,
)

ARCHS = {  # name tag -> (BACKBONES key, groups, layer1[0].conv2 out channels, pretrained)
    "r50": ("resnet50", 1, 64, "imagenet"),
    "r101": ("resnet101", 1, 64, "imagenet"),
    "x101_32x4d": ("resnext101_32x4d", 32, 128, "open-mmlab://resnext101_32x4d"),
    "x101_64x4d": ("resnext101_64x4d", 64, 256, "open-mmlab://resnext101_64x4d"),
}
# published parameter counts of the ImageNet classifiers (fc included): torchvision / timm
CLASSIFIER_PARAMS = {
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnext101_32x4d": 44_177_704,
    "resnext101_64x4d": 83_455_272,
}
FC_PARAMS = 2048 * 1000 + 1000


def _seed_name(arch: str, dataset: str) -> str:
    tag = "1x" if dataset == "v1" else "2x"
    return f"mask_rcnn_{arch}_fpn_sample1e-3_mstrain_{tag}_lvis_{dataset}"


SEED_NAMES = [_seed_name(a, d) for d in ("v1", "v0.5") for a in ARCHS]
# mmdetection v2 configs/seesaw_loss/ Mask R-CNN R-50 rows -> (RFS threshold, normed mask)
SEESAW_NAMES = {
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1": (1e-3, False),
    "mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (1e-3, True),
    "mask_rcnn_r50_fpn_random_seesaw_loss_mstrain_2x_lvis_v1": (None, False),
    "mask_rcnn_r50_fpn_random_seesaw_loss_normed_mask_mstrain_2x_lvis_v1": (None, True),
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any connection attempt in this module fails loudly instead of downloading."""

    def refuse(*args, **kwargs):
        raise AssertionError("tests/test_model.py must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


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


# ----------------------------------------------------------------------------- presets


def test_preset_names_are_mmdetections_rows_plus_toy():
    assert set(SEED_PRESETS) == set(SEED_NAMES)
    assert len(SEED_PRESETS) == 8
    assert set(SEESAW_PRESETS) == set(SEESAW_NAMES)
    assert list(PRESETS) == [*SEED_PRESETS, *SEESAW_PRESETS, "toy"]
    assert PRESETS["toy"] is TOY
    assert all(PRESETS[name].name == name for name in PRESETS)


@pytest.mark.parametrize("name", SEED_NAMES)
def test_seed_presets_equal_mmdetection_lvis_configs(name):
    p = get_preset(name)
    arch = next(a for a in ARCHS if f"_{a}_fpn_" in name)
    backbone, _, _, pretrained = ARCHS[arch]
    v1 = name.endswith("_v1")
    # per-row fields
    assert (p.backbone, p.pretrained) == (backbone, pretrained)
    assert p.dataset == ("v1" if v1 else "v0.5")
    assert p.num_classes == (1203 if v1 else 1230)
    assert p.num_classes_with_background == p.num_classes + 1
    assert (p.max_epochs, p.lr_steps) == ((12, (8, 11)) if v1 else (24, (16, 22)))
    assert p.max_iters is None and p.lr_steps_iters is None
    # model
    assert (p.norm, p.trainable_layers, p.fpn_channels, p.fpn_norm) == ("frozen_bn", 3, 256, None)
    assert p.anchor_sizes == (32, 64, 128, 256, 512)
    assert p.anchor_ratios == (0.5, 1.0, 2.0)
    assert (p.box_head_dim, p.mask_head_channels) == (1024, 256)
    # optimiser: SGD lr 0.02 at total batch 16 (2 images x 8 GPUs), linear scaling rule
    assert (p.optimizer, p.lr, p.lr_batch) == ("sgd", 0.02, 16)
    assert (p.samples_per_gpu, p.num_gpus, p.total_batch) == (2, 8, 16)
    assert scaled_lr(p) == pytest.approx(0.02)
    assert scaled_lr(p, 2) == pytest.approx(0.0025)
    assert scaled_lr(p, 64) == pytest.approx(0.08)
    assert (p.momentum, p.weight_decay, p.grad_clip) == (0.9, 1e-4, None)
    assert (p.warmup, p.warmup_iters, p.warmup_ratio, p.gamma) == ("linear", 500, 0.001, 0.1)
    # data
    assert p.rfs_threshold == 1e-3
    assert p.train_scales == tuple(range(640, 801, 32)) == (640, 672, 704, 736, 768, 800)
    assert (p.max_size, p.test_scale, p.flip_prob) == (1333, 800, 0.5)
    mmdet_mean, mmdet_std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
    assert p.image_mean == pytest.approx([m / 255 for m in mmdet_mean], abs=1e-6)
    assert p.image_std == pytest.approx([s / 255 for s in mmdet_std], abs=1e-3)
    # testing
    assert (p.box_score_thresh, p.box_nms_thresh, p.box_detections_per_img) == (1e-4, 0.5, 300)
    assert p.mask_thresh == 0.5
    # RPN / RoI
    assert (p.rpn_pre_nms_top_n_train, p.rpn_pre_nms_top_n_test) == (2000, 1000)
    assert (p.rpn_post_nms_top_n_train, p.rpn_post_nms_top_n_test) == (1000, 1000)
    assert (p.rpn_nms_thresh, p.rpn_fg_iou_thresh, p.rpn_bg_iou_thresh) == (0.7, 0.7, 0.3)
    assert (p.rpn_batch_size_per_image, p.rpn_positive_fraction) == (256, 0.5)
    assert (p.box_fg_iou_thresh, p.box_bg_iou_thresh) == (0.5, 0.5)
    assert (p.box_batch_size_per_image, p.box_positive_fraction) == (512, 0.25)


@pytest.mark.parametrize("name", sorted(SEESAW_NAMES))
def test_seesaw_presets_equal_mmdetection_seesaw_configs(name):
    """configs/seesaw_loss/<name>.py: the r50 LVIS v1 model with Seesaw(p=0.8, q=2.0) on a
    NormedLinear(tempearture=20) classifier, schedule_2x (24 epochs, steps 16 / 22),
    lvis_v1_instance (RFS 1e-3) or coco_instance with LVISV1Dataset ("random": no RFS);
    *_normed_mask_* adds mask_head predictor_cfg NormedConv2d(tempearture=20)."""
    threshold, normed_mask = SEESAW_NAMES[name]
    p = get_preset(name)
    assert (p.cls_loss, p.seesaw_p, p.seesaw_q, p.seesaw_eps) == ("seesaw", 0.8, 2.0, 1e-2)
    assert p.seesaw_cls_temperature == 20.0
    assert p.normed_mask_temperature == (20.0 if normed_mask else None)
    assert (p.max_epochs, p.lr_steps, p.rfs_threshold) == (24, (16, 22), threshold)
    # everything else is the r50 1x LVIS v1 row's
    changed = {
        f.name
        for f in dataclasses.fields(Preset)
        if getattr(p, f.name) != getattr(Preset(), f.name)
    }
    assert changed <= {
        "name",
        "cls_loss",
        "max_epochs",
        "lr_steps",
        "rfs_threshold",
        "normed_mask_temperature",
    }


def test_loss_fields_default_to_their_sources_values():
    p = Preset()
    assert p.cls_loss == "ce" and TOY.cls_loss == "ce"
    # mmdetection SeesawLoss and its NormedLinear(tempearture=20)
    assert (p.seesaw_p, p.seesaw_q, p.seesaw_eps, p.seesaw_cls_temperature) == (0.8, 2, 1e-2, 20)
    assert p.normed_mask_temperature is None  # nn.Conv2d mask logits, as the seed rows
    assert (p.eqlv2_gamma, p.eqlv2_mu, p.eqlv2_alpha) == (12.0, 0.8, 4.0)  # tztztztztz/eqlv2
    assert (p.fed_num_classes, p.fed_freq_weight_power) == (50, 0.5)  # detectron2 LVIS configs


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


def test_seed_rows_differ_from_the_r50_1x_defaults_only_in_row_fields():
    row_fields = {"name", "backbone", "pretrained", "dataset", "num_classes"}
    row_fields |= {"max_epochs", "lr_steps"}
    default = Preset()
    assert default == PRESETS[SEED_NAMES[0]]
    for name in SEED_PRESETS:
        p = PRESETS[name]
        fields = [f.name for f in dataclasses.fields(Preset)]
        changed = {f for f in fields if getattr(p, f) != getattr(default, f)}
        assert changed <= row_fields, (name, changed - row_fields)


def test_presets_are_frozen_and_get_preset_returns_validated_copies():
    p = get_preset(SEED_NAMES[0], lr=0.01, train_scales=[800])
    assert (p.lr, p.train_scales) == (0.01, (800,))  # sequences become tuples
    assert PRESETS[SEED_NAMES[0]].lr == 0.02  # the registry is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lr = 0.1  # type: ignore[misc]
    short = get_preset("toy", max_iters=200, lr_steps_iters=(150, 180))
    assert schedule_iters(short, 10) == (200, (150, 180))


def test_get_preset_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown preset 'mask_rcnn_r18'.*toy"):
        get_preset("mask_rcnn_r18")
    with pytest.raises(ValueError, match=r"unknown Preset field\(s\) 'learning_rate'.*lr"):
        get_preset("toy", learning_rate=0.1)
    with pytest.raises(ValueError, match="backbone 'resnet7'"):
        get_preset("toy", backbone="resnet7")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backbone": "vgg16"}, r"backbone 'vgg16' is not one of"),
        ({"norm": "syncbn"}, r"norm 'syncbn' is not one of"),
        ({"fpn_norm": "bn"}, r"fpn_norm 'bn'"),
        ({"dataset": "v2"}, r"dataset 'v2'"),
        ({"trainable_layers": 6}, r"trainable_layers 6"),
        ({"num_classes": 0}, r"num_classes 0"),
        ({"warmup": "exp"}, r"warmup 'exp'"),
        ({"lr_steps": (8, 13)}, r"lr_steps \(8, 13\) must increase within 1..max_epochs"),
        ({"lr_steps": (11, 8)}, r"lr_steps \(11, 8\)"),
        ({"max_iters": 1000}, r"max_iters and lr_steps_iters are set together"),
        ({"lr_steps_iters": (5,)}, r"max_iters and lr_steps_iters are set together"),
        ({"optimizer": "adamw"}, r"optimizer 'adamw'"),
        ({"cls_loss": "focal"}, r"cls_loss 'focal' is not one of \['ce', 'eqlv2', 'federated'"),
        ({"fed_num_classes": 2.5}, r"fed_num_classes must be an int, got 2.5"),
    ],
)
def test_invalid_preset_fields_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        Preset(**fields)


def test_invalid_preset_reports_every_problem_at_once():
    with pytest.raises(ValueError) as info:
        Preset(name="bad", backbone="vgg16", norm="syncbn")
    text = str(info.value)
    assert "'bad'" in text and "vgg16" in text and "syncbn" in text


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
        if not k.endswith(("running_mean", "running_var"))
    )  # conv weights + norm affine (buffers in FrozenBatchNorm2d)
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

    # norm: FrozenBatchNorm2d everywhere in the trunk; stem + layer1 frozen, layer2-4 train
    norms = [m for m in body.modules() if "norm" in type(m).__name__.lower()]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm) for m in body.modules())
    for key, param in body.named_parameters():
        assert param.requires_grad == key.startswith(("layer2", "layer3", "layer4")), key
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


def test_load_backbone_weights_from_a_local_wrapped_checkpoint(tmp_path, toy_model):
    torch.manual_seed(1)
    source = build_resnet("resnet10", "gn", 16).state_dict()
    assert "fc.weight" in source
    path = tmp_path / "resnet10_gn.pth"
    torch.save({"state_dict": {"backbone.body." + k: v for k, v in source.items()}}, path)

    model = build_model("toy", num_classes=5, weights=False)
    body = model.backbone.body
    assert not torch.equal(body.conv1.weight, source["conv1.weight"])
    loaded = load_backbone_weights(model, path)
    trunk = body.state_dict()
    assert loaded == len(trunk) == len(source) - 2  # everything but fc.weight / fc.bias
    assert all(torch.equal(trunk[k], source[k]) for k in trunk)
    # the same through the str path, the BackboneWithFPN and an in-memory mapping
    assert load_backbone_weights(model.backbone, str(path)) == loaded
    assert load_backbone_weights(body, source) == loaded


def test_load_backbone_weights_into_a_plain_resnet_keeps_its_fc():
    torch.manual_seed(2)
    source = build_resnet("resnet10", "gn", 16).state_dict()
    target = build_resnet("resnet10", "gn", 16)
    fc_before = target.fc.weight.clone()
    assert load_backbone_weights(target, {"module." + k: v for k, v in source.items()}) == (
        len(source) - 2
    )
    assert torch.equal(target.layer4[0].conv1.weight, source["layer4.0.conv1.weight"])
    assert torch.equal(target.fc.weight, fc_before)


def test_load_backbone_weights_tolerates_missing_num_batches_tracked():
    frozen = build_resnet("resnet10", "frozen_bn").state_dict()  # no num_batches_tracked
    target = build_resnet("resnet10", "bn")
    assert load_backbone_weights(target, frozen) == len(frozen) - 2
    assert torch.equal(target.bn1.running_var, frozen["bn1.running_var"])


def test_load_backbone_weights_refuses_mismatched_trunks(tmp_path, toy_model):
    bn_state = build_resnet("resnet10", "bn").state_dict()
    with pytest.raises(ValueError, match=r"resnet10 trunk.*missing.*unexpected.*running_mean"):
        load_backbone_weights(toy_model, bn_state)
    r18 = build_resnet("resnet18", "gn", 16).state_dict()
    with pytest.raises(ValueError, match=r"unexpected.*layer1\.1\."):
        load_backbone_weights(toy_model, r18)
    wide = dict(build_resnet("resnet10", "gn", 16).state_dict())
    wide["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_backbone_weights(toy_model, wide)
    with pytest.raises(TypeError, match="expected a MaskRCNN"):
        load_backbone_weights(nn.Linear(2, 2), wide)


def test_load_backbone_weights_missing_file_names_the_path(tmp_path, toy_model):
    missing = tmp_path / "nowhere" / "resnet10.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_backbone_weights(toy_model, missing)


def test_imagenet_download_failure_explains_the_offline_alternative(monkeypatch):
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # torchvision's WeightsEnum.get_state_dict and model.py's open-mmlab path
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    model = build_model(SEED_NAMES[0], weights=False)  # real CPU r50 with random weights
    before = model.backbone.body.conv1.weight.clone()
    with pytest.raises(RuntimeError) as info:
        load_backbone_weights(model, "imagenet")
    text = str(info.value)
    assert "ResNet50_Weights.IMAGENET1K_V1" in text
    assert "network" in text and "local state_dict path" in text and "offline" in text
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert calls and calls[0].startswith("https://download.pytorch.org/models/resnet50")
    assert torch.equal(model.backbone.body.conv1.weight, before)

    # build_model(weights=True) goes the same way
    with pytest.raises(RuntimeError, match="local state_dict path"):
        build_model(SEED_NAMES[0])

    with pytest.raises(RuntimeError, match="local state_dict path"):
        load_backbone_weights(build_resnet("resnext101_32x4d"), "open-mmlab://resnext101_32x4d")
    assert calls[-1] == M.OPENMMLAB_WEIGHTS["resnext101_32x4d"]


def test_weight_specs_that_cannot_work_are_refused_before_any_download(toy_model):
    with pytest.raises(ValueError, match="no ImageNet weights for resnet10"):
        load_backbone_weights(toy_model, "imagenet")
    with torch.device("meta"):
        x101 = build_resnet("resnext101_32x4d")
    with pytest.raises(ValueError, match="open-mmlab://resnext101_32x4d"):
        load_backbone_weights(x101, "imagenet")
    with pytest.raises(ValueError, match="unknown open-mmlab://resnet7"):
        load_backbone_weights(toy_model, "open-mmlab://resnet7")


def test_meta_build_never_fetches_weights(monkeypatch):
    monkeypatch.setattr(M, "load_backbone_weights", lambda *a, **k: pytest.fail("fetched"))
    model = build_model(SEED_NAMES[2], device=torch.device("meta"))  # weights=True by default
    assert backbone_name(model) == "resnext101_32x4d"


# ----------------------------------------------------------------------------- AMP


def test_autocast_dtype_is_one_choice_for_training_and_inference(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    for amp in ("auto", "off", True, False):
        assert autocast_dtype(amp, cpu) is None  # float32 off CUDA
    for amp in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"amp='{amp}' needs a CUDA device, got cpu"):
            autocast_dtype(amp, cpu)
    with pytest.raises(ValueError, match="amp 'half' is not one of auto, bf16, fp16, off"):
        autocast_dtype("half", cpu)
    # on CUDA (only the device's type is read; the bf16 check is asked of torch)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", cuda) is autocast_dtype(True, cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", cuda) is autocast_dtype(True, cuda) is torch.float16
    assert autocast_dtype("bf16", cuda) is torch.bfloat16
    assert autocast_dtype("fp16", cuda) is torch.float16
    assert autocast_dtype("off", cuda) is autocast_dtype(False, cuda) is None


# ----------------------------------------------------------------------------- docs


def test_model_docstrings_point_at_the_readme_not_a_missing_doc():
    assert "docs/presets.md" not in (M.__doc__ or "") + (Preset.__doc__ or "")
    assert "README" in M.__doc__ and "Presets" in M.__doc__
    assert "lvisnb.model.preset_table" in M.__doc__  # where the README section is generated


def test_iteration_steps_must_lie_within_the_run():
    with pytest.raises(ValueError, match="lr_steps_iters"):
        get_preset("toy", max_iters=100, lr_steps_iters=(50, 150))
    with pytest.raises(ValueError, match="lr_steps_iters"):
        get_preset("toy", max_iters=100, lr_steps_iters=(80, 60))
    assert get_preset("toy", max_iters=100, lr_steps_iters=(60, 90)).max_iters == 100


class _Payload:
    """Unpickling this runs ``os.makedirs(marker)``: a stand-in for a malicious pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.marker,))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv1.weight": _Payload(marker)}, path)


def test_planted_hub_files_and_weights_files_are_never_unpickled(tmp_path, monkeypatch):
    """Every path that loads weights (torchvision's weights API, open-mmlab URLs, a local
    file) uses ``weights_only=True``: a pickle planted in the torch hub cache does not run."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    marker = tmp_path / "payload-ran"
    resnet18 = build_resnet("resnet18")
    url = torchvision.models.get_weight(M.TORCHVISION_WEIGHTS["resnet18"]).url
    planted = tmp_path / "hub" / "checkpoints" / Path(url).name
    _plant(planted, marker)
    for spec in ("imagenet", M.TORCHVISION_WEIGHTS["resnet18"]):
        with pytest.raises(ValueError, match=re.escape(str(planted)) + ".*not a plain weights"):
            load_backbone_weights(resnet18, spec)
    with torch.device("meta"):
        x101 = build_resnet("resnext101_32x4d")
    mmlab = tmp_path / "hub" / "checkpoints" / Path(M.OPENMMLAB_WEIGHTS["resnext101_32x4d"]).name
    _plant(mmlab, marker)
    with pytest.raises(ValueError, match="not a plain weights"):
        load_backbone_weights(x101, "open-mmlab://resnext101_32x4d")
    local = tmp_path / "weights.pth"
    _plant(local, marker)
    with pytest.raises(ValueError, match=re.escape(str(local))):
        load_backbone_weights(resnet18, local)
    assert not marker.exists()
    torch.load(local, weights_only=False)  # the payload is real: without weights_only it runs
    assert marker.exists()


@pytest.mark.parametrize(
    ("field", "value", "interval"),
    [
        ("lr", float("nan"), "(0, inf)"),
        ("lr", -0.02, "(0, inf)"),
        ("grad_clip", -1.0, "(0, inf)"),  # a negative norm would turn clipping into ascent
        ("momentum", 1.0, "[0, 1)"),
        ("gamma", 0.0, "(0, 1]"),
        ("warmup_ratio", float("inf"), "(0, 1]"),
        ("box_nms_thresh", 1.5, "[0, 1]"),
        ("train_scales", (640, -1), "[1, inf)"),
        ("weight_decay", -1e-4, "[0, inf)"),
        ("box_detections_per_img", 0, "[1, inf)"),
        ("seesaw_p", -0.8, "[0, inf)"),
        ("seesaw_q", float("nan"), "[0, inf)"),
        ("seesaw_eps", 0.0, "(0, 1]"),
        ("seesaw_cls_temperature", 0.0, "(0, inf)"),
        ("normed_mask_temperature", -20.0, "(0, inf)"),
        ("eqlv2_gamma", 0.0, "(0, inf)"),
        ("eqlv2_mu", -0.1, "[0, inf)"),
        ("eqlv2_alpha", -4.0, "[0, inf)"),
        ("fed_num_classes", 0, "[1, inf)"),
        ("fed_freq_weight_power", -0.5, "[0, inf)"),
        ("image_mean", (0.485, float("nan"), 0.406), "[0, 1]"),  # images are scaled to [0, 1]
        ("image_std", (0.229, 0.0, 0.225), "(0, inf)"),
        ("rfs_threshold", 2.0, "[0, 1]"),  # a fraction of the training images
    ],
)
def test_preset_numbers_out_of_range_are_named(field, value, interval):
    with pytest.raises(ValueError, match=re.escape(f"{field} must be finite and in {interval}")):
        get_preset("toy", **{field: value})


def test_every_preset_is_in_range():
    for name in PRESETS:
        assert M._range_problems(get_preset(name)) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("anchor_sizes", (16, 32, 64, 128), "anchor_sizes needs 5 values, got 4"),
        ("train_scales", (), "train_scales needs at least 1 values, got 0"),
        ("train_scales", 300, "train_scales must be a list of numbers, got 300"),
        ("image_mean", (0.5, 0.5), "image_mean needs 3 values, got 2"),
        ("anchor_ratios", "1.0", "anchor_ratios must be a list of numbers"),
    ],
)
def test_sequence_fields_are_checked_before_any_model_is_built(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_preset("toy", **{field: value})
