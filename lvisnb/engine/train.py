"""Iteration-based Mask R-CNN training on LVIS: schedule, AMP, checkpoints, resume, DDP.

``train(TrainConfig(...))`` or, for several processes, ``torchrun --nproc_per_node=N -m
lvisnb.cli train --preset ... --run-dir ...`` (NCCL on GPUs, gloo on the CPU). The pieces, as
torchvision's ``references/detection``: :func:`setup_training` builds a :class:`TrainSetup`
(data, model, optimiser, scheduler, AMP) and the :class:`Progress` to start from,
:func:`train_step` is one iteration, :func:`run_epoch` one pass of the sampler,
:func:`save_training_checkpoint` writes ``last.pt`` / ``final.pt``.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from lvisnb.annotations.categories import check_same_version, lvis_version_of
from lvisnb.annotations.images import split_files
from lvisnb.data.dataset import LVISDetection, collate
from lvisnb.data.sampler import ROUNDINGS, EpochShardedSampler, build_sampler
from lvisnb.data.transforms import train_transforms
from lvisnb.engine import run_dir as runs
from lvisnb.engine.run_dir import CHECKPOINT_DIR, FINAL, LAST, LOG_FILE, read_log  # noqa: F401
from lvisnb.engine.schedule import build_scheduler, resolve_schedule, restore_scheduler, scaled_lr
from lvisnb.files import remove_stale_temporaries, write_text_atomic
from lvisnb.model.builder import AMP_MODES, Preset, autocast_dtype, build_model, get_preset
from lvisnb.model.checkpoint import (
    first_non_finite,
    load_checkpoint,
    save_checkpoint,
)

CHECKPOINT_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "iteration",
    "epoch",
    "position",
    "rng",
    "config",
)


@dataclass
class TrainConfig:
    """Everything a run needs; ``None`` fields take the preset's value."""

    preset: str = "toy"  # a name from lvisnb.model.builder.PRESETS
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
        if self.amp not in AMP_MODES:
            problems.append(f"amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
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
    bounds = {
        "lr": (0.0, True, math.inf),
        "grad_clip": (0.0, True, math.inf),
        "rfs_threshold": (0.0, False, 1.0),
    }  # (low, low excluded, high)
    for name, (low, strict, high) in bounds.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{name} must be a number, got {value!r}")
        elif not math.isfinite(value) or value < low or (strict and value == low) or value > high:
            close = ")" if high == math.inf else "]"
            interval = f"{'(' if strict else '['}{low:g}, {high:g}{close}"
            problems.append(f"{name} must be a finite number in {interval}, got {value!r}")
    for name in ("warmup_iters", "seed"):
        value = getattr(cfg, name)
        integer = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and not (integer and value >= 0):
            problems.append(f"{name} must be an integer >= 0, got {value!r}")
    steps = cfg.lr_steps or ()
    integers = all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps)
    if not integers or list(steps) != sorted(set(steps)):
        problems.append(f"lr_steps must be increasing integers >= 0, got {cfg.lr_steps!r}")
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

    ``dataset`` is anything :func:`lvisnb.data.sampler.build_sampler` takes (an object with
    ``category_sets()``, one entry per dataset index). ``preset.rfs_threshold=None`` (RFS off)
    gives the uniform sampler whatever ``cfg.sampler`` says. Each of the ``world`` ranks keeps
    its own shard ``rank`` of the same seeded epoch.
    """
    kind = "uniform" if preset.rfs_threshold is None else cfg.sampler
    threshold = 0.0 if preset.rfs_threshold is None else preset.rfs_threshold
    return build_sampler(kind, dataset, threshold, cfg.seed, world, rank, preset.rfs_rounding)


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
    """``ValueError`` naming every experiment field (:data:`lvisnb.engine.run_dir.EXPERIMENT_KEYS`)
    the resumed config would change against the checkpoint's."""
    changes = runs.config_differences(saved, current)
    if changes:
        raise ValueError(
            f"resume would change the experiment saved in {path}: {'; '.join(changes)}. "
            "Resume with the same settings, or start a new run (another run_dir, or --overwrite)"
        )


# ----------------------------------------------------------------------------- setup


