"""The learning-rate schedule: mmdetection's linear scaling, warm-up and steps, and torch's
schedulers running it (through a checkpoint and back)."""

import dataclasses

import pytest
import torch

from lvisnb.engine.schedule import (
    build_scheduler,
    lr_factor,
    restore_scheduler,
    scaled_lr,
    schedule_iters,
)
from lvisnb.model.checkpoint import load_checkpoint, save_checkpoint
from lvisnb.model.presets import TOY, get_preset

R50_V1 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"  # 12 epochs, steps after 8 and 11
R50_V05 = "mask_rcnn_r50_fpn_sample1e-3_mstrain_2x_lvis_v0.5"  # 24 epochs, steps after 16, 22


def test_lr_factor_linear_warmup_matches_mmdetection():
    p = get_preset(R50_V1)
    assert lr_factor(p, 0) == pytest.approx(0.001)
    assert lr_factor(p, 250) == pytest.approx(1 - 0.5 * 0.999)
    assert lr_factor(p, 499) == pytest.approx(1 - (1 / 500) * 0.999)
    assert lr_factor(p, 500) == 1.0
    assert lr_factor(p, 10_000) == 1.0
    factors = [lr_factor(p, i) for i in range(501)]
    assert all(a < b for a, b in zip(factors, factors[1:], strict=False))  # strictly rising
    constant = dataclasses.replace(p, warmup="constant")
    assert lr_factor(constant, 0) == lr_factor(constant, 499) == pytest.approx(0.001)
    assert lr_factor(constant, 500) == 1.0
    assert lr_factor(dataclasses.replace(p, warmup=None), 0) == 1.0


def test_lr_factor_steps_are_gamma_powers():
    p = get_preset(R50_V1)
    steps = (8 * 63, 11 * 63)
    assert lr_factor(p, 8 * 63 - 1, steps) == 1.0
    assert lr_factor(p, 8 * 63, steps) == pytest.approx(0.1)
    assert lr_factor(p, 11 * 63 - 1, steps) == pytest.approx(0.1)
    assert lr_factor(p, 11 * 63, steps) == pytest.approx(0.01)
    assert lr_factor(p, 12 * 63 - 1, steps) == pytest.approx(0.01)
    # a step inside the warmup multiplies with it
    assert lr_factor(p, 100, (50,)) == pytest.approx(0.1 * (1 - 0.8 * 0.999))


def test_schedule_iters_converts_epochs_and_keeps_iteration_schedules():
    p = get_preset(R50_V1)
    # ceil(1000 / 16) = 63 iterations per epoch
    per_epoch_63 = (12 * 63, (8 * 63, 11 * 63))
    assert schedule_iters(p, images_per_epoch=1000, total_batch=16) == per_epoch_63
    assert schedule_iters(p, images_per_epoch=1000) == (12 * 63, (8 * 63, 11 * 63))
    assert schedule_iters(p, 1000, total_batch=2) == (12 * 500, (8 * 500, 11 * 500))
    v05 = get_preset(R50_V05)
    assert schedule_iters(v05, 160, 16) == (24 * 10, (16 * 10, 22 * 10))
    assert schedule_iters(TOY, images_per_epoch=1000, total_batch=16) == (1100, (733, 990))
    own = get_preset("toy", max_iters=40, lr_steps_iters=(30,))
    assert schedule_iters(own, 123, 7) == (40, (30,))
    with pytest.raises(ValueError, match="images_per_epoch"):
        schedule_iters(p, 0)
    with pytest.raises(ValueError, match="total_batch"):
        schedule_iters(p, 10, total_batch=0)
    with pytest.raises(ValueError, match="total_batch"):
        scaled_lr(p, 0)


# ----------------------------------------------------------------------------- torch schedulers

