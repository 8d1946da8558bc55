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
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lvisnb.outputs import write_text_atomic

LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
LAST, FINAL = "last.pt", "final.pt"
SAMPLES_GLOB = "samples_rank*.jsonl"

# what makes the experiment: config sections and the keys compared on resume (None: all)
EXPERIMENT_KEYS: dict[str, tuple[str, ...] | None] = {
    "preset": None,
    "resolved": (
        "lr", "max_iters", "lr_steps", "warmup_iters", "total_batch", "sampler",
        "rfs_threshold", "rfs_rounding", "epoch_images", "category_ids",
    ),
    "train": ("batch_size", "seed"),
}  # fmt: skip


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

    A last line that is not valid JSON (a write cut short by a crash) is left out when
    ``drop_torn``; any other invalid line is a ``ValueError`` naming the file and line number.
    """
    path = Path(run_dir) / LOG_FILE
    lines = _log_lines(path)
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if drop_torn and number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not a log record ({error})") from None
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
