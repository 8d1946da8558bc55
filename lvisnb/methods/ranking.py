"""A leaderboard of runs: what each run directory trained and what it scored, one table.

A run directory (``runs/<name>/``, see :mod:`lvisnb.engine.run_dir`) that was evaluated holds
``metrics.json`` (:func:`lvisnb.evaluation.report.save_metrics`); one that was trained by the kit
also holds ``config.json`` (:func:`lvisnb.engine.trainer.train`: the ``train`` settings, the
``preset`` and the ``resolved`` values). :func:`leaderboard` reads both into one row per run;
:func:`over_seeds` groups the rows by method and sampler and gives each metric's mean over seeds
with a 95% Student-t interval, ``mean +- t(0.975, n - 1) * s / sqrt(n)`` (``s`` the sample standard
deviation over the ``n`` seeds): the uncertainty that training randomness alone adds to a
number such as APr, which rests on a few hundred rare instances (LVIS v1 val) or a handful
(toy-LVIS). Intervals that overlap widely mean the runs cannot tell the methods apart.

Metric columns are named ``<box|mask>_<metric>`` (``box_AP``, ``mask_APr``, ...); undefined
metrics (LVIS's -1, e.g. APr without rare ground truth) are NaN.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ("AP", "APr", "APc", "APf")
IOU_PREFIX = {"bbox": "box", "segm": "mask"}
METRIC_COLUMNS = tuple(f"{p}_{m}" for p in IOU_PREFIX.values() for m in METRICS)
RUN_COLUMNS = ("run", "method", "sampler", "rfs_threshold", "seed", "preset", "iterations")

# Student t quantiles t(0.975, df) for df = 1..30 (any table, e.g. NIST/SEMATECH e-Handbook of
# Statistical Methods, 1.3.6.7.2); larger df use the Cornish-Fisher expansion in _t975.
_T975 = (
    12.7062,
    4.3027,
    3.1824,
    2.7764,
    2.5706,
    2.4469,
    2.3646,
    2.3060,
    2.2622,
    2.2281,
    2.2010,
    2.1788,
    2.1604,
    2.1448,
    2.1314,
    2.1199,
    2.1098,
    2.1009,
    2.0930,
    2.0860,
    2.0796,
    2.0739,
    2.0687,
    2.0639,
    2.0595,
    2.0555,
    2.0518,
    2.0484,
    2.0452,
    2.0423,
)
_Z975 = 1.959963984540054  # standard normal 0.975 quantile


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df >= 1`` degrees of freedom (4 decimals).

    ``ValueError`` for ``df < 1``. Beyond the table (df > 30) the Cornish-Fisher expansion
    ``z + (z^3 + z) / (4 df) + (5 z^5 + 16 z^3 + 3 z) / (96 df^2)`` (Abramowitz & Stegun 26.7.5),
    within 2e-4 of the exact value there.
    """
    if df < 1:
        raise ValueError(f"Student t needs at least 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: the run has no {what}") from None
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the {what} must be a JSON object")
    return data


def _metric_values(metrics: dict, path: Path) -> dict[str, float]:
    """``metrics.json``'s ``metrics`` as leaderboard columns (NaN where undefined or absent)."""
    by_type = metrics.get("metrics")
    if not isinstance(by_type, dict):
        raise ValueError(f"{path}: no 'metrics' object; is it a metrics.json of lvisnb evaluate?")
    row = {}
    for iou_type, prefix in IOU_PREFIX.items():
        values = by_type.get(iou_type, {})
        for name in METRICS:
            value = values.get(name)
            ok = isinstance(value, int | float) and value >= 0
            row[f"{prefix}_{name}"] = float(value) if ok else math.nan
    return row


def _training_values(config: dict) -> dict:
    """What a run trained, from its ``config.json`` sections (``method`` is the preset's
    ``cls_loss``, ``"ce"`` for presets older than the loss field; ``sampler`` ``"uniform"``
    also when RFS ran with threshold 0, which repeats nothing)."""
    train, preset, resolved = (config.get(k, {}) for k in ("train", "preset", "resolved"))
    sampler = resolved.get("sampler", train.get("sampler"))
    threshold = resolved.get("rfs_threshold", preset.get("rfs_threshold"))
    if sampler == "rfs" and not threshold:
        sampler = "uniform"
    return {
        "method": preset.get("cls_loss", "ce"),
        "sampler": sampler,
        "rfs_threshold": threshold if sampler == "rfs" else None,
        "seed": train.get("seed"),
        "preset": preset.get("name", train.get("preset")),
        "iterations": resolved.get("max_iters"),
    }


