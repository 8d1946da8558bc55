"""LVIS evaluators on small awkward cases: the kit and the peer tools against the official LVISEval.

    python benchmarks/awkward_cases.py [--cases 18] [--write]

Cases: ``tests/lvis_cases.make_case(seed)`` for seeds ``0 .. --cases - 1`` (small legal LVIS
files full of awkward inputs: empty masks, zero-size boxes, boxes across the border, more than
300 detections on an image, tied scores, duplicates, negative / not-exhaustive / unverified
categories, images and categories without GT), plus the issue's minimal cases:

- ``(a) zero-area detection``: one 100x100 image, one GT box [10, 10, 20, 20] (its polygon,
  area 400); an empty-mask detection with bbox [50, 50, 0, 5] at 0.95 above the GT-shaped one
  at 0.90. Legal: LVISEval gives AP 1.0 (area 0 is not evaluated). Counted with the seeds.
- ``(b) annotation ids 7, 7`` and ``(c) annotation ids 0, 1``: two GT boxes (ids as named),
  each found by a perfect detection (0.9 on the first, 0.8 on the second). Not legal LVIS
  files (LVISEval gives AP 0.2525 for both), so not counted as equal or not: the table says
  per tool whether it rejects them (and with what error) or what AP it gives.

Every case is written as GT and results JSON files in a temporary folder and each tool
evaluates them from the two paths: the kit as
``evaluate(gt, results, iou_types=(T,), backend="fast", fixed=False)``, the peers (hotcoco,
vernier, ultrafast-pycocotools, faster-coco-eval) through their LVIS modes exactly as
``benchmarks/eval_scale.py`` runs them (its ``_run_*`` functions, called in this process).
A run is *equal* when all 13 LVIS metrics are within 1e-4 of
``lvis_cases.reference_metrics`` (the official ``LVISResults`` + ``LVISEval``); a tool that
raises is not equal (its error's first line is recorded).

Reference for segm: the kit's rule is the mask's area (``segm_area="mask"``: the results'
``bbox`` dropped before ``LVISResults``, as detectron2 does); tools built on ``loadRes`` take
a record's area from its ``bbox`` when it has one, which is what raw LVISEval does on the
records as written (``segm_area="box"``). So the kit's segm is compared under the mask rule
and a peer's under the box rule (the records as given to it); the peers' count under the mask
rule is shown too. bbox has one reference.

``--write`` replaces (or appends) the ``awkward_cases`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import eval_scale  # noqa: E402
from lvis_cases import box_mask, make_case, reference_metrics, rle  # noqa: E402

SECTION = "awkward_cases"
TOLERANCE = 1e-4
IOU_TYPES = ("bbox", "segm")
TOOLS = ("kit", *eval_scale.PEERS)
METRICS = eval_scale.LVIS_METRICS
ERROR_CHARS = 140  # an error's first line is cut to this length in the tables
CATEGORIES = [
    {"id": 1, "name": "abacus", "frequency": "r", "image_count": 3},
    {"id": 2, "name": "banana", "frequency": "c", "image_count": 40},
    {"id": 3, "name": "cup", "frequency": "f", "image_count": 900},
]


# ----------------------------------------------------------------------------- cases


def _image(image_id: int = 1) -> dict:
    return {
        "id": image_id,
        "height": 100,
        "width": 100,
        "coco_url": f"http://images.cocodataset.org/val2017/{image_id:012d}.jpg",
        "neg_category_ids": [],
        "not_exhaustive_category_ids": [],
    }


def _box_ann(ann_id: int, x: float, y: float, w: float, h: float) -> dict:
    """A GT 'cup' (frequent) on image 1: the polygon of box XYWH, area ``w * h``."""
    return {
        "id": ann_id,
        "image_id": 1,
        "category_id": 3,
        "bbox": [x, y, w, h],
        "area": float(w * h),
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
    }


def _box_result(score: float, box, mask_box=None) -> dict:
    """A 'cup' detection on image 1: box XYWH, mask the pixels of ``mask_box`` (default: box)."""
    return {
        "image_id": 1,
        "category_id": 3,
        "score": score,
        "bbox": list(box),
        "segmentation": rle(box_mask(100, 100, *(mask_box or box))),
    }


def zero_area_case() -> tuple[dict, list[dict]]:
    """(a): an empty-mask / zero-width-box detection at 0.95 above the right one at 0.90."""
    gt = {"images": [_image()], "annotations": [_box_ann(1, 10, 10, 20, 20)]}
    results = [
        _box_result(0.95, (50, 50, 0, 5), mask_box=(0, 0, 0, 0)),
        _box_result(0.90, (10, 10, 20, 20)),
    ]
    return gt | {"categories": copy.deepcopy(CATEGORIES)}, results


def bad_ids_case(first: int, second: int) -> tuple[dict, list[dict]]:
    """(b)/(c): two GT boxes with annotation ids ``first``, ``second``, each found exactly."""
    anns = [_box_ann(first, 10, 10, 20, 20), _box_ann(second, 50, 50, 20, 20)]
    results = [_box_result(0.9, (10, 10, 20, 20)), _box_result(0.8, (50, 50, 20, 20))]
    gt = {"images": [_image()], "annotations": anns, "categories": copy.deepcopy(CATEGORIES)}
    return gt, results


def cases(count: int) -> tuple[dict, dict]:
    """``(legal, illegal)``: name -> ``(gt, results)``."""
    legal = {f"seed {seed}": make_case(seed) for seed in range(count)}
    legal["(a) zero-area detection"] = zero_area_case()
    illegal = {"(b) ids 7, 7": bad_ids_case(7, 7), "(c) ids 0, 1": bad_ids_case(0, 1)}
    return legal, illegal


# ----------------------------------------------------------------------------- running


@contextlib.contextmanager
def _quiet():
    """Send file descriptor 1 (Python's and native code's prints) to /dev/null, and silence
    warnings and the ``lvis`` logger."""
    sys.stdout.flush()
    saved = os.dup(1)
    logger = logging.getLogger("lvis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(null.fileno(), 1)
            try:
                yield
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
    finally:
        os.close(saved)
        logger.setLevel(level)


def _error_line(error: BaseException, folder: str) -> str:
    first = (str(error).strip().splitlines() or [""])[0].replace(folder, "<tmp>")
    text = f"{type(error).__name__}: {first}"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def run_tool(tool: str, iou_type: str, gt_path: Path, results_path: Path) -> dict:
    """``{"metrics": {...}}`` or ``{"error": first line}``, and ``"seconds"``."""
    start = time.perf_counter()
    try:
        with _quiet():
            metrics, _ = eval_scale.RUNNERS[tool](iou_type, str(gt_path), str(results_path))
        out = {"metrics": {name: float(value) for name, value in metrics.items()}}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # pyo3's PanicException is a BaseException
        out = {"error": _error_line(error, str(gt_path.parent))}
    return out | {"seconds": time.perf_counter() - start}


def references(gt: dict, results: list[dict]) -> dict:
    """LVISEval's metrics: ``bbox``, ``segm/mask`` (the kit's rule), ``segm/box`` (raw)."""
    refs = {}
    for key, iou_type, area in (
        ("bbox", "bbox", "mask"),
        ("segm/mask", "segm", "mask"),
        ("segm/box", "segm", "box"),
    ):
        with _quiet():
            refs[key] = reference_metrics(gt, results, iou_type, segm_area=area)
    return refs


def compare(run: dict, reference: dict) -> dict | None:
    """``None`` when all 13 metrics are within ``TOLERANCE``, else what differs."""
    if "error" in run:
        return {"error": run["error"]}
    off = {}
    for name in METRICS:
        got, want = run["metrics"].get(name), reference[name]
        if got is None:
            off[name] = (math.nan, want)
        elif not (abs(got - want) <= TOLERANCE or (math.isnan(got) and math.isnan(want))):
            off[name] = (got, want)
    if not off:
        return None
    worst = max(
        off, key=lambda n: math.inf if math.isnan(off[n][0]) else abs(off[n][0] - off[n][1])
    )
    return {"count": len(off), "worst": worst, "got": off[worst][0], "want": off[worst][1]}


def _rule(tool: str, iou_type: str) -> str:
    """The reference a tool's run is counted against (see the module docstring)."""
    if iou_type == "bbox":
        return "bbox"
    return "segm/mask" if tool == "kit" else "segm/box"