BASE_LR = 0.0025  # 0.02 at batch 16 scaled to 1 GPU x 2 images
R50 = get_preset(R50_V1)
# (preset, steps in iterations): the 1x row at 63 iterations an epoch, a step inside the
# warm-up, constant warm-up with a step at 0, none, no warm-up iterations, a repeated step, toy
SCHEDULES = [
    (R50, (8 * 63, 11 * 63)),
    (R50, (50,)),
    (dataclasses.replace(R50, warmup="constant"), (0, 500, 600)),
    (dataclasses.replace(R50, warmup=None), (5, 5, 9)),
    (dataclasses.replace(R50, warmup_iters=0), (3,)),
    (dataclasses.replace(R50, warmup_iters=7, warmup_ratio=0.25, gamma=0.5), (4, 10)),
    (TOY, TOY.lr_steps_iters),
]
ITERATIONS = 12 * 63


def _optimizer() -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=BASE_LR, momentum=0.9)


def _lrs(optimizer, scheduler, iterations: int) -> list[float]:
    """The lr of each of ``iterations`` iterations, stepping as the training loop does."""
    lrs = []
    for _ in range(iterations):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(("preset", "steps"), SCHEDULES)
def test_scheduler_gives_mmdetections_factor_at_every_iteration(preset, steps):
    optimizer = _optimizer()
    lrs = _lrs(optimizer, build_scheduler(optimizer, preset, steps), ITERATIONS)
    expected = [BASE_LR * lr_factor(preset, i, steps) for i in range(ITERATIONS)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)


def test_scheduler_is_linear_lr_chained_with_multi_step_lr():
    optimizer = _optimizer()
    scheduler = build_scheduler(optimizer, R50, (504, 693))
    parts = scheduler._schedulers
    assert [type(s).__name__ for s in parts] == ["LinearLR", "MultiStepLR"]
    assert (parts[0].start_factor, parts[0].end_factor, parts[0].total_iters) == (0.001, 1.0, 500)
    assert (dict(parts[1].milestones), parts[1].gamma) == ({504: 1, 693: 1}, 0.1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(BASE_LR * 0.001)  # iteration 0


@pytest.mark.parametrize("cut", [1, 250, 504, 600])  # in the warm-up, at and after a step
@pytest.mark.parametrize(("preset", "steps"), [SCHEDULES[0], SCHEDULES[1], SCHEDULES[2]])
def test_scheduler_state_round_trips_through_a_checkpoint(preset, steps, cut, tmp_path):
    """Resuming from a checkpoint written after ``cut`` iterations gives the same lr, to the
    bit, at every later iteration as the run that never stopped."""
    optimizer = _optimizer()
    whole = _lrs(optimizer, build_scheduler(optimizer, preset, steps), ITERATIONS)

    optimizer = _optimizer()
    scheduler = build_scheduler(optimizer, preset, steps)
    assert _lrs(optimizer, scheduler, cut) == whole[:cut]
    path = tmp_path / "last.pt"
    save_checkpoint(
        path, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    )
    state = load_checkpoint(path)  # weights_only=True: the scheduler state is plain data

    optimizer = _optimizer()
    scheduler = build_scheduler(optimizer, preset, steps)  # moves the lr to iteration 0's
    optimizer.load_state_dict(state["optimizer"])
    restore_scheduler(scheduler, state["scheduler"], cut)
    assert _lrs(optimizer, scheduler, ITERATIONS - cut) == whole[cut:]


@pytest.mark.parametrize("cut", [1, 250, 504, 600])
def test_an_older_kits_lambda_lr_state_resumes_on_the_same_schedule(cut):
    """Checkpoints written before the move to torch's schedulers hold a ``LambdaLR`` state;
    the rebuilt scheduler continues from the iteration with mmdetection's factors."""
    preset, steps = SCHEDULES[0]
    optimizer = _optimizer()
    old = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_factor(preset, i, steps))
    _lrs(optimizer, old, cut)
    saved = {"optimizer": optimizer.state_dict(), "scheduler": old.state_dict()}
    assert "_schedulers" not in saved["scheduler"]

    optimizer = _optimizer()
    scheduler = build_scheduler(optimizer, preset, steps)
    optimizer.load_state_dict(saved["optimizer"])
    restore_scheduler(scheduler, saved["scheduler"], cut)
    expected = [BASE_LR * lr_factor(preset, i, steps) for i in range(cut, ITERATIONS)]
    assert _lrs(optimizer, scheduler, ITERATIONS - cut) == pytest.approx(expected, rel=1e-12)
