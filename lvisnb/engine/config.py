"""What a training run is asked for: :class:`TrainConfig`, its checks, and how its fields
override the preset's (:data:`KNOBS`, :func:`run_preset`).

``None`` fields of a :class:`TrainConfig` take the preset's value. Seven fields are knobs the
:class:`lvisnb.model.presets.Preset` has too; :data:`KNOBS` is the one place that says which
Preset field each overrides and how, and both :func:`run_preset` (the Preset a run trains) and
:func:`lvisnb.engine.setup.setup_training` (the schedule it runs) read it through
:func:`knob_overrides`. A checkpoint of a run holds :data:`CHECKPOINT_KEYS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lvisnb.data.sampler import ROUNDINGS
from lvisnb.engine.device import AMP_MODES
from lvisnb.model.presets import Preset, get_preset, preset_from_record
from lvisnb.model.ranges import Range, range_problems

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

    preset: str = "toy"  # a name from lvisnb.model.presets.PRESETS
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


# TrainConfig's real-valued fields (None: the preset's value)
_RANGES = {
    "lr": Range(0.0, None, low_open=True),
    "grad_clip": Range(0.0, None, low_open=True),
    "rfs_threshold": Range(0.0, 1.0),
}


def _number_problems(cfg: TrainConfig) -> list[str]:
    """Range problems of ``cfg``'s numeric fields (``None`` means the preset's value)."""
    problems = range_problems(cfg, _RANGES, "a finite number in", typed=True)
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


# The knobs on both TrainConfig and Preset: TrainConfig field -> (the Preset field it overrides
# when not None, how). "preset": same units; replaces the field of the run's Preset
# (run_preset) before anything is built. "schedule": in the run's own units (lr per iteration
# at the run's total batch; iterations); replaces what lvisnb.engine.schedule derives from the
# Preset field (scaled_lr; resolve_schedule), so the Preset keeps the recipe it was given.
KNOBS: dict[str, tuple[str, str]] = {
    "rfs_threshold": ("rfs_threshold", "preset"),
    "rfs_rounding": ("rfs_rounding", "preset"),
    "grad_clip": ("grad_clip", "preset"),
    "warmup_iters": ("warmup_iters", "preset"),
    "lr": ("lr", "schedule"),  # the preset's lr is at lr_batch, scaled to the run's batch
    "max_iters": ("max_iters", "schedule"),  # the preset's epochs (or max_iters), converted
    "lr_steps": ("lr_steps_iters", "schedule"),  # the preset's epoch steps, converted
}


def knob_overrides(cfg: TrainConfig, how: str) -> dict[str, object]:
    """``{TrainConfig field: value}`` of the :data:`KNOBS` that ``cfg`` sets (not ``None``) and
    that apply ``how``: ``"preset"`` (:func:`run_preset`) or ``"schedule"``
    (:func:`lvisnb.engine.setup.setup_training`: ``lr``, ``max_iters``, ``lr_steps``)."""
    if how not in ("preset", "schedule"):
        raise ValueError(f"how {how!r} is not 'preset' or 'schedule'")
    knobs = [name for name, (_, kind) in KNOBS.items() if kind == how]
    return {name: getattr(cfg, name) for name in knobs if getattr(cfg, name) is not None}


def run_preset(cfg: TrainConfig, saved: dict | None = None) -> Preset:
    """``cfg.preset`` with TrainConfig's own preset fields (:data:`KNOBS` applied ``"preset"``),
    then ``cfg.overrides``, applied: one Preset holds what is trained. ``ValueError`` names an
    unknown preset or field.

    ``saved``: the preset record of the run being resumed (its checkpoint's
    ``config["preset"]``). When it is of the same preset, the fields the user does not set come
    from it (:func:`~lvisnb.model.presets.preset_from_record`), not from this kit's preset, so
    that a run started under an older kit, whose preset defaults have since changed, continues
    as it began; a field the user sets is compared on resume as before."""
    given = {KNOBS[name][0]: value for name, value in knob_overrides(cfg, "preset").items()}
    preset = get_preset(cfg.preset, **{**given, **cfg.overrides})  # checks name and fields
    if saved is None or saved.get("name") != cfg.preset:
        return preset
    return dataclasses.replace(preset_from_record(saved), **{**given, **cfg.overrides})
