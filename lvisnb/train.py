"""Iteration-based Mask R-CNN training on LVIS: schedule, AMP, checkpoints, resume, DDP.

``train(TrainConfig(...))`` or, for several processes, ``torchrun --nproc_per_node=N -m
lvisnb.train --preset ... --run-dir ...`` (NCCL on GPUs, gloo on the CPU).

Schedule (mmdetection's ``lr_config``, :meth:`lvisnb.model.Preset.lr_factor`): for iteration
``i`` (0-based) the learning rate is ``lr * w(i) * gamma ** (number of steps <= i)`` with linear
warm-up ``w(i) = 1 - (1 - i / warmup_iters) * (1 - warmup_ratio)`` for ``i < warmup_iters``,
else 1. An epoch is one pass of the sampler: with RFS, the repeat-factor expanded training set,
so epochs convert to iterations with its (expected) length
(:attr:`lvisnb.sampler.EpochShardedSampler.expected_epoch_length`): ``sum_i ceil(r(i))`` images
with the preset's ``rfs_rounding="ceil"`` (the mmdetection rows: ``len(ClassBalancedDataset)``),
``sum_i r(i)`` on average with ``"stochastic"`` (detectron2's ``RepeatFactorTrainingSampler``).

Each run directory gets ``train_log.jsonl`` (one JSON line per iteration: iteration, epoch, lr,
every loss, seconds; under torchrun each loss is the mean over the ranks, see
:func:`reduce_losses`), ``config.json`` and ``checkpoints/last.pt`` (every ``checkpoint_every``
iterations and at the end; written to a temporary file, then renamed, so a crash never leaves
a half-written checkpoint) and ``checkpoints/final.pt`` at the end. A checkpoint holds model,
optimizer, scheduler, AMP scaler, iteration, sampler epoch, position in the epoch, RNG states
and the config, and loads with ``torch.load(..., weights_only=True)``. ``resume=True`` continues
from ``last.pt``; on the CPU with a fixed seed the losses equal those of an uninterrupted run.
A non-finite loss raises ``FloatingPointError``; the check reads the rank-averaged loss, so one
rank's NaN stops every rank at the same iteration (none is left waiting in a collective).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from lvisnb import runs
from lvisnb.categories import check_same_version, lvis_version_of
from lvisnb.checkpoint import (
    first_non_finite,
    load_checkpoint,
    save_checkpoint,
)
from lvisnb.data import split_files
from lvisnb.dataset import LVISDetection, collate
from lvisnb.model import Preset, build_model, get_preset
from lvisnb.outputs import remove_stale_temporaries, write_text_atomic
from lvisnb.runs import CHECKPOINT_DIR, FINAL, LAST, LOG_FILE, read_log  # noqa: F401
from lvisnb.sampler import ROUNDINGS, EpochShardedSampler, build_sampler
from lvisnb.transforms import train_transforms

CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "iteration", "epoch",
                   "position", "rng", "config")  # fmt: skip


@dataclass
class TrainConfig:
    """Everything a run needs; ``None`` fields take the preset's value."""

    preset: str = "toy"  # a name from lvisnb.model.PRESETS
    train_ann: str = ""  # LVIS train json; "" -> toy-LVIS train (made if absent)
    image_root: str = ""  # folder images resolve under; "" -> toy-LVIS root / the json's ../..
    run_dir: str = "runs/train"  # logs and checkpoints go here
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1"
    batch_size: int = 2  # images per process per iteration
    max_iters: int | None = None  # None -> preset's epochs converted to iterations
    lr: float | None = None  # None -> preset lr scaled linearly to the total batch
    lr_steps: tuple[int, ...] | None = None  # iterations at which lr *= gamma
    warmup_iters: int | None = None  # linear warm-up length
    sampler: str = "rfs"  # "rfs" (repeat-factor) or "uniform"
    rfs_threshold: float | None = None  # None -> preset's (1e-3 for the seed rows)
    rfs_rounding: str | None = None  # "ceil" | "stochastic"; None -> preset's (seed rows: ceil)
    grad_clip: float | None = None  # max L2 norm of all gradients; None -> preset's
    amp: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU), "bf16", "fp16", "off"
    num_workers: int = 0  # DataLoader workers per process
    checkpoint_every: int = 100  # iterations between checkpoints
    seed: int = 0  # seeds weights, sampler, augmentation
    resume: bool = False  # continue from run_dir/checkpoints/last.pt (which must exist)
    overwrite: bool = False  # delete run_dir's earlier log and checkpoints and start over
    progress: bool = True  # tqdm progress bar
    record_samples: bool = False  # write run_dir/samples_rank{R}.jsonl (images, own losses)
    overrides: dict = field(default_factory=dict)  # extra preset fields, e.g. {"train_scales": ...}

    def __post_init__(self) -> None:
        problems = []
        if self.sampler not in ("rfs", "uniform"):
            problems.append(f"sampler {self.sampler!r} is not 'rfs' or 'uniform'")
        if self.rfs_rounding not in (None, *ROUNDINGS):
            problems.append(f"rfs_rounding {self.rfs_rounding!r} is not one of {ROUNDINGS}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            problems.append(f"amp {self.amp!r} is not one of auto, bf16, fp16, off")
        for name in ("batch_size", "checkpoint_every", "max_iters"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        if not isinstance(self.overrides, dict):
            problems.append(f"overrides must be a mapping of Preset fields, got {self.overrides!r}")
        problems += _number_problems(self)
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))