def read_run(run_dir: str | os.PathLike) -> dict:
    """One leaderboard row: :data:`RUN_COLUMNS` (``None`` where the run has no ``config.json``)
    then :data:`METRIC_COLUMNS` from ``metrics.json``.

    Raises ``FileNotFoundError`` naming ``run_dir/metrics.json`` when it is missing (the run was
    not evaluated: notebook 03 or ``lvisnb evaluate --out``), ``ValueError`` naming the file
    when either file is not what the kit writes.
    """
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / "metrics.json", "metrics (evaluate it first)")
    row = dict.fromkeys(RUN_COLUMNS) | {"run": str(run_dir)}
    config_path = run_dir / "config.json"
    if config_path.is_file():
        row |= _training_values(_read_json(config_path, "training config"))
    return row | _metric_values(metrics, run_dir / "metrics.json")


def leaderboard(run_dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per run directory (:func:`read_run`), in the order given.

    Columns: ``run``, ``method``, ``sampler``, ``rfs_threshold``, ``seed``, ``preset``,
    ``iterations``, then ``box_AP`` .. ``mask_APf`` (floats in [0, 1], NaN where undefined).
    ``ValueError`` when no run is given or a run is given twice.
    """
    if isinstance(run_dirs, str | os.PathLike):
        raise ValueError("leaderboard() takes a list of run directories, not one path")
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise ValueError("leaderboard() needs at least one run directory")
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) < len(resolved):
        raise ValueError("a run directory is given twice: each run must count once")
    rows = [read_run(p) for p in paths]
    return pd.DataFrame(rows, columns=[*RUN_COLUMNS, *METRIC_COLUMNS])


def _interval(values: np.ndarray) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite ``values``; the interval is NaN for n < 2."""
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t975(n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def _check_seeds(group: pd.DataFrame, by: Sequence[str]) -> None:
    """``ValueError`` when a group's runs are not seeds of one experiment: a seed twice, or
    different presets, iterations or RFS thresholds (runs without ``config.json`` are
    trusted)."""
    seeds = group["seed"].dropna() if "seed" in group else pd.Series(dtype=float)
    if seeds.duplicated().any():
        raise ValueError(
            f"runs {group['run'].tolist()} share a seed in one group of {list(by)}: each seed "
            "must count once (group by another column, or leave a run out)"
        )
    for column in ("preset", "iterations", "rfs_threshold"):
        if column in group and column not in by and group[column].dropna().nunique() > 1:
            raise ValueError(
                f"runs {group['run'].tolist()} differ in {column} "
                f"({sorted(map(str, group[column].dropna().unique()))}): they are not seeds of "
                f"one experiment; add {column!r} to by"
            )


def over_seeds(
    board: pd.DataFrame,
    by: Sequence[str] = ("method", "sampler"),
    metrics: Sequence[str] = METRIC_COLUMNS,
) -> pd.DataFrame:
    """Mean over seeds and its 95% t-interval, per group of ``by`` (one row per group, in order
    of first appearance).

    Columns: ``seeds`` (runs in the group), then for each metric ``<metric>``,
    ``<metric>_low``, ``<metric>_high`` (NaN intervals for a single seed; NaN runs of a metric
    are left out of that metric only). ``ValueError`` for a ``by`` or metric column the board
    lacks, and for a group whose runs are not seeds of one experiment (a seed twice; another
    preset, number of iterations or RFS threshold).
    """
    if isinstance(by, str) or isinstance(metrics, str):
        raise ValueError("by and metrics are sequences of column names, e.g. ('method',)")
    missing = [c for c in (*by, *metrics) if c not in board.columns]
    if missing:
        raise ValueError(f"the leaderboard has no column(s) {missing}")
    rows = []
    for key, group in board.groupby(list(by), sort=False, dropna=False):
        _check_seeds(group, by)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row["seeds"] = len(group)
        for metric in metrics:
            mean, low, high, _ = _interval(group[metric].to_numpy(np.float64))
            row |= {metric: mean, f"{metric}_low": low, f"{metric}_high": high}
        rows.append(row)
    return pd.DataFrame(rows)
