"""lvisnb.engine.config: TrainConfig's checks name the field, and which TrainConfig field
overrides which Preset field (KNOBS) is stated once."""

import dataclasses

import pytest

from lvisnb.engine.config import KNOBS, TrainConfig, knob_overrides, run_preset
from lvisnb.model.presets import TORCHVISION_OPS, get_preset


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampler": "balanced"}, "sampler"),
        ({"batch_size": 0}, "batch_size"),
        ({"amp": "x"}, "amp"),
    ],
)
def test_bad_config_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", float("nan"), r"lr must be a finite number in \(0, inf\)"),
        ("lr", -0.02, r"lr must be a finite number in \(0, inf\)"),
        ("grad_clip", -1.0, r"grad_clip must be a finite number in \(0, inf\)"),
        ("rfs_threshold", float("inf"), r"rfs_threshold must be a finite number in \[0, 1\]"),
        ("rfs_threshold", 1.5, r"rfs_threshold must be a finite number in \[0, 1\]"),
        ("warmup_iters", -5, "warmup_iters must be an integer >= 0"),
        ("seed", 1.5, "seed must be an integer >= 0"),
        ("lr_steps", (3, -1), "lr_steps must be increasing integers >= 0"),
        ("lr_steps", (8, 3), "lr_steps must be increasing integers >= 0"),
        ("lr_steps", (3, 3), "lr_steps must be increasing integers >= 0"),
    ],
)
def test_config_numbers_are_checked_before_training(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_each_knob_overrides_one_preset_field_at_one_place():
    cfg = TrainConfig(lr=0.5, grad_clip=2.0, rfs_rounding="ceil", lr_steps=(3,))
    assert knob_overrides(cfg, "preset") == {"grad_clip": 2.0, "rfs_rounding": "ceil"}
    assert knob_overrides(cfg, "schedule") == {"lr": 0.5, "lr_steps": (3,)}
    assert (
        knob_overrides(TrainConfig(), "preset") == knob_overrides(TrainConfig(), "schedule") == {}
    )
    preset = run_preset(cfg)
    toy = get_preset("toy")
    assert (preset.grad_clip, preset.rfs_rounding) == (2.0, "ceil")
    assert (preset.lr, preset.lr_steps_iters) == (toy.lr, toy.lr_steps_iters)  # run units
    for name, (field, _) in KNOBS.items():
        assert hasattr(cfg, name) and hasattr(preset, field), name
    with pytest.raises(ValueError, match="how 'model'"):
        knob_overrides(cfg, "model")


def test_resume_takes_the_saved_preset_for_fields_the_user_does_not_set():
    """A run saved by an older kit (no RoI-op fields, BN frozen) resumes as it began: absent
    fields take the values that kit computed with, recorded ones their recorded values, and
    only what the user sets now replaces them (and is then compared against the checkpoint)."""
    name = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"
    record = dataclasses.asdict(get_preset(name))
    for key in TORCHVISION_OPS:
        del record[key]
    record["norm"] = "frozen_bn"
    resumed = run_preset(TrainConfig(preset=name, resume=True), saved=record)
    assert {key: getattr(resumed, key) for key in TORCHVISION_OPS} == TORCHVISION_OPS
    assert resumed.norm == "frozen_bn" and get_preset(name).norm == "bn_eval"
    clipped = run_preset(TrainConfig(preset=name, grad_clip=3.0, resume=True), saved=record)
    assert (clipped.grad_clip, clipped.norm) == (3.0, "frozen_bn")
    other = run_preset(TrainConfig(preset="toy", resume=True), saved=record)
    assert other == get_preset("toy")  # another preset: compared, and refused, as before
    with pytest.raises(ValueError, match="unknown Preset field"):
        run_preset(TrainConfig(preset=name, overrides={"nope": 1}), saved=record)