def evaluate_all(count: int) -> dict:
    """Run every tool on every case; returns the tallies the report is made of."""
    legal, illegal = cases(count)
    seconds = dict.fromkeys(TOOLS, 0.0)
    ref_seconds = 0.0
    rows = {}  # (case, tool, iou_type) -> {"run", "diff", "diff_mask"}
    illegal_rows = {}  # (case, tool or "LVISEval", iou_type) -> run
    with tempfile.TemporaryDirectory(prefix="awkward_cases_") as tmp:
        for name, (gt, results) in {**legal, **illegal}.items():
            folder = Path(tmp) / name.replace(" ", "_").replace(",", "")
            folder.mkdir()
            gt_path, results_path = folder / "gt.json", folder / "results.json"
            gt_path.write_text(json.dumps(gt))
            results_path.write_text(json.dumps(results))
            start = time.perf_counter()
            refs = references(gt, results)
            ref_seconds += time.perf_counter() - start
            for iou_type in IOU_TYPES:
                if name in illegal:
                    ref = refs[_rule("kit", iou_type)]  # bbox, or segm under the mask rule
                    illegal_rows[name, "LVISEval", iou_type] = {"metrics": ref}
                for tool in TOOLS:
                    run = run_tool(tool, iou_type, gt_path, results_path)
                    seconds[tool] += run["seconds"]
                    if name in illegal:
                        run["diff"] = compare(run, refs[_rule(tool, iou_type)])
                        illegal_rows[name, tool, iou_type] = run
                        continue
                    row = {"run": run, "diff": compare(run, refs[_rule(tool, iou_type)])}
                    if iou_type == "segm" and tool != "kit":
                        row["diff_mask"] = compare(run, refs["segm/mask"])
                    rows[name, tool, iou_type] = row
            print(f"{name}: done", file=sys.stderr)
    return {
        "legal": list(legal),
        "illegal": list(illegal),
        "rows": rows,
        "illegal_rows": illegal_rows,
        "seconds": seconds,
        "ref_seconds": ref_seconds,
    }


