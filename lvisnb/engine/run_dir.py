"""A training run directory: what starting, resuming and restarting may do to it.

``run_dir/train_log.jsonl`` (one JSON line per iteration), ``config.json`` and
``checkpoints/last.pt`` / ``final.pt`` belong to one experiment. Rules:

- a run starts in a directory without a log or checkpoints, or with ``resume`` (continue from
  ``last.pt``, which must exist), or with ``overwrite`` (the old log, checkpoints and sample
  files are deleted first, on purpose);
- a resumed run is the same experiment: :func:`config_differences` lists what a new config
  would change (preset fields, categories, learning rate and schedule, batch size, seed), and
  resuming with any difference is refused;
- a log line cut short by a crash (the last line, not valid JSON) is dropped on resume; any
  other bad line is an error naming the file and line.

What a finished run reports, beside them (written atomically, never over a file the kit did not
write; see :mod:`lvisnb.files`):

- ``training.json`` (:func:`write_training_summary`, notebook 02): the experiment, iterations,
  throughput and the mean loss at the start and at the end of the log;
- ``evaluation.json`` (:func:`lvisnb.evaluation.report.write_evaluation_summary`, notebook 03):
  what was evaluated, how long inference took, and box / mask AP, APr, APc, APf.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from lvisnb.files import check_output, is_json_object_with, write_text_atomic

LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "config.json"
TRAINING_FILE = "training.json"
CHECKPOINT_DIR = "checkpoints"
LAST, FINAL = "last.pt", "final.pt"
SAMPLES_GLOB = "samples_rank*.jsonl"

# what makes the experiment: config sections and the keys compared on resume (None: all)
EXPERIMENT_KEYS: dict[str, tuple[str, ...] | None] = {
    "preset": None,
    "resolved": (
        "lr",
        "max_iters",
        "lr_steps",
        "warmup_iters",
        "total_batch",
        "sampler",
        "rfs_threshold",
        "rfs_rounding",
        "epoch_images",
        "category_ids",
    ),
    "train": ("batch_size", "seed"),
}


def _log_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def existing_run(run_dir: str | os.PathLike) -> str | None:
    """A description of the run held by ``run_dir`` (logged iterations, checkpoints), or
    ``None`` when it holds no log lines and no checkpoint."""
    run_dir = Path(run_dir)
    lines = [line for line in _log_lines(run_dir / LOG_FILE) if line.strip()]
    checkpoints = [n for n in (LAST, FINAL) if (run_dir / CHECKPOINT_DIR / n).is_file()]
    config = (run_dir / CONFIG_FILE).is_file()
    if not lines and not checkpoints and not config:
        return None
    held = [f"{len(lines)} logged iterations"] if lines else []
    held += [f"{CHECKPOINT_DIR}/{n}" for n in checkpoints] + [CONFIG_FILE] * config
    return ", ".join(held)


def prepare_start(run_dir: str | os.PathLike, resume: bool, overwrite: bool) -> None:
    """Check ``run_dir`` before a run starts (nothing is deleted here: :func:`clear_run`, once
    the new run's data and model are known to work).

    Raises ``ValueError`` for ``resume`` with ``overwrite``, ``FileNotFoundError`` for
    ``resume`` without ``checkpoints/last.pt``, and ``FileExistsError`` when ``run_dir`` holds a
    run (a log, a checkpoint or a ``config.json``) and neither flag is given.
    """
    run_dir = Path(run_dir)
    last = run_dir / CHECKPOINT_DIR / LAST
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue a run or restart it")
    if resume:
        if not last.is_file():
            raise FileNotFoundError(
                f"resume asked for, but {last} does not exist: nothing to continue (start "
                "without resume)"
            )
        return
    held = existing_run(run_dir)
    if held is not None and not overwrite:
        raise FileExistsError(
            f"{run_dir} already holds a run ({held}): pass resume (--resume) to continue it, "
            "overwrite (--overwrite) to delete it and start over, or choose another run_dir"
        )


def clear_run(run_dir: str | os.PathLike) -> None:
    """Delete the earlier run's log, checkpoints, config and sample files (``overwrite``)."""
    run_dir = Path(run_dir)
    old = [run_dir / LOG_FILE, run_dir / CONFIG_FILE]
    old += [run_dir / CHECKPOINT_DIR / n for n in (LAST, FINAL)]
    for path in [*old, *run_dir.glob(SAMPLES_GLOB)]:
        path.unlink(missing_ok=True)


def read_log(run_dir: str | os.PathLike, drop_torn: bool = True) -> list[dict]:
    """The records of ``run_dir/train_log.jsonl`` (``[]`` when there is none).

    A last non-blank line that is not valid JSON (a write cut short by a crash) is left out when
    ``drop_torn``; any other line that is not a JSON object with an integer ``iter`` is a
    ``ValueError`` naming the file and line number.
    """
    path = Path(run_dir) / LOG_FILE
    lines = _log_lines(path)
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if drop_torn and number == last:
                break
            raise ValueError(f"{path}: line {number} is not a log record ({error})") from None
        if not isinstance(record, dict) or not isinstance(record.get("iter"), int):
            raise ValueError(f"{path}: line {number} is not a log record (no 'iter' object)")
        records.append(record)
    return records


def truncate_log(run_dir: str | os.PathLike, iteration: int) -> None:
    """Keep the log records up to ``iteration`` (a resumed run rewrites the later ones); a
    torn last line is dropped."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return
    kept = [r for r in read_log(run_dir) if r["iter"] <= iteration]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


def config_differences(saved: dict, current: dict) -> list[str]:
    """``"section.key: saved -> current"`` for every experiment key (``EXPERIMENT_KEYS``)
    whose value differs between two ``config.json`` records (JSON-plain dicts); keys the saved
    record lacks (a checkpoint of an older kit) are not compared."""
    changes = []
    for section, keys in EXPERIMENT_KEYS.items():
        old, new = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(old) | set(new)) if keys is None else keys:
            if key not in old:  # written by an older kit, which did not record it
                continue
            if old.get(key) != new.get(key):
                changes.append(f"{section}.{key}: {_short(old.get(key))} -> {_short(new.get(key))}")
    return changes


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(value)} items)"


# ----------------------------------------------------------------------------- summaries


def loss_windows(losses: Sequence[float], window: int = 20) -> tuple[float, float]:
    """``(first, last)``: the mean of the first and of the last ``w`` values of ``losses``
    (total loss per iteration, in log order), ``w = max(1, min(window, len(losses) // 4))``, so
    that a short run compares its first and last quarters. ``ValueError`` when empty."""
    if not losses:
        raise ValueError("no losses to average: the run logged no iteration")
    w = _window(len(losses), window)
    return sum(losses[:w]) / w, sum(losses[-w:]) / w


def _window(count: int, window: int) -> int:
    return max(1, min(window, count // 4))


def read_config(run_dir: str | os.PathLike) -> dict:
    """``run_dir/config.json`` (sections ``train``, ``preset``, ``resolved``, written by
    :func:`lvisnb.engine.trainer.train`); ``FileNotFoundError`` when the directory holds no run."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} holds no training run")
    return json.loads(path.read_text(encoding="utf-8"))


def training_summary(
    run_dir: str | os.PathLike, wall_seconds: float | None = None, window: int = 20
) -> dict:
    """What the run in ``run_dir`` did, from its ``config.json`` and ``train_log.jsonl``:

    ``preset`` (name), ``sampler``, ``rfs_threshold``, ``iterations`` (the last logged),
    ``batch_size`` (images per iteration over all processes), ``train_seconds`` (the logged
    iterations' own seconds, data loading included, summed over resumed parts),
    ``images_per_second`` (logged iterations x batch_size / train_seconds), ``minutes``
    (``wall_seconds`` / 60: the caller's clock around training, model building and
    checkpoints included; ``None`` when not given), ``loss_first`` / ``loss_last`` /
    ``loss_window`` (:func:`loss_windows` of the total loss, and its ``w``) and
    ``checkpoint`` (``checkpoints/final.pt``, else ``last.pt``, else ``None``).

    Raises ``FileNotFoundError`` without ``config.json``, ``ValueError`` for an empty or
    invalid log (:func:`read_log`).
    """
    run_dir = Path(run_dir)
    config, log = read_config(run_dir), read_log(run_dir)
    losses = [record["loss"] for record in log]
    first, last = loss_windows(losses, window)
    resolved = config["resolved"]
    seconds = sum(record["time"] for record in log)
    checkpoints = [run_dir / CHECKPOINT_DIR / n for n in (FINAL, LAST)]
    checkpoint = next((str(p) for p in checkpoints if p.is_file()), None)
    return {
        "preset": config["preset"]["name"],
        "sampler": resolved["sampler"],
        "rfs_threshold": resolved["rfs_threshold"],
        "iterations": log[-1]["iter"],
        "batch_size": resolved["total_batch"],
        "train_seconds": seconds,
        "images_per_second": len(log) * resolved["total_batch"] / seconds if seconds else None,
        "minutes": None if wall_seconds is None else wall_seconds / 60,
        "loss_first": first,
        "loss_last": last,
        "loss_window": _window(len(losses), window),
        "checkpoint": checkpoint,
    }


# the keys that make a JSON object one of the kit's summaries (written by every version)
TRAINING_KEYS = ("preset", "sampler", "iterations", "loss_first", "loss_last")


def _write_summary(path: Path, summary: dict, keys: tuple, what: str, overwrite: bool) -> Path:
    """Write ``summary`` as indented JSON at ``path``, atomically, unless ``path`` exists and is
    not a summary the kit wrote (a JSON object with ``keys``): ``FileExistsError`` then."""
    check_output(
        path,
        written_by_kit=lambda p: is_json_object_with(p, keys),
        overwrite=overwrite,
        what=what,
    )
    return write_text_atomic(path, json.dumps(summary, indent=2) + "\n")


def write_training_summary(
    run_dir: str | os.PathLike,
    wall_seconds: float | None = None,
    extra: dict | None = None,
    overwrite: bool = False,
    window: int = 20,
) -> Path:
    """Write ``run_dir/training.json``: :func:`training_summary` plus ``extra`` (JSON-plain
    values a notebook adds, e.g. the epoch composition); returns its path.

    Raises what :func:`training_summary` raises, ``ValueError`` when ``extra`` would replace a
    key of the summary, and ``FileExistsError`` when ``training.json`` exists and is not a
    summary the kit wrote (unless ``overwrite``).
    """
    summary = training_summary(run_dir, wall_seconds, window)
    clash = sorted(set(summary) & set(extra or {}))
    if clash:
        raise ValueError(f"extra would replace the summary's own {clash}")
    path = Path(run_dir) / TRAINING_FILE
    return _write_summary(
        path, {**summary, **(extra or {})}, TRAINING_KEYS, "training summary", overwrite
    )
