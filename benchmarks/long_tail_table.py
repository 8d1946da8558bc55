"""What notebook 05 measured, as a RESULTS.md section: every arm with its intervals over seeds.

    make demo                                       # notebooks 01-05 into runs/demo/
    python benchmarks/long_tail_table.py [--run-dir runs/demo]

Reads ``run_dir/long_tail_methods.json`` (notebook 05's summary, either protocol) and writes
the section ``long_tail_methods``: for each arm the mean over seeds of box and mask AP / APr /
APc / APf with its 95% t-interval, each arm's paired difference from ``rfs+ce``, and the
answers to issue 14's questions (does RFS beat uniform sampling on APr, as in the LVIS paper;
does each loss beat RFS), with the distance by which an interval misses 0 when it cannot tell.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import RESULTS, write_section  # noqa: E402

from lvisnb.methods import long_tail_summary  # noqa: E402

SECTION = "long_tail_methods"


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """A markdown table; the first ``text_columns`` columns left-aligned, the rest right."""
    align = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _means(saved: dict, metrics: list[str]) -> list[str]:
    """The per-arm means as :func:`lvisnb.methods.long_tail_summary.interval_table` writes them."""
    summary = pd.DataFrame(saved["over_seeds"]).drop(columns="arm")
    intervals = [c for m in metrics for c in (m, f"{m}_low", f"{m}_high")]
    summary[intervals] = summary[intervals].astype(float)  # JSON null -> NaN
    table = long_tail_summary.interval_table(summary, metrics)
    rows = [[f"`{arm}`", str(row["seeds"]), *row[metrics]] for arm, row in table.iterrows()]
    return _table(["arm", "seeds", *metrics], rows)


def _differences(saved: dict, metrics: list[str]) -> list[str]:
    """The paired differences as :func:`lvisnb.methods.long_tail_summary.difference_table`
    writes them."""
    table = long_tail_summary.difference_table(long_tail_summary.differences_from_summary(saved))
    table = table.reindex(columns=metrics, fill_value="–")
    rows = [[f"`{arm}` − `{saved['baseline']}`", *row] for arm, row in table.iterrows()]
    return _table(["difference", *metrics], rows)


def _answers(saved: dict, metrics: list[str]) -> list[str]:
    table = long_tail_summary.verdicts(long_tail_summary.differences_from_summary(saved), metrics)
    rows = [
        [
            f"`{r['question']}`",
            r["metric"],
            long_tail_summary.format_interval(r["mean"], r["low"], r["high"], signed=True),
            r["verdict"],
        ]
        for r in table.to_dict(orient="records")
    ]
    table = _table(["question", "metric", "difference [95% interval]", "verdict"], rows, 2)
    table[1] = "| --- | --- | ---: | --- |"
    return table


def _timings(saved: dict) -> str:
    """One sentence of what notebook 05 recorded of its time (nothing when it recorded none)."""
    timings = saved.get("timings") or {}
    if timings.get("total_seconds") is None:
        return ""
    parts = [f"Notebook 05 took {timings['total_seconds'] / 60:.1f} min"]
    if timings.get("features_seconds") is not None:
        reused = timings.get("features_reused")
        how = {True: " read from the cache", False: " extracted"}.get(reused, "")
        parts.append(f"RoI features{how} in {timings['features_seconds']:.0f} s")
    masks = timings.get("masks_seconds")
    if masks is not None:
        parts.append(f"the one mask pass for every run {masks:.0f} s")
    if timings.get("runs_seconds") is not None:
        with_masks = ", the mask pass included" if masks is not None else ""
        parts.append(f"all runs {timings['runs_seconds']:.0f} s{with_masks}")
    machine = timings.get("machine", "machine not recorded")
    return ", ".join(parts) + f" ({machine}). "


def section(saved: dict, source: Path) -> str:
    """The markdown of the section for one ``long_tail_methods.json`` (read as ``saved``)."""
    metrics = saved["metrics"]
    rare = [m for m in metrics if m.endswith("_APr")]
    decoupled = saved["protocol"] == "decoupled"
    masks = ", masks from its frozen mask head" if saved.get("masks") else ", box AP only"
    what = (
        "the box classifier retrained on RoI features cached from notebook 02's model "
        f"(preset `{saved['preset']}`){masks}"
        if decoupled
        else f"Mask R-CNN trained from scratch for each arm and seed (preset `{saved['preset']}`)"
    )
    default = long_tail_summary.DEFAULT_ITERATIONS if decoupled else "the preset's"
    iterations = saved.get("iterations") or f"{default} (the default)"
    lines = [
        "## What helps the rare categories: notebook 05 (`benchmarks/long_tail_table.py`)",
        "",
        f"From `{source}`. Protocol `{saved['protocol']}`: {what}; {iterations} iterations per "
        f"run, seeds {saved['seeds']}, train images: {saved.get('train_images') or 'all'}, val "
        f"images: {saved.get('val_images') or 'all'}. {_timings(saved)}"
        "Intervals: 95% Student-t over seeds (`lvisnb.methods.ranking.over_seeds`); "
        "differences are paired seed by seed "
        "(`lvisnb.methods.long_tail_summary.paired_differences`). "
        "They cover what a seed changes (initialisation, image order, sampled negatives), not the "
        "choice of val images, which is the same in every run"
        + (", nor the features, which are one notebook-02 model's." if decoupled else "."),
        "",
        "Mean over seeds [95% interval]:",
        "",
        *_means(saved, metrics),
        "",
        f"Paired differences from `{saved['baseline']}` [95% interval]:",
        "",
        *_differences(saved, metrics),
        "",
        "The questions of issue 14, on AP and APr:",
        "",
        *_answers(saved, rare + [m for m in metrics if m.endswith("_AP")]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/demo", help="notebook 05's run_dir")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the RESULTS.md to write")
    args = parser.parse_args(argv)
    source = Path(args.run_dir) / long_tail_summary.SUMMARY_FILE
    if not source.is_file():
        parser.error(f"no {source}: run notebook 05 into {args.run_dir} first (make demo)")
    text = section(json.loads(source.read_text(encoding="utf-8")), source)
    write_section(SECTION, text, args.results)
    print(text)
    return text


if __name__ == "__main__":
    main()