# ----------------------------------------------------------------------------- report


def _fmt(value: float) -> str:
    return "missing" if math.isnan(value) else f"{value:.4f}"


def _failure(diff: dict) -> str:
    if "error" in diff:
        return f"error: {diff['error']}"
    return f"{diff['worst']} {_fmt(diff['got'])} vs {_fmt(diff['want'])}" + (
        f", {diff['count']} metrics off" if diff["count"] > 1 else ""
    )


def _tool_label(tool: str) -> str:
    if tool == "kit":
        return "kit"
    name = eval_scale.PEER_DISTRIBUTIONS.get(tool, tool)
    return f"{name} {eval_scale._peer_version(tool)}"


def _illegal_cell(run: dict) -> str:
    """An illegal case's cell: the error, or the AP and whether all 13 metrics equal LVISEval's
    (under the tool's segm rule)."""
    if "error" in run:
        return f"rejects: `{run['error']}`"
    same = " (= LVISEval)" if run["diff"] is None else ""
    return f"AP {run['metrics'].get('AP', math.nan):.4f}{same}"


def report(data: dict, count: int, wall: float) -> str:
    legal, rows = data["legal"], data["rows"]
    n = len(legal)
    lines = [
        "## LVIS evaluators on awkward small cases (`benchmarks/awkward_cases.py`)",
        "",
        f"{count} seeded cases from `tests/lvis_cases.make_case` (seeds 0-{count - 1}: 2-6 "
        "small images, 3-8 categories; empty masks, zero-size boxes, boxes across the border, "
        ">300 detections per image, tied scores, duplicates, negative / not-exhaustive / "
        "unverified categories) plus the issue's case (a), one GT box and an empty-mask, "
        "[50, 50, 0, 5]-box detection at 0.95 above the right one at 0.90 (LVISEval AP 1.0): "
        f"{n} legal cases. Each is written as GT and results JSON and evaluated from the two "
        'paths: the kit as `evaluate(gt, results, iou_types=(T,), backend="fast", '
        "fixed=False)`, the peers by their LVIS modes as `benchmarks/eval_scale.py` runs them "
        "(its `_run_*` functions, in one process here). Equal: all 13 metrics within "
        f"{TOLERANCE:g} of the official `LVISResults` + `LVISEval` "
        "(`lvis_cases.reference_metrics`); a tool that raises is not equal. segm rule: the "
        "kit is compared under the **mask rule** (results' `bbox` dropped, areas from the "
        "masks: the kit's default, as detectron2), the peers under the **box rule** (raw "
        "LVISEval on the records as written and as given to them: a record's area from its "
        "`bbox`, as `loadRes` does); the peers' count under the mask rule is in brackets.",
        "",
        "| tool | bbox equal | segm equal | errors | illegal files (b, c) rejected |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    failures = {}  # (iou_type, failure text) -> tools, so that tools failing alike share a line
    for tool in TOOLS:
        equal = {t: sum(rows[c, tool, t]["diff"] is None for c in legal) for t in IOU_TYPES}
        segm = f"{equal['segm']}/{n} ({'mask' if tool == 'kit' else 'box'} rule"
        if tool != "kit":
            segm += f"; mask rule {sum(rows[c, tool, 'segm']['diff_mask'] is None for c in legal)}"
        segm += ")"
        errors = [
            rows[c, tool, t]["run"]["error"]
            for c in legal
            for t in IOU_TYPES
            if "error" in rows[c, tool, t]["run"]
        ]
        error_cell = str(len(errors))
        if errors:
            kinds = sorted(set(errors))
            error_cell += ": " + "; ".join(f"`{e}`" for e in kinds[:2])
            error_cell += f" (+{len(kinds) - 2} other)" if len(kinds) > 2 else ""
        bad = [data["illegal_rows"][c, tool, t] for c in data["illegal"] for t in IOU_TYPES]
        rejected = f"{sum('error' in run for run in bad)}/{len(bad)}"
        lines.append(
            f"| {_tool_label(tool)} | {equal['bbox']}/{n} | {segm} | {error_cell} | {rejected} |"
        )
        for iou_type in IOU_TYPES:
            failed = [
                f"{c} ({_failure(rows[c, tool, iou_type]['diff'])})"
                for c in legal
                if rows[c, tool, iou_type]["diff"] is not None
            ]
            if failed:
                failures.setdefault((iou_type, "; ".join(failed)), []).append(tool)
    lines += [
        "",
        "Illegal files (repeated / zero annotation ids; not counted above): AP per tool; "
        "`(= LVISEval)` when all 13 metrics equal LVISEval's (segm: the rules as above).",
        "",
        "| tool | " + " | ".join(f"{c} {t}" for c in data["illegal"] for t in IOU_TYPES) + " |",
        "| --- |" + " --- |" * (len(data["illegal"]) * len(IOU_TYPES)),
    ]
    for tool in ("LVISEval", *TOOLS):
        cells = []
        for case in data["illegal"]:
            for iou_type in IOU_TYPES:
                run = data["illegal_rows"][case, tool, iou_type]
                if tool == "LVISEval":
                    cells.append(f"AP {run['metrics']['AP']:.4f}")
                else:
                    cells.append(_illegal_cell(run))
        label = "LVISEval (official)" if tool == "LVISEval" else _tool_label(tool)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Failures on legal cases (the worst metric, the tool's vs LVISEval's; tools that fail "
        "alike share a line):",
        "",
    ]
    lines += [
        f"- {', '.join(tools)} {iou_type}: {text}"
        for (iou_type, text), tools in sorted(failures.items())
    ] or ["- none"]
    timing = ", ".join(f"{tool} {data['seconds'][tool]:.1f}" for tool in TOOLS)
    lines += [
        "",
        f"Wall time {wall:.1f} s in all (tools' evaluations, s: {timing}; LVISEval references "
        f"{data['ref_seconds']:.1f}). Machine: {eval_scale._machine()}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=18, help="seeds 0..N-1 (default 18)")
    parser.add_argument(
        "--write", action="store_true", help=f"write the {SECTION!r} section of RESULTS.md"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    data = evaluate_all(args.cases)
    section = report(data, args.cases, time.perf_counter() - start)
    print(section)
    if args.write:
        from _results import write_section

        write_section(SECTION, section)


if __name__ == "__main__":
    main()
