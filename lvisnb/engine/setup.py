"""Setting up a training run: process group and device, preset, data and sampler, model,
optimiser, scheduler, AMP, DDP, resuming from ``last.pt`` and writing ``config.json``.

:func:`setup_training` builds a :class:`~lvisnb.engine.run_state.TrainSetup` and the
:class:`~lvisnb.engine.run_state.Progress` to start from, in a fixed order so that a seed gives
the same run; :mod:`lvisnb.engine.loop` runs it.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from lvisnb.annotations.categories import (
    category_set_pairs,
    check_same_version,
    images_per_category,
    lvis_version_of,
)
from lvisnb.annotations.images import split_files
from lvisnb.data.dataset import LVISDetection
from lvisnb.data.sampler import EpochShardedSampler, build_sampler
from lvisnb.data.transforms import train_transforms
from lvisnb.engine import run_dir as runs
from lvisnb.engine.config import CHECKPOINT_KEYS, TrainConfig, knob_overrides, run_preset
from lvisnb.engine.device import autocast_dtype, resolve_device
from lvisnb.engine.run_dir import LAST
from lvisnb.engine.run_state import Progress, TrainSetup, set_rng_state, unwrap_model
from lvisnb.engine.schedule import build_scheduler, resolve_schedule, restore_scheduler, scaled_lr
from lvisnb.files import remove_stale_temporaries, write_text_atomic
from lvisnb.model.builder import build_model
from lvisnb.model.checkpoint import load_checkpoint, load_weights_only
from lvisnb.model.presets import Preset


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
    preset = run_preset(cfg, _saved_preset(cfg) if cfg.resume else None)
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
    image_index, ids = category_set_pairs(dataset.category_sets())
    labels = dataset.mapping.to_labels(ids).numpy()  # an id outside the mapping is an error
    return images_per_category(image_index, labels, np.arange(1, dataset.mapping.num_classes + 1))


def _placement(device: str) -> tuple[int, int, torch.device]:
    """``(world_size, rank, device)``; under torchrun each rank takes its local GPU."""
    world, rank, local_rank = _distributed()
    resolved = resolve_device(device)
    if resolved.type == "cuda" and world > 1:
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    return world, rank, resolved


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
    knobs = knob_overrides(cfg, "schedule")  # lr, max_iters, lr_steps: None -> the preset's
    max_iters, steps, epoch_images = resolve_schedule(
        preset, sampler, total_batch, knobs.get("max_iters"), knobs.get("lr_steps")
    )
    return {
        "train_ann": data["train_ann"],
        "image_root": data["image_root"],
        "lr": knobs["lr"] if "lr" in knobs else scaled_lr(preset, total_batch),
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


def _saved_preset(cfg: TrainConfig) -> dict | None:
    """The preset record of ``run_dir/checkpoints/last.pt`` (read without its tensors), or
    ``None`` when there is no usable one: :func:`_resume` names that problem."""
    try:
        state = load_weights_only(Path(cfg.run_dir) / runs.CHECKPOINT_DIR / LAST, mmap=True)
        saved = state["config"]["preset"]
    except Exception:  # noqa: BLE001 - any unusable file is reported by _resume's full read
        return None
    return saved if isinstance(saved, dict) else None


def _resume(setup: TrainSetup) -> Progress:
    """Load ``last.pt`` into ``setup`` (model, optimiser, scheduler, scaler, this rank's RNG
    state); its progress. ``ValueError`` when the saved experiment differs from ``setup``'s."""
    path = setup.ckpt_dir / LAST
    state = load_checkpoint(path, required=CHECKPOINT_KEYS)
    _check_same_experiment(path, state["config"], setup.config)
    unwrap_model(setup.model).load_state_dict(state["model"])
    setup.optimizer.load_state_dict(state["optimizer"])  # before the scheduler: it holds the lr
    restore_scheduler(setup.scheduler, state["scheduler"], state["iteration"])
    setup.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"][min(setup.rank, len(state["rng"]) - 1)])
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