def _number_problems(cfg: TrainConfig) -> list[str]:
    """Range problems of ``cfg``'s numeric fields (``None`` means the preset's value)."""
    problems = []
    for name, low, strict in (("lr", 0.0, True), ("grad_clip", 0.0, True),
                              ("rfs_threshold", 0.0, False)):  # fmt: skip
        value = getattr(cfg, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{name} must be a number, got {value!r}")
        elif not math.isfinite(value) or value < low or (strict and value == low):
            problems.append(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, "
                            f"got {value!r}")  # fmt: skip
    for name in ("warmup_iters", "seed"):
        value = getattr(cfg, name)
        integer = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and not (integer and value >= 0):
            problems.append(f"{name} must be an integer >= 0, got {value!r}")
    steps = cfg.lr_steps or ()
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps):
        problems.append(f"lr_steps must be integers >= 0, got {cfg.lr_steps!r}")
    return problems


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    iterations: int
    losses: list[float]  # total loss per iteration run in this call (mean over the ranks)


# ----------------------------------------------------------------------------- helpers


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


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; a CUDA device that is absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device {name!r} is not a torch device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use 'cpu'")
    return device


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or device.type != "cuda":
        if amp in ("bf16", "fp16") and device.type != "cuda":
            raise ValueError(f"amp={amp!r} needs a CUDA device, got {device}")
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_lists(value):
    """Tuples -> lists, so that Python's RNG state loads with ``weights_only=True``."""
    if isinstance(value, tuple | list):
        return [_to_lists(v) for v in value]
    return value


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _distributed() -> tuple[int, int, int]:
    """(world_size, rank, local_rank), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if world > 1:
        return world, dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    return 1, 0, 0


def build_train_sampler(
    cfg: TrainConfig, preset: Preset, dataset: object, world: int, rank: int
) -> EpochShardedSampler:
    """``cfg.sampler`` over ``dataset`` with ``preset``'s RFS threshold and rounding.

    ``dataset`` is anything :func:`lvisnb.sampler.build_sampler` takes (an object with
    ``category_sets()``, one entry per dataset index). ``preset.rfs_threshold=None`` (RFS off)
    gives the uniform sampler whatever ``cfg.sampler`` says. Each of the ``world`` ranks keeps
    its own shard ``rank`` of the same seeded epoch.
    """
    kind = "uniform" if preset.rfs_threshold is None else cfg.sampler
    threshold = 0.0 if preset.rfs_threshold is None else preset.rfs_threshold
    return build_sampler(kind, dataset, threshold, cfg.seed, world, rank, preset.rfs_rounding)


def resolve_schedule(
    preset: Preset,
    sampler: EpochShardedSampler,
    total_batch: int,
    max_iters: int | None = None,
    lr_steps: tuple[int, ...] | None = None,
) -> tuple[int, tuple[int, ...], int]:
    """``(max_iters, lr_steps, epoch_images)`` of a run: iterations, iterations, images.

    ``epoch_images`` is one epoch over all ranks, ``round(sampler.expected_epoch_length *
    num_replicas)``: ``sum_i ceil(r(i))`` exactly with ``rounding="ceil"`` (mmdetection's
    ``len(ClassBalancedDataset)``), ``round(sum_i r(i))`` with ``"stochastic"``.
    :meth:`Preset.schedule_iters` converts the preset's epochs with it at ``total_batch`` images
    per iteration (an iteration-based preset keeps its own). ``max_iters`` shortens or lengthens
    the run with the steps at the same fractions; ``lr_steps`` replaces the steps.
    """
    epoch_images = max(1, round(sampler.expected_epoch_length * sampler.num_replicas))
    iters, steps = preset.schedule_iters(epoch_images, total_batch)
    if max_iters is not None:
        steps = tuple(round(s * max_iters / iters) for s in steps)
        iters = max_iters
    if lr_steps is not None:
        steps = tuple(lr_steps)
    return iters, steps, epoch_images


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
    kept = "no checkpoint was written before" if last_good is None else (
        f"{last} (iteration {last_good}) was kept"
    )  # fmt: skip
    return FloatingPointError(
        f"the weights after iteration {iteration} hold NaN or infinite values (the update "
        f"diverged; lower the learning rate or clip gradients): {path} not written, {kept}"
    )


def _check_preset_version(preset: Preset, dataset: LVISDetection, ann: Path) -> str | None:
    """The LVIS version of the training file (``None`` when not a whole LVIS category set,
    e.g. toy-LVIS); a whole set of another version than ``preset.dataset`` is a ``ValueError``
    naming both."""
    categories = dataset.lvis.dataset["categories"]
    try:
        check_same_version(preset.dataset, categories, f"{ann}")
    except ValueError as error:
        raise ValueError(f"{error}; preset {preset.name} trains LVIS {preset.dataset}") from None
    return lvis_version_of(categories)


def _check_same_experiment(path: Path, saved: dict, current: dict) -> None:
    """``ValueError`` naming every experiment field (:data:`lvisnb.runs.EXPERIMENT_KEYS`) the
    resumed config would change against the checkpoint's."""
    changes = runs.config_differences(saved, current)
    if changes:
        raise ValueError(
            f"resume would change the experiment saved in {path}: {'; '.join(changes)}. "
            "Resume with the same settings, or start a new run (another run_dir, or --overwrite)"
        )