@dataclass
class TrainSetup:
    """What :func:`setup_training` builds for a run; the loop and :func:`train_step` read it."""

    cfg: TrainConfig
    preset: Preset  # cfg.preset with cfg's preset fields and overrides applied
    device: torch.device
    world: int  # processes (torchrun's WORLD_SIZE; 1 without torchrun)
    rank: int  # this process's rank, 0..world-1
    dataset: LVISDetection  # training transforms, images without annotations skipped
    sampler: EpochShardedSampler  # this rank's shard of each seeded epoch
    model: torch.nn.Module  # Mask R-CNN, DistributedDataParallel-wrapped when world > 1
    optimizer: torch.optim.Optimizer  # SGD over the parameters that require grad
    scheduler: torch.optim.lr_scheduler.LRScheduler  # lvisnb.engine.schedule.build_scheduler
    scaler: torch.amp.GradScaler  # enabled for fp16 autocast only
    amp_dtype: torch.dtype | None  # autocast dtype; None: float32
    max_iters: int  # iterations of the whole run
    config: dict  # config.json's record in plain JSON values: "train", "preset", "resolved"

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir)

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint, restored by ``resume``."""

    iteration: int = 0  # iterations done (the last train_log.jsonl line's "iter")
    epoch: int = 0  # the sampler epoch being run
    position: int = 0  # batches of that epoch already run
    last_good: int | None = None  # iteration of the newest checkpoint written or resumed from


def setup_training(cfg: TrainConfig) -> tuple[TrainSetup, Progress]:
    """Build what ``cfg`` asks for, load ``last.pt`` when ``cfg.resume``, write ``config.json``.

    The order is fixed, so that a seed gives the same run: process group and device, preset,
    the run-directory check (every rank refuses together), seeding with ``cfg.seed``, data and
    sampler, the model (the same initial weights on every rank; DDP also broadcasts them; the
    federated loss gets the training set's per-class image counts, :func:`class_image_counts`),
    reseeding with ``cfg.seed + rank`` (each rank draws its own augmentations and RoI samples),
    optimiser, scheduler, AMP, DDP, then the checkpoint. Raises ``ValueError`` for a training
    file of another LVIS version than the preset, an epoch shorter than one batch, or a resume
    that would change the experiment; ``FileExistsError`` / ``FileNotFoundError`` from
    :func:`lvisnb.engine.run_dir.prepare_start`; :class:`lvisnb.model.checkpoint.CheckpointError`
    for an unusable ``last.pt``.
    """
    world, rank, device = _placement(cfg.device)
    preset = _run_preset(cfg)
    runs.prepare_start(Path(cfg.run_dir), cfg.resume, cfg.overwrite)  # every rank
    random.seed(cfg.seed)  # numpy's global RNG is not used in training: nothing to seed there
    torch.manual_seed(cfg.seed)
    dataset, data = _training_data(cfg, preset)
    sampler = build_train_sampler(cfg, preset, dataset, world, rank)
    if len(sampler) < cfg.batch_size:
        raise ValueError(
            f"{data['train_ann']}: an epoch has {len(sampler)} images per process, fewer than "
            f"batch_size {cfg.batch_size}; training would never take a step"
        )
    counts = class_image_counts(dataset) if preset.cls_loss == "federated" else None
    model = build_model(preset, dataset.mapping.num_classes, class_image_counts=counts).to(device)
    random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)
    amp_dtype = autocast_dtype(cfg.amp, device)
    resolved = _resolved(cfg, preset, sampler, world, device, amp_dtype, data)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=resolved["lr"], momentum=preset.momentum, weight_decay=preset.weight_decay
    )
    scheduler = build_scheduler(optimizer, preset, resolved["lr_steps"])
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    record = {"train": asdict(cfg), "preset": asdict(preset), "resolved": resolved}
    config = json.loads(json.dumps(record, default=str))  # plain: loads with weights_only
    setup = TrainSetup(
        cfg,
        preset,
        device,
        world,
        rank,
        dataset,
        sampler,
        model,
        optimizer,
        scheduler,
        scaler,
        amp_dtype,
        resolved["max_iters"],
        config,
    )
    progress = _resume(setup) if cfg.resume else Progress()
    _prepare_run_dir(setup, progress.iteration)
    return setup, progress


def class_image_counts(dataset: LVISDetection) -> np.ndarray:
    """Training images annotated with each class, ``(K,)`` int64 in label order ``1..K``.

    Counted from ``dataset``'s annotations (each image counts once per category it holds),
    not read from the file's ``image_count`` field; the federated loss draws its negatives
    with these counts (:func:`lvisnb.model.losses.federated_class_weights`)."""
    ids = [c for categories in dataset.category_sets() for c in categories]
    labels = dataset.mapping.to_labels(ids).numpy()
    return np.bincount(labels - 1, minlength=dataset.mapping.num_classes)


def _placement(device: str) -> tuple[int, int, torch.device]:
    """``(world_size, rank, device)``; under torchrun each rank takes its local GPU."""
    world, rank, local_rank = _distributed()
    resolved = resolve_device(device)
    if resolved.type == "cuda" and world > 1:
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    return world, rank, resolved


def _run_preset(cfg: TrainConfig) -> Preset:
    """``cfg.preset`` with TrainConfig's own preset fields, then ``cfg.overrides``, applied:
    one Preset holds what is trained. ``ValueError`` names an unknown preset or field."""
    named = ("rfs_threshold", "rfs_rounding", "grad_clip", "warmup_iters")
    given = {k: getattr(cfg, k) for k in named if getattr(cfg, k) is not None}
    return get_preset(cfg.preset, **{**given, **cfg.overrides})


def _training_data(cfg: TrainConfig, preset: Preset) -> tuple[LVISDetection, dict]:
    """The training set (``preset``'s train transforms, images without annotations skipped;
    toy-LVIS, made if absent, when ``cfg.train_ann`` is "") and what ``config.json`` records
    of it: ``train_ann``, ``image_root``, ``category_ids``, ``lvis_version``."""
    ann, image_root = split_files(cfg.train_ann, cfg.image_root, "train")
    transforms = train_transforms(preset.train_scales, preset.max_size, preset.flip_prob)
    dataset = LVISDetection(ann, image_root, transforms=transforms, skip_empty=True)
    version = _check_preset_version(preset, dataset, ann)
    ids = list(dataset.mapping.category_ids)
    data = {"train_ann": str(ann), "image_root": str(image_root)}
    return dataset, {**data, "category_ids": ids, "lvis_version": version}


def _resolved(
    cfg: TrainConfig,
    preset: Preset,
    sampler: EpochShardedSampler,
    world: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    data: dict,
) -> dict:
    """``config.json``'s ``"resolved"`` section: the values the run uses where ``cfg`` says
    ``None`` or ``"auto"`` (lr per iteration, iterations, images), and ``data``'s records."""
    total_batch = cfg.batch_size * world
    max_iters, steps, epoch_images = resolve_schedule(
        preset, sampler, total_batch, cfg.max_iters, cfg.lr_steps
    )
    return {
        "train_ann": data["train_ann"],
        "image_root": data["image_root"],
        "lr": cfg.lr if cfg.lr is not None else scaled_lr(preset, total_batch),
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
        "category_ids": data["category_ids"],
        "lvis_version": data["lvis_version"],
    }


def _resume(setup: TrainSetup) -> Progress:
    """Load ``last.pt`` into ``setup`` (model, optimiser, scheduler, scaler, this rank's RNG
    state); its progress. ``ValueError`` when the saved experiment differs from ``setup``'s."""
    path = setup.ckpt_dir / LAST
    state = load_checkpoint(path, required=CHECKPOINT_KEYS)
    _check_same_experiment(path, state["config"], setup.config)
    _unwrap(setup.model).load_state_dict(state["model"])
    setup.optimizer.load_state_dict(state["optimizer"])  # before the scheduler: it holds the lr
    restore_scheduler(setup.scheduler, state["scheduler"], state["iteration"])
    setup.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"][min(setup.rank, len(state["rng"]) - 1)])
    iteration = state["iteration"]
    return Progress(iteration, state["epoch"], state["position"], last_good=iteration)


def _prepare_run_dir(setup: TrainSetup, iteration: int) -> None:
    """Make the run directory (every rank writes its own samples file); on rank 0 delete an
    earlier run when ``overwrite`` (only now: data, model and schedule were all built), write
    ``config.json``, cut the log back to ``iteration`` and remove stale temporary files."""
    setup.run_dir.mkdir(parents=True, exist_ok=True)
    if not setup.is_main:
        return
    if setup.cfg.overwrite:
        runs.clear_run(setup.run_dir)
    text = json.dumps(setup.config, indent=2, default=str)
    write_text_atomic(setup.run_dir / runs.CONFIG_FILE, text)
    runs.truncate_log(setup.run_dir, iteration)
    remove_stale_temporaries(setup.ckpt_dir)


# ----------------------------------------------------------------------------- one iteration


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


# ----------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, callback: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``cfg.preset`` on ``cfg.train_ann``; see the module docstring for what is written.

    ``callback``, if given, is called on rank 0 with each iteration's log record (a live plot);
    an exception it raises stops the run (``last.pt`` stays the newest checkpoint). Raises
    what :func:`setup_training` and :func:`train_step` raise, and ``FloatingPointError``
    instead of saving weights that are not finite (:func:`save_training_checkpoint`).
    """
    setup, progress = setup_training(cfg)
    logs = _RunLogs(setup, callback)
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


def run_epoch(setup: TrainSetup, progress: Progress, logs: _RunLogs, bar: tqdm) -> list[float]:
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


class _RunLogs:
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


# ----------------------------------------------------------------------------- checkpoints


def save_training_checkpoint(setup: TrainSetup, progress: Progress, name: str) -> Path:
    """Write ``checkpoints/<name>`` (``last.pt`` / ``final.pt``) of ``setup`` at ``progress``;
    returns its path and records ``progress.last_good``.

    The payload (:data:`CHECKPOINT_KEYS` and ``category_ids``) holds model, optimiser,
    scheduler and scaler state, the progress counters, every rank's RNG state and the config.
    Every rank checks the weights (DDP keeps them equal, so all stop together) and raises
    ``FloatingPointError`` naming the last good checkpoint when one is not finite; rank 0 then
    writes the file atomically (:func:`lvisnb.model.checkpoint.save_checkpoint`; ``OSError`` when
    the write fails, the previous file kept).
    """
    path = setup.ckpt_dir / name
    payload = {
        "model": _unwrap(setup.model).state_dict(),
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
    payload["rng"] = _gather_rng(setup.world)  # a collective: every rank takes part
    if setup.is_main:
        save_checkpoint(path, payload)
    progress.last_good = progress.iteration
    return path


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
