"""What a training run holds while it runs: :class:`TrainSetup` (built by
:func:`lvisnb.engine.setup.setup_training`), :class:`Progress` (saved in every checkpoint) and
the RNG states that travel with it, so that a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from lvisnb.data.dataset import LVISDetection
from lvisnb.data.sampler import EpochShardedSampler
from lvisnb.engine.config import TrainConfig
from lvisnb.engine.run_dir import CHECKPOINT_DIR
from lvisnb.model.presets import Preset


@dataclass
class TrainSetup:
    """What :func:`setup_training` builds for a run; the loop and
    :func:`lvisnb.engine.loop.train_step` read it."""

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


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (``model`` itself otherwise)."""
    return model.module if hasattr(model, "module") else model


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


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(world: int) -> list[dict]:
    """Every rank's RNG state, rank order (rank 0 writes them all into the checkpoint)."""
    mine = _rng_state()
    if world == 1:
        return [mine]
    states: list = [None] * world
    dist.all_gather_object(states, mine)
    return states
