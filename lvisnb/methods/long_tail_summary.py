"""Reading notebook 05's comparison: its arms, paired differences, tables, verdicts, summary.

An *arm* (:class:`Arm`) is a sampler and a box-classification loss; :data:`BASELINE`
(``rfs+ce``, the LVIS baseline) is what every other arm is compared with. The runs themselves
(:mod:`lvisnb.methods.long_tail_runs`) write one run directory per (arm, seed), read back by
:func:`lvisnb.methods.ranking.leaderboard`; this module turns that leaderboard into answers.

:func:`paired_differences` compares each arm with :data:`BASELINE` seed by seed: the same
seed pairs the two runs, the difference is taken per seed and its mean gets a 95% Student-t
interval over the seeds (:func:`lvisnb.methods.ranking.t975`). :func:`interval_table` and
:func:`difference_table` write means and differences as text, :func:`verdicts` answers the
notebook's questions in words, and :func:`write_summary` keeps it all in
``long_tail_methods.json``, which :func:`differences_from_summary` reads back. pandas only, no
torch: ``benchmarks/long_tail_table.py`` reads a summary with it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lvisnb.files import write_text_atomic
from lvisnb.methods.ranking import IOU_PREFIX, METRICS, t975

__all__ = [
    "BASELINE",
    "Arm",
    "difference_table",
    "differences_from_summary",
    "format_interval",
    "interval_table",
    "json_ready",
    "metric_columns",
    "paired_differences",
    "verdicts",
    "with_arm",
    "write_summary",
]

PROTOCOLS = ("decoupled", "end_to_end")
SUMMARY_FILE = "long_tail_methods.json"
# classifier steps per decoupled run when iterations=None (a summary records None): here, where
# the tables that name it are read without torch
DEFAULT_ITERATIONS = 1000


@dataclass(frozen=True)
class Arm:
    """One setting compared: an image sampler (``"uniform"``, ``"rfs"``) and a loss."""

    sampler: str
    method: str

    @property
    def name(self) -> str:
        return f"{self.sampler}+{self.method}"

    def run_name(self, seed: int) -> str:
        """The run directory's name for ``seed``: ``<sampler>_<method>_seed<seed>``."""
        return f"{self.sampler}_{self.method}_seed{seed}"


BASELINE = Arm("rfs", "ce")  # what the differences are taken against


def metric_columns(protocol: str, masks: bool = True) -> list[str]:
    """Leaderboard columns a protocol fills: box AP..APf, then mask AP..APf (end to end, and
    decoupled with ``masks``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    with_masks = masks or protocol == "end_to_end"
    prefixes = list(IOU_PREFIX.values()) if with_masks else ["box"]
    return [f"{p}_{m}" for p in prefixes for m in METRICS]


def json_ready(value):
    """JSON-ready: NaN -> None, numpy scalars -> Python, tuples -> lists, recursively."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def with_arm(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (a leaderboard or :func:`lvisnb.methods.ranking.over_seeds` table) with an
    ``arm`` column ``<sampler>+<method>`` first."""
    arm = frame["sampler"].astype(str) + "+" + frame["method"].astype(str)
    return frame.assign(arm=arm)[["arm", *frame.columns]]


def paired_differences(
    board: pd.DataFrame, metrics: Sequence[str], baseline: Arm = BASELINE
) -> pd.DataFrame:
    """Each arm minus ``baseline``, seed by seed, per metric: one row per (arm, metric).

    ``board``: :func:`lvisnb.methods.ranking.leaderboard` rows (``method``, ``sampler``,
    ``seed``, the ``metrics`` columns). For an arm, the seeds it shares with the baseline pair its
    runs with the baseline's; ``d_s = arm_s - baseline_s``. Columns: ``arm``, ``metric``, ``mean``
    (of the ``d_s``), ``low``, ``high`` (``mean +- t(0.975, n - 1) * sd(d) / sqrt(n)``; NaN for
    ``n < 2``), ``seeds`` (``n``: seeds where both values are defined), ``per_seed`` (dict
    seed -> ``d_s``). Pairing removes what a seed does to both runs alike (the same RoI sample
    order, the same initialisation), so the interval is narrower than comparing the two means'
    intervals. ``ValueError`` when the board has no baseline run.
    """
    table = with_arm(board)
    base = table[table["arm"] == baseline.name].set_index("seed")
    if base.empty:
        raise ValueError(f"the leaderboard has no {baseline.name} run to compare with")
    rows = []
    for arm, group in table[table["arm"] != baseline.name].groupby("arm", sort=False):
        group = group.set_index("seed")
        shared = [s for s in group.index if s in base.index]
        for metric in metrics:
            diff = (group.loc[shared, metric] - base.loc[shared, metric]).dropna()
            n = len(diff)
            mean = float(diff.mean()) if n else math.nan
            half = t975(n - 1) * float(diff.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
            rows.append(
                {
                    "arm": arm,
                    "metric": metric,
                    "mean": mean,
                    "low": mean - half,
                    "high": mean + half,
                    "seeds": n,
                    "per_seed": {int(s): float(v) for s, v in diff.items()},
                }
            )
    return pd.DataFrame(rows, columns=["arm", "metric", "mean", "low", "high", "seeds", "per_seed"])


def format_interval(
    mean: float, low: float, high: float, digits: int = 3, signed: bool = False
) -> str:
    """``mean [low, high]`` rounded to ``digits`` (``-0.000`` shown as ``0.000``): ``"–"`` for
    a NaN mean, the mean alone when the interval is not finite (one seed). ``signed`` (the
    difference tables): ``+`` before a positive mean and minus signs as U+2212."""
    if not math.isfinite(mean):
        return "–"
    mean, low, high = (_num(v, digits) if math.isfinite(v) else v for v in (mean, low, high))
    text = f"{mean:.{digits}f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return ("+" if mean > 0 else "") + text.replace("-", "−") if signed else text


def interval_table(summary: pd.DataFrame, metrics: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """``over_seeds`` means as text ``mean [low, high]``, one row per arm, a column a metric."""
    table = with_arm(summary).set_index("arm")
    text = {
        m: [
            format_interval(r[m], r[f"{m}_low"], r[f"{m}_high"], digits)
            for _, r in table.iterrows()
        ]
        for m in metrics
    }
    return pd.DataFrame(text, index=table.index).assign(seeds=table["seeds"])


def difference_table(differences: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`paired_differences` as text ``±mean [low, high]`` (signed, minus signs as
    U+2212), a row an arm, a column a metric."""
    text = differences.assign(
        text=[
            format_interval(r["mean"], r["low"], r["high"], digits, signed=True)
            for _, r in differences.iterrows()
        ]
    )
    return text.pivot(index="arm", columns="metric", values="text").loc[
        list(dict.fromkeys(differences["arm"])), list(dict.fromkeys(differences["metric"]))
    ]