# ----------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, callback: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``cfg.preset`` on ``cfg.train_ann``; see the module docstring for what is written.

    ``callback``, if given, is called on rank 0 with each iteration's log record (a live plot).
    """
    world, rank, local_rank = _distributed()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    # TrainConfig's own preset fields, then ``overrides``: one Preset holds what is trained
    named = ("rfs_threshold", "rfs_rounding", "grad_clip", "warmup_iters")
    given = {k: getattr(cfg, k) for k in named if getattr(cfg, k) is not None}
    preset = get_preset(cfg.preset, **{**given, **cfg.overrides})
    run_dir = Path(cfg.run_dir)
    ckpt_dir = run_dir / CHECKPOINT_DIR
    is_main = rank == 0
    runs.prepare_start(run_dir, cfg.resume, cfg.overwrite)  # every rank: all refuse together

    random.seed(cfg.seed)  # numpy's global RNG is not used in training: nothing to seed there
    torch.manual_seed(cfg.seed)

    ann, image_root = split_files(cfg.train_ann, cfg.image_root, "train")
    dataset = LVISDetection(
        ann,
        image_root,
        transforms=train_transforms(preset.train_scales, preset.max_size, preset.flip_prob),
        skip_empty=True,
    )
    lvis_version = _check_preset_version(preset, dataset, ann)
    sampler = build_train_sampler(cfg, preset, dataset, world, rank)
    if len(sampler) < cfg.batch_size:
        raise ValueError(
            f"{ann}: an epoch has {len(sampler)} images per process, fewer than batch_size "
            f"{cfg.batch_size}; training would never take a step"
        )

    model = build_model(preset, num_classes=dataset.mapping.num_classes).to(device)
    # same initial weights on every rank (DDP also broadcasts them); from here on each rank
    # draws its own augmentations and RoI samples
    random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)
    total_batch = cfg.batch_size * world
    lr = cfg.lr if cfg.lr is not None else preset.scaled_lr(total_batch)
    max_iters, steps, epoch_images = resolve_schedule(
        preset, sampler, total_batch, cfg.max_iters, cfg.lr_steps
    )

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=lr, momentum=preset.momentum, weight_decay=preset.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda i: preset.lr_factor(i, steps),
    )
    amp_dtype = _amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    config_record = {
        "train": asdict(cfg),
        "preset": asdict(preset),
        "resolved": {
            "train_ann": str(ann),
            "image_root": str(image_root),
            "lr": lr,
            "max_iters": max_iters,
            "lr_steps": list(steps),
            "warmup_iters": preset.warmup_iters,
            "total_batch": total_batch,
            "world_size": world,
            "device": str(device),
            "amp": str(amp_dtype),
            "sampler": "uniform" if preset.rfs_threshold is None else cfg.sampler,
            "rfs_threshold": preset.rfs_threshold,
            "rfs_rounding": preset.rfs_rounding,
            "epoch_images": epoch_images,
            "category_ids": list(dataset.mapping.category_ids),
            "lvis_version": lvis_version,
        },
    }
    config_plain = json.loads(json.dumps(config_record, default=str))  # weights_only-loadable
    iteration, epoch, position = 0, 0, 0
    last_good = None  # iteration of the newest checkpoint written (or resumed from)
    if cfg.resume:
        state = load_checkpoint(ckpt_dir / LAST, required=CHECKPOINT_KEYS)
        _check_same_experiment(ckpt_dir / LAST, state["config"], config_plain)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        iteration, epoch, position = state["iteration"], state["epoch"], state["position"]
        last_good = iteration
        _set_rng_state(state["rng"][min(rank, len(state["rng"]) - 1)])
    run_dir.mkdir(parents=True, exist_ok=True)  # every rank: each writes its samples file
    if is_main:
        if cfg.overwrite:  # only now: the data, the model and the schedule were all built
            runs.clear_run(run_dir)
        write_text_atomic(
            run_dir / runs.CONFIG_FILE, json.dumps(config_record, indent=2, default=str)
        )
        runs.truncate_log(run_dir, iteration)
        remove_stale_temporaries(ckpt_dir)

    def checkpoint(name: str) -> Path:
        nonlocal last_good
        payload = {
            "model": _unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "iteration": iteration,
            "epoch": epoch,
            "position": position,
            "rng": None,
            "config": config_plain,
            "category_ids": list(dataset.mapping.category_ids),
        }
        # every rank checks (DDP keeps the weights equal), so all stop together
        if first_non_finite(payload) is not None:
            raise _broken_weights(iteration, ckpt_dir / name, last_good, ckpt_dir / LAST)
        payload["rng"] = _gather_rng(world)
        if is_main:
            save_checkpoint(ckpt_dir / name, payload)
        last_good = iteration
        return ckpt_dir / name

    log = open(run_dir / LOG_FILE, "a") if is_main else None  # noqa: SIM115
    samples_log = (
        open(run_dir / f"samples_rank{rank}.jsonl", "a") if cfg.record_samples else None  # noqa: SIM115
    )
    losses_seen: list[float] = []
    bar = tqdm(
        total=max_iters,
        initial=iteration,
        desc=f"train {preset.name}",
        disable=not (cfg.progress and is_main),
    )
    model.train()
    try:
        while iteration < max_iters:
            sampler.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                batch_size=cfg.batch_size,
                sampler=_SkipFirst(sampler, position * cfg.batch_size),
                collate_fn=collate,
                num_workers=cfg.num_workers,
                drop_last=True,
                generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
                persistent_workers=False,
            )
            tic = time.perf_counter()
            for images, targets in loader:
                data_time = time.perf_counter() - tic
                images = [im.to(device, non_blocking=True) for im in images]
                targets = [_to_device(t, device) for t in targets]
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss_dict = model(images, targets)
                total = sum(loss_dict.values())
                mean, own = reduce_losses({"loss": total, **loss_dict}, world)
                loss_value = mean["loss"]  # every rank holds the same value
                if not math.isfinite(loss_value):  # iteration + 1: the log's number
                    raise _non_finite(
                        iteration + 1, mean, own, rank, world, _last_note(last_good, ckpt_dir)
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if preset.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, preset.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                current_lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
                iteration += 1
                position += 1
                losses_seen.append(loss_value)
                if samples_log is not None:
                    ids = [int(t["image_id"]) for t in targets]
                    line = {"iter": iteration, "image_ids": ids, "losses": own}
                    samples_log.write(json.dumps(line) + "\n")
                if log is not None:
                    record = {
                        "iter": iteration,
                        "epoch": epoch,
                        "lr": current_lr,
                        "loss": loss_value,
                        **{k: mean[k] for k in loss_dict},
                        "time": time.perf_counter() - tic,
                        "data_time": data_time,
                    }
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    if callback is not None:
                        callback(record)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{current_lr:.4f}")
                if iteration % cfg.checkpoint_every == 0 or iteration == max_iters:
                    checkpoint(LAST)
                if iteration >= max_iters:
                    break
                tic = time.perf_counter()
            else:
                epoch, position = epoch + 1, 0
    finally:
        bar.close()
        for handle in (log, samples_log):
            if handle is not None:
                handle.close()
    final = checkpoint(FINAL)
    if world > 1:
        dist.barrier()
    return TrainResult(run_dir, final, iteration, losses_seen)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _to_device(target: dict, device: torch.device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in target.items()
    }


def _gather_rng(world: int) -> list[dict]:
    """Every rank's RNG state, rank order (rank 0 writes them all into the checkpoint)."""
    mine = _rng_state()
    if world == 1:
        return [mine]
    states: list = [None] * world
    dist.all_gather_object(states, mine)
    return states


