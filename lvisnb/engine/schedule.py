"""The learning-rate schedule of a run: linear scaling, epochs to iterations, warm-up, steps.

mmdetection's recipe (``optimizer.lr`` and ``lr_config`` of ``configs/_base_/schedules/
schedule_1x.py``, mmcv's ``StepLrUpdaterHook``), read from a :class:`lvisnb.model.presets.Preset`:

1. linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; mmdetection's
   ``auto_scale_lr``): the base lr is ``preset.lr * total_batch / preset.lr_batch``
   (:func:`scaled_lr`);
2. epochs become iterations (:func:`schedule_iters`, :func:`resolve_schedule`): an epoch is
   ``ceil(images_per_epoch / total_batch)`` iterations;
3. at 0-based iteration ``i`` the lr is the base lr times (:func:`lr_factor`)
   ``gamma ** (number of steps s with s <= i)``, and while ``i < warmup_iters`` also times
   ``w(i) = 1 - (1 - i / warmup_iters) * (1 - warmup_ratio)`` (linear warm-up) or
   ``warmup_ratio`` (``warmup="constant"``).

:func:`build_scheduler` runs step 3 with torch's own schedulers: ``LinearLR`` (or
``ConstantLR``) for the warm-up chained with ``MultiStepLR`` for the steps. ``ChainedScheduler``
rather than ``SequentialLR``: both act at every iteration and their factors multiply, so a step
inside the warm-up multiplies with it, as in mmdetection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import ChainedScheduler, ConstantLR, LinearLR, MultiStepLR

from lvisnb.data.sampler import EpochShardedSampler
from lvisnb.model.presets import Preset


def scaled_lr(preset: Preset, total_batch: int | None = None) -> float:
    """Linear scaling rule: ``preset.lr * total_batch / preset.lr_batch`` (per iteration).

    ``total_batch`` (images per iteration over all processes) defaults to the preset's
    ``samples_per_gpu * num_gpus``; for the seed rows 0.02 x B / 16, e.g. 1 GPU x 2 images ->
    0.0025. Raises ``ValueError`` when ``total_batch < 1``.
    """
    batch = preset.total_batch if total_batch is None else total_batch
    if batch < 1:
        raise ValueError(f"total_batch must be >= 1, got {batch}")
    return preset.lr * batch / preset.lr_batch


def schedule_iters(
    preset: Preset, images_per_epoch: int, total_batch: int | None = None
) -> tuple[int, tuple[int, ...]]:
    """``(max_iters, lr_steps_iters)`` of ``preset``'s schedule, both in iterations.

    An epoch is ``ceil(images_per_epoch / total_batch)`` iterations; ``images_per_epoch`` is the
    length of the (repeat-factor expanded) training set: mmdetection's
    ``len(ClassBalancedDataset)`` = ``sum_i ceil(r(i))`` with ``rfs_rounding="ceil"``, the
    sampler's :attr:`~lvisnb.data.sampler.EpochShardedSampler.expected_epoch_length` in general.
    Epoch steps (8, 11) become ``(8 * E, 11 * E)``, the lr decaying after those epochs end.
    A preset with ``max_iters`` set returns its iteration schedule unchanged. ``total_batch``
    defaults to the preset's. Raises ``ValueError`` when ``images_per_epoch`` or
    ``total_batch`` is below 1.
    """
    if preset.max_iters is not None:
        return preset.max_iters, tuple(preset.lr_steps_iters or ())
    if images_per_epoch < 1:
        raise ValueError(f"images_per_epoch must be >= 1, got {images_per_epoch}")
    batch = preset.total_batch if total_batch is None else total_batch
    if batch < 1:
        raise ValueError(f"total_batch must be >= 1, got {batch}")
    per_epoch = math.ceil(images_per_epoch / batch)
    return preset.max_epochs * per_epoch, tuple(s * per_epoch for s in preset.lr_steps)


def resolve_schedule(
    preset: Preset,
    sampler: EpochShardedSampler,
    total_batch: int,
    max_iters: int | None = None,
    lr_steps: tuple[int, ...] | None = None,
) -> tuple[int, tuple[int, ...], int]:
    """``(max_iters, lr_steps, epoch_images)`` of a run: iterations, iterations, images.

    ``epoch_images`` is one epoch over all ranks, ``round(sampler.expected_epoch_length *
    num_replicas)`` (at least 1): ``sum_i ceil(r(i))`` exactly with ``rounding="ceil"``
    (mmdetection's ``len(ClassBalancedDataset)``), ``round(sum_i r(i))`` with
    ``"stochastic"``. :func:`schedule_iters` converts the preset's epochs with it at
    ``total_batch`` images per iteration (an iteration-based preset keeps its own).
    ``max_iters`` shortens or lengthens the run with the steps at the same fractions
    (rounded to whole iterations); ``lr_steps`` replaces the steps.
    """
    epoch_images = max(1, round(sampler.expected_epoch_length * sampler.num_replicas))
    iters, steps = schedule_iters(preset, epoch_images, total_batch)
    if max_iters is not None:
        steps = tuple(round(s * max_iters / iters) for s in steps)
        iters = max_iters
    if lr_steps is not None:
        steps = tuple(lr_steps)
    return iters, steps, epoch_images


def lr_factor(preset: Preset, iteration: int, lr_steps_iters: Sequence[int] = ()) -> float:
    """Multiplier of the base (scaled) lr at 0-based ``iteration``: steps times warm-up.

    The closed form of mmdetection's rule (module docstring, step 3; mmcv
    ``LrUpdaterHook.get_warmup_lr`` and ``StepLrUpdaterHook.get_lr``): ``gamma ** (number of
    steps <= iteration)``, times ``1 - (1 - iteration / warmup_iters) * (1 - warmup_ratio)``
    during a linear warm-up (``"constant"``: times ``warmup_ratio``). ``lr_steps_iters`` comes
    from :func:`schedule_iters`. :func:`build_scheduler` gives the optimiser these factors.
    """
    factor = preset.gamma ** sum(iteration >= s for s in lr_steps_iters)
    if preset.warmup is not None and iteration < preset.warmup_iters:
        if preset.warmup == "linear":
            factor *= 1 - (1 - iteration / preset.warmup_iters) * (1 - preset.warmup_ratio)
        else:
            factor *= preset.warmup_ratio
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, preset: Preset, lr_steps_iters: Sequence[int] = ()
) -> ChainedScheduler:
    """torch schedulers that set ``optimizer``'s lr to base lr x :func:`lr_factor` per iteration.

    Call it on a fresh optimizer (lr = the base lr) and ``step()`` once after each iteration;
    the lr at 0-based iteration ``i`` is then ``base * lr_factor(preset, i, lr_steps_iters)``
    (to float rounding: the torch schedulers multiply the lr step by step). The warm-up is
    ``LinearLR(start_factor=warmup_ratio, end_factor=1, total_iters=warmup_iters)``, whose
    factor ``warmup_ratio + (1 - warmup_ratio) * i / warmup_iters`` is mmdetection's ``w(i)``
    rearranged, or ``ConstantLR(factor=warmup_ratio)``; none when ``warmup`` is ``None`` or
    ``warmup_iters`` is 0. The steps are ``MultiStepLR(milestones=lr_steps_iters,
    gamma=gamma)``. Its ``state_dict()`` holds plain values (loads with ``weights_only=True``).
    """
    schedulers: list = []
    if preset.warmup is not None and preset.warmup_iters > 0:
        if preset.warmup == "linear":
            warmup = LinearLR(optimizer, preset.warmup_ratio, 1.0, preset.warmup_iters)
        else:
            warmup = ConstantLR(optimizer, preset.warmup_ratio, preset.warmup_iters)
        schedulers.append(warmup)
    schedulers.append(MultiStepLR(optimizer, list(lr_steps_iters), preset.gamma))
    return ChainedScheduler(schedulers, optimizer)


def restore_scheduler(scheduler: ChainedScheduler, state: dict, iteration: int) -> None:
    """Load a checkpoint's scheduler ``state`` into ``scheduler`` (from :func:`build_scheduler`
    with the same preset and steps), after the optimizer's state was loaded.

    A state from this kit's :func:`build_scheduler` is loaded as it is. An older kit saved a
    ``LambdaLR`` (no ``"_schedulers"`` key) whose lr the restored optimizer already holds; then
    each chained scheduler is moved on to ``iteration`` (completed iterations), so that the
    next ``step()`` gives iteration ``iteration``'s factor.
    """
    if "_schedulers" in state:
        scheduler.load_state_dict(state)
        return
    for part in scheduler._schedulers:
        part.last_epoch, part._step_count = iteration, iteration + 1
        part._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
