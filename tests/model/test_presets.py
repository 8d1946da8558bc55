"""lvisnb.model.presets: presets = mmdetection's LVIS configs, their defaults, and the checks
of every field (names, ranges, sequences)."""

import dataclasses
import re
from pathlib import Path

import pytest
from mmdet_rows import ARCHS, SEED_NAMES, SEESAW_NAMES

from lvisnb.engine.schedule import scaled_lr, schedule_iters
from lvisnb.model import presets as P
from lvisnb.model.presets import PRESETS, SEED_PRESETS, SEESAW_PRESETS, TOY, Preset, get_preset


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
    assert (p.norm, p.trainable_layers, p.fpn_channels, p.fpn_norm) == ("bn_eval", 3, 256, None)
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


def test_model_docstrings_point_at_the_presets_page_that_exists():
    assert "docs/presets.md" in P.__doc__ and "Presets" in P.__doc__
    assert (Path(__file__).resolve().parents[2] / "docs" / "presets.md").is_file()
    assert "lvisnb.model.preset_table" in P.__doc__  # where the Presets page is generated


def test_iteration_steps_must_lie_within_the_run():
    with pytest.raises(ValueError, match="lr_steps_iters"):
        get_preset("toy", max_iters=100, lr_steps_iters=(50, 150))
    with pytest.raises(ValueError, match="lr_steps_iters"):
        get_preset("toy", max_iters=100, lr_steps_iters=(80, 60))
    assert get_preset("toy", max_iters=100, lr_steps_iters=(60, 90)).max_iters == 100


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
        assert P._range_problems(get_preset(name)) == []


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