# ----------------------------------------------------------------------------- command line


def _yaml_mapping(text: str) -> dict:
    """``--overrides`` text -> a dict of Preset fields (YAML, e.g. ``{train_scales: [480]}``)."""
    import yaml

    value = yaml.safe_load(text)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"--overrides must be a mapping such as '{{lr: 0.01}}', got {text!r}")
    return value


def _cli_registry():
    """tyro rules for the one field argparse types cannot express: ``overrides`` (YAML)."""
    import json

    from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec

    registry = ConstructorRegistry()

    @registry.primitive_rule
    def _mapping(type_info):
        if type_info.type is not dict:
            return None
        return PrimitiveConstructorSpec(
            nargs=1,
            metavar="YAML",
            instance_from_str=lambda args: _yaml_mapping(args[0]),
            is_instance=lambda value: isinstance(value, dict),
            str_from_instance=lambda value: [json.dumps(value)],
        )

    return registry


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from ``--field value`` flags, typed by the dataclass (tyro): each
    field's comment is its ``--help`` text; ``--lr 1e-3`` is a float, ``--run-dir on`` a string,
    ``--max-iters None`` the preset's value, ``--lr-steps 3 4`` a tuple, booleans are flags
    (``--resume`` / ``--no-progress``), ``--overrides`` YAML (``'{train_scales: [480, 512]}'``).
    A malformed value exits with status 2 and a message naming the flag."""
    import tyro

    return tyro.cli(
        TrainConfig, args=argv, prog="lvisnb train", registry=_cli_registry(),
        description=__doc__.splitlines()[0],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    result = train(config_from_args(argv))  # a non-finite loss raises FloatingPointError
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {result.checkpoint} ({result.iterations} iterations)")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
