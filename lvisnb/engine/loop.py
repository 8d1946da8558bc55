"""The training loop's pieces: one iteration (:func:`train_step`), one epoch
(:func:`run_epoch`), the logs (:class:`RunLogs`) and the checkpoints
(:func:`save_training_checkpoint`) of a run that :func:`lvisnb.engine.setup.setup_training`
set up; :func:`lvisnb.engine.trainer.train` strings them together.

Losses are averaged over the ranks before anything reads them (:func:`reduce_losses`), so a
non-finite loss stops every rank at the same iteration (``FloatingPointError``), and weights
that are not finite are never saved as a checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from lvisnb.data.dataset import collate
from lvisnb.engine.run_dir import LAST, LOG_FILE
from lvisnb.engine.run_state import Progress, TrainSetup, gather_rng_states, unwrap_model
from lvisnb.model.checkpoint import first_non_finite, save_checkpoint


def train_step(
    setup: TrainSetup, progress: Progress, images: list, targets: list
) -> tuple[dict[str, float], dict[str, float]]:
    """One iteration on one batch: forward, losses averaged over the ranks, backward, step.

    ``images``: float ``(3, H, W)`` tensors in ``[0, 1]``; ``targets``: dicts with ``boxes``
    ``(N, 4)`` float XYXY pixels, ``labels`` ``(N,)`` int64 in ``1..K``, ``masks`` ``(N, H,
    W)`` uint8 (:class:`lvisnb.data.dataset.LVISDetection`); both are moved to ``setup.device``.
    The forward pass runs under autocast with ``setup.amp_dtype``. Before any update, a
    non-finite rank-averaged total loss raises ``FloatingPointError`` on every rank (all hold
    the same mean, so all stop at this iteration). Then: zero grads, backward of the (fp16:
    scaled) total, clipping of the global gradient L2 norm to ``preset.grad_clip`` when set
    (after unscaling), optimiser step. The lr scheduler is stepped by the caller.

    Returns ``(mean, own)``: floats for ``"loss"`` (the total) and each of the model's loss
    terms; ``mean`` over the ranks in that order, ``own`` this rank's, sorted by name.
    """
    device, amp_dtype = setup.device, setup.amp_dtype
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [_to_device(target, device) for target in targets]
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss_dict = setup.model(images, targets)
    total = sum(loss_dict.values())
    mean, own = reduce_losses({"loss": total, **loss_dict}, setup.world)
    if not math.isfinite(mean["loss"]):  # iteration + 1: the log's number
        last = _last_note(progress.last_good, setup.ckpt_dir)
        raise _non_finite(progress.iteration + 1, mean, own, setup.rank, setup.world, last)
    optimizer, scaler = setup.optimizer, setup.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    if setup.preset.grad_clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, setup.preset.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": mean["loss"], **{name: mean[name] for name in loss_dict}}, own


def run_epoch(setup: TrainSetup, progress: Progress, logs: RunLogs, bar: tqdm) -> list[float]:
    """Run epoch ``progress.epoch`` from batch ``progress.position`` on, until it ends (then
    the next epoch is due) or the run reaches ``max_iters``: :func:`train_step`, the
    scheduler's step, a log line, and ``last.pt`` every ``checkpoint_every`` iterations and at
    ``max_iters``. Returns each iteration's rank-averaged total loss."""
    losses = []
    tic = time.perf_counter()
    for images, targets in _epoch_loader(setup, progress):
        data_time = time.perf_counter() - tic
        lr = setup.optimizer.param_groups[0]["lr"]  # this iteration's; the scheduler moves it
        mean, own = train_step(setup, progress, images, targets)
        setup.scheduler.step()
        progress.iteration += 1
        progress.position += 1
        losses.append(mean["loss"])
        logs.write(progress, lr, mean, own, targets, data_time, time.perf_counter() - tic)
        bar.update(1)
        bar.set_postfix(loss=f"{mean['loss']:.3f}", lr=f"{lr:.4f}")
        done = progress.iteration >= setup.max_iters
        if progress.iteration % setup.cfg.checkpoint_every == 0 or done:
            save_training_checkpoint(setup, progress, LAST)
        if done:
            return losses
        tic = time.perf_counter()
    progress.epoch, progress.position = progress.epoch + 1, 0
    return losses


def _epoch_loader(setup: TrainSetup, progress: Progress) -> DataLoader:
    """Batches of epoch ``progress.epoch`` after its first ``progress.position`` (resuming
    inside an epoch); ``drop_last``, and a generator seeded by the seed and the epoch."""
    cfg = setup.cfg
    setup.sampler.set_epoch(progress.epoch)
    return DataLoader(
        setup.dataset,
        batch_size=cfg.batch_size,
        sampler=_SkipFirst(setup.sampler, progress.position * cfg.batch_size),
        collate_fn=collate,
        num_workers=cfg.num_workers,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed * 100_003 + progress.epoch),
        persistent_workers=False,
    )


