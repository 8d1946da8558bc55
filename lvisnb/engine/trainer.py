"""Iteration-based Mask R-CNN training on LVIS: schedule, AMP, checkpoints, resume, DDP.

``train(TrainConfig(...))`` (:class:`lvisnb.engine.config.TrainConfig`) or, for several
processes, ``torchrun --nproc_per_node=N -m lvisnb.cli train --preset ... --run-dir ...``
(NCCL on GPUs, gloo on the CPU). The pieces, as torchvision's ``references/detection``:
:func:`lvisnb.engine.setup.setup_training` builds a :class:`~lvisnb.engine.run_state.TrainSetup`
(data, model, optimiser, scheduler, AMP) and the :class:`~lvisnb.engine.run_state.Progress` to start
from, :func:`lvisnb.engine.loop.train_step` is one iteration, :func:`lvisnb.engine.loop.run_epoch`
one pass of the sampler, :func:`lvisnb.engine.loop.save_training_checkpoint` writes ``last.pt`` /
``final.pt``.

Schedule (mmdetection's ``lr_config``, :mod:`lvisnb.engine.schedule`; torch's ``LinearLR`` chained
with ``MultiStepLR``): for iteration ``i`` (0-based) the learning rate is ``lr * w(i) *
gamma ** (number of steps <= i)`` with linear warm-up ``w(i) = 1 - (1 - i / warmup_iters) *
(1 - warmup_ratio)`` for ``i < warmup_iters``, else 1. An epoch is one pass of the sampler:
with RFS, the repeat-factor expanded training set, so epochs convert to iterations with its
(expected) length (:attr:`lvisnb.data.sampler.EpochShardedSampler.expected_epoch_length`):
``sum_i ceil(r(i))`` images with the preset's ``rfs_rounding="ceil"`` (the mmdetection rows:
``len(ClassBalancedDataset)``), ``sum_i r(i)`` on average with ``"stochastic"`` (detectron2's
``RepeatFactorTrainingSampler``).

Each run directory gets ``train_log.jsonl`` (one JSON line per iteration: iteration, epoch, lr,
every loss, seconds; under torchrun each loss is the mean over the ranks, see
:func:`lvisnb.engine.loop.reduce_losses`), ``config.json`` and ``checkpoints/last.pt`` (every
``checkpoint_every`` iterations and at the end; written to a temporary file, then renamed, so a
crash never leaves a half-written checkpoint) and ``checkpoints/final.pt`` at the end. A checkpoint
holds model, optimizer, scheduler, AMP scaler, iteration, sampler epoch, position in the epoch, RNG
states and the config, and loads with ``torch.load(..., weights_only=True)``. ``resume=True``
continues from ``last.pt``; on the CPU with a fixed seed the losses equal those of an uninterrupted
run. A non-finite loss raises ``FloatingPointError``; the check reads the rank-averaged loss, so one
rank's NaN stops every rank at the same iteration (none is left waiting in a collective).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist
from tqdm.auto import tqdm

from lvisnb.engine.config import TrainConfig
from lvisnb.engine.loop import RunLogs, run_epoch, save_training_checkpoint
from lvisnb.engine.run_dir import FINAL
from lvisnb.engine.setup import setup_training


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    iterations: int
    losses: list[float]  # total loss per iteration run in this call (mean over the ranks)


def train(cfg: TrainConfig, callback: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``cfg.preset`` on ``cfg.train_ann``; see the module docstring for what is written.

    ``callback``, if given, is called on rank 0 with each iteration's log record (a live plot);
    an exception it raises stops the run (``last.pt`` stays the newest checkpoint). Raises
    what :func:`lvisnb.engine.setup.setup_training` and :func:`lvisnb.engine.loop.train_step`
    raise, and ``FloatingPointError`` instead of saving weights that are not finite
    (:func:`lvisnb.engine.loop.save_training_checkpoint`).
    """
    setup, progress = setup_training(cfg)
    logs = RunLogs(setup, callback)
    bar = tqdm(
        total=setup.max_iters,
        initial=progress.iteration,
        desc=f"train {setup.preset.name}",
        disable=not (cfg.progress and setup.is_main),
    )
    losses: list[float] = []
    setup.model.train()
    try:
        while progress.iteration < setup.max_iters:
            losses += run_epoch(setup, progress, logs, bar)
    finally:
        bar.close()
        logs.close()
    final = save_training_checkpoint(setup, progress, FINAL)
    if setup.world > 1:
        dist.barrier()
    return TrainResult(setup.run_dir, final, progress.iteration, losses)