def _verdict(mean: float, low: float, high: float, seeds: int, ahead: str, behind: str) -> str:
    """``ahead - behind`` = ``mean [low, high]`` in words: which is ahead, or by how much the
    interval misses excluding 0."""
    if not math.isfinite(mean):
        return (
            "undefined: the metric has no value in these runs (e.g. no val instance of the group)"
        )
    if seeds < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return f"cannot tell: {seeds} paired seed(s), no interval"
    if low > 0:
        return f"yes: {ahead} ahead by {_num(mean):.3f} (interval above 0)"
    if high < 0:
        return f"no: {behind} ahead by {_num(-mean):.3f} (interval below 0)"
    miss, end = (-low, "lower") if mean >= 0 else (high, "upper")
    return (
        f"cannot tell: the interval holds 0; its {end} end misses 0 by {_num(miss):.3f} "
        f"(half-width {_num((high - low) / 2):.3f}, mean {_num(mean):+.3f})"
    )


def _num(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits``, with -0.0 as 0.0 (no ``-0.000`` in a table)."""
    return round(value, digits) + 0.0


def verdicts(
    differences: pd.DataFrame, metrics: Sequence[str], baseline: Arm = BASELINE
) -> pd.DataFrame:
    """The questions of notebook 05 answered from :func:`paired_differences`, a row each:
    does ``rfs+ce`` beat ``uniform+ce`` (the LVIS paper's RFS finding; the ``uniform+ce``
    difference negated), and does each ``rfs+<loss>`` beat ``rfs+ce``, on each of ``metrics``.
    Columns: ``question``, ``metric``, ``mean``, ``low``, ``high`` (the 95% paired interval of
    *first minus second*), ``seeds``, ``verdict`` (``yes`` when the interval is above 0,
    ``no`` below, else ``cannot tell`` with the distance by which it misses 0)."""
    rows = []
    for record in differences[differences["metric"].isin(metrics)].to_dict(orient="records"):
        arm = record["arm"]
        mean, low, high = record["mean"], record["low"], record["high"]
        if arm == Arm("uniform", baseline.method).name:
            ahead, behind, mean, low, high = baseline.name, arm, -mean, -high, -low
        else:
            ahead, behind = arm, baseline.name
        rows.append(
            {
                "question": f"{ahead} > {behind}",
                "metric": record["metric"],
                "mean": mean,
                "low": low,
                "high": high,
                "seeds": record["seeds"],
                "verdict": _verdict(mean, low, high, record["seeds"], ahead, behind),
            }
        )
    columns = ["question", "metric", "mean", "low", "high", "seeds", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def differences_from_summary(saved: dict) -> pd.DataFrame:
    """:func:`paired_differences`' table again from a ``long_tail_methods.json`` read with
    ``json.load`` (``null`` back to NaN)."""
    rows = [
        {"arm": arm, "metric": metric, **{k: math.nan if v is None else v for k, v in d.items()}}
        for arm, by_metric in saved["differences"].items()
        for metric, d in by_metric.items()
    ]
    return pd.DataFrame(rows, columns=["arm", "metric", "mean", "low", "high", "seeds", "per_seed"])


def write_summary(
    out_dir: str | os.PathLike,
    board: pd.DataFrame,
    summary: pd.DataFrame,
    differences: pd.DataFrame,
    **extra,
) -> Path:
    """``out_dir/long_tail_methods.json``: the leaderboard (a row a run), the means with their
    intervals (a row an arm), the paired differences keyed by arm then metric (``mean``,
    ``low``, ``high``, ``seeds``, ``per_seed``), the baseline, and ``extra`` (protocol,
    timings, ...); NaN written as ``null``."""
    keyed: dict[str, dict] = {}
    for row in differences.to_dict(orient="records"):
        keyed.setdefault(row.pop("arm"), {})[row.pop("metric")] = row
    record = {
        **extra,
        "baseline": BASELINE.name,
        "leaderboard": with_arm(board).to_dict(orient="records"),
        "over_seeds": with_arm(summary).to_dict(orient="records"),
        "differences": keyed,
    }
    return write_text_atomic(Path(out_dir) / SUMMARY_FILE, json.dumps(json_ready(record), indent=1))