class _SkipFirst(Sampler[int]):
    """The indices of ``sampler`` after the first ``skip`` (resuming inside an epoch)."""

    def __init__(self, sampler: Sampler[int], skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        for position, index in enumerate(self.sampler):
            if position >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


class RunLogs:
    """``train_log.jsonl`` (rank 0; each line also goes to ``callback``) and, with
    ``record_samples``, ``samples_rank{R}.jsonl`` (image ids and this rank's own losses)."""

    def __init__(self, setup: TrainSetup, callback: Callable[[dict], None] | None):
        run_dir, rank = setup.run_dir, setup.rank
        self.log = open(run_dir / LOG_FILE, "a") if setup.is_main else None  # noqa: SIM115
        samples = run_dir / f"samples_rank{rank}.jsonl"
        self.samples = open(samples, "a") if setup.cfg.record_samples else None  # noqa: SIM115
        self.callback = callback

    def write(
        self,
        progress: Progress,
        lr: float,
        mean: dict,
        own: dict,
        targets: list,
        data_time: float,
        seconds: float,
    ) -> None:
        """Append iteration ``progress.iteration``'s lines (seconds: data and whole step)."""
        if self.samples is not None:
            ids = [int(t["image_id"]) for t in targets]
            line = {"iter": progress.iteration, "image_ids": ids, "losses": own}
            self.samples.write(json.dumps(line) + "\n")
        if self.log is None:
            return
        record = {
            "iter": progress.iteration,
            "epoch": progress.epoch,
            "lr": lr,
            **mean,
            "time": seconds,
            "data_time": data_time,
        }
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        if self.callback is not None:
            self.callback(record)

    def close(self) -> None:
        for handle in (self.log, self.samples):
            if handle is not None:
                handle.close()


def save_training_checkpoint(setup: TrainSetup, progress: Progress, name: str) -> Path:
    """Write ``checkpoints/<name>`` (``last.pt`` / ``final.pt``) of ``setup`` at ``progress``;
    returns its path and records ``progress.last_good``.

    The payload (:data:`lvisnb.engine.config.CHECKPOINT_KEYS` and ``category_ids``) holds
    model, optimiser, scheduler and scaler state, the progress counters, every rank's RNG state
    and the config.
    Every rank checks the weights (DDP keeps them equal, so all stop together) and raises
    ``FloatingPointError`` naming the last good checkpoint when one is not finite; rank 0 then
    writes the file atomically (:func:`lvisnb.model.checkpoint.save_checkpoint`; ``OSError`` when
    the write fails, the previous file kept).
    """
    path = setup.ckpt_dir / name
    payload = {
        "model": unwrap_model(setup.model).state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "scheduler": setup.scheduler.state_dict(),
        "scaler": setup.scaler.state_dict(),
        "iteration": progress.iteration,
        "epoch": progress.epoch,
        "position": progress.position,
        "rng": None,
        "config": setup.config,
        "category_ids": list(setup.dataset.mapping.category_ids),
    }
    if first_non_finite(payload) is not None:
        raise _broken_weights(progress.iteration, path, progress.last_good, setup.ckpt_dir / LAST)
    payload["rng"] = gather_rng_states(setup.world)  # a collective: every rank takes part
    if setup.is_main:
        save_checkpoint(path, payload)
    progress.last_good = progress.iteration
    return path


def reduce_losses(
    losses: dict[str, torch.Tensor], world: int
) -> tuple[dict[str, float], dict[str, float]]:
    """``(mean over the ranks, this rank's own value)`` of each scalar loss, as floats.

    As ``reduce_dict`` in torchvision's ``references/detection/utils.py``: the detached losses,
    in sorted-name order (the same on every rank), are stacked into one float32 tensor of shape
    ``(len(losses),)`` on the losses' device, summed over the ranks by a single
    ``dist.all_reduce`` and divided by ``world``. Every rank gets the same means, so a check on
    them decides the same everywhere. ``world == 1`` makes no collective call.
    """
    names = sorted(losses)
    own = torch.stack([losses[name].detach().float() for name in names])
    mean = own.clone()
    if world > 1:
        dist.all_reduce(mean)  # sum over the ranks, in place
        mean /= world
    means, owns = torch.stack([mean, own]).tolist()  # one device -> host copy
    return dict(zip(names, means, strict=True)), dict(zip(names, owns, strict=True))


def _non_finite(
    iteration: int, mean: dict, own: dict, rank: int, world: int, last: str
) -> FloatingPointError:
    """The error every rank raises when the rank-averaged loss of ``iteration`` (numbered as
    in ``train_log.jsonl``) is not finite."""
    ranks = "" if world == 1 else f" (mean over {world} ranks; rank {rank}'s own: {own})"
    return FloatingPointError(
        f"non-finite loss at iteration {iteration}: {mean}{ranks}; training stopped; {last}"
    )


def _last_note(last_good: int | None, ckpt_dir: Path) -> str:
    if last_good is None:
        return "no checkpoint was written yet"
    return f"the last good checkpoint is {ckpt_dir / LAST} (iteration {last_good})"


def _broken_weights(
    iteration: int, path: Path, last_good: int | None, last: Path
) -> FloatingPointError:
    """The error raised instead of writing a checkpoint whose weights are not finite."""
    kept = (
        "no checkpoint was written before"
        if last_good is None
        else (f"{last} (iteration {last_good}) was kept")
    )
    return FloatingPointError(
        f"the weights after iteration {iteration} hold NaN or infinite values (the update "
        f"diverged; lower the learning rate or clip gradients): {path} not written, {kept}"
    )


def _to_device(target: dict, device: torch.device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in target.items()
    }
