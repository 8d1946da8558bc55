"""What an :class:`~lvisnb.evaluation.outcome.Evaluation` says, as text and files: the metrics
table (:func:`format_summary`), ``metrics.json`` (:func:`save_metrics`), the per-category CSV
(:func:`save_per_category`) and a run directory's ``evaluation.json`` headline
(:func:`write_evaluation_summary`, notebook 03). Every file is written atomically, never over an
input or a file the kit did not write (:mod:`lvisnb.files`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lvisnb import files as outputs
from lvisnb.evaluation.outcome import SEGM_AREA_RULES, Evaluation

EVALUATION_FILE = "evaluation.json"
# the keys that make a JSON object the kit's evaluation summary (written by every version)
EVALUATION_KEYS = ("ann_file", "results_file", "backend", "inference_seconds")


def _inputs(evaluation: Evaluation) -> list[str]:
    info = evaluation.info
    return [info["gt"], info["results"], *([info["train_ann"]] if info.get("train_ann") else [])]


def save_metrics(path: str | os.PathLike, evaluation: Evaluation, overwrite: bool = False) -> Path:
    """Write ``evaluation.to_dict()`` as JSON (``metrics.json``), atomically; returns the path.

    Raises ``FileExistsError`` when ``path`` is one of the evaluation's input files, or an
    existing file that is not a metrics file the kit wrote (unless ``overwrite``; see
    :mod:`lvisnb.files`)."""
    path = outputs.check_output(
        path,
        _inputs(evaluation),
        written_by_kit=outputs.is_metrics_file,
        overwrite=overwrite,
        what="metrics file",
    )
    text = json.dumps(evaluation.to_dict(), indent=1, default=_json_default)
    return outputs.write_text_atomic(path, text)


def save_per_category(
    path: str | os.PathLike, evaluation: Evaluation, overwrite: bool = False
) -> Path:
    """Write ``evaluation.per_category`` as CSV, atomically; refuses paths as
    :func:`save_metrics` (an existing file must be a per-category CSV the kit wrote)."""
    path = outputs.check_output(
        path,
        _inputs(evaluation),
        written_by_kit=outputs.is_per_category_csv,
        overwrite=overwrite,
        what="per-category table",
    )
    return outputs.write_text_atomic(path, evaluation.per_category.to_csv(index=False))


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_summary(evaluation: Evaluation) -> str:
    """The metrics table as text (4 decimals), with a line on what was evaluated."""
    info = evaluation.info
    lines = [
        f"{info['results']} vs {info['gt']} ({info['backend']} backend): "
        f"{info['num_detections']} detections, {info['num_verified_detections']} on verified "
        f"categories within the {info['max_dets_per_image']}-per-image limit"
    ]
    zero = {t: n for t, n in info["zero_area_detections"].items() if n}
    if zero or info["zero_area_gt"]:
        lines.append(
            "not evaluated (area 0, as LVISEval): "
            + ", ".join(f"{n} {t} results" for t, n in zero.items())
            + (", " if zero else "")
            + f"{info['zero_area_gt']} GT instances"
        )
    if "segm" in info["iou_types"]:
        lines.append(SEGM_AREA_RULES[info["segm_area"]])
    summary = evaluation.summary()
    table = summary.to_string(float_format=_metric_text)
    undefined = bool((summary == -1).to_numpy().any())
    lines += [table] + ["– : no ground truth in the group (LVIS's -1)"] * undefined
    return "\n".join(lines + _interval_lines(evaluation))


def _interval_lines(evaluation: Evaluation) -> list[str]:
    """The bootstrap intervals as a table (``[low, high]`` per metric and IoU type), if any."""
    if evaluation.intervals is None:
        return []
    settings = evaluation.info["bootstrap"]
    bias = settings.get("bias", {})
    table = pd.DataFrame(
        {
            iou_type: {
                name: f"[{pair[0]:.4f}, {pair[1]:.4f}] bias {bias[iou_type][name]:+.4f}"
                if pair
                else "–"
                for name, pair in values.items()
            }
            for iou_type, values in evaluation.intervals.items()
        }
    )
    return [
        f"{settings['confidence']:.0%} bootstrap intervals (percentile; {settings['replicates']} "
        f"resamples of the images, seed {settings['seed']}; bias: mean of the resamples minus "
        "the estimate; resampled AP runs high, see lvisnb.evaluation.bootstrap):",
        table.to_string(),
    ]


def _metric_text(value: float) -> str:
    """A metric to 4 decimals; LVIS's -1 (undefined: no GT in the group) as an en dash."""
    return "–" if value == -1 else f"{value:.4f}"


SUMMARY_METRICS = ("AP", "APr", "APc", "APf")  # per IoU type in evaluation.json
_IOU_NAMES = {"bbox": "box", "segm": "mask"}


def evaluation_summary(evaluation: Evaluation, inference_seconds: float | None = None) -> dict:
    """The headline of an :class:`lvisnb.evaluation.outcome.Evaluation`: ``ann_file`` and
    ``results_file`` (the paths evaluated), ``backend``, ``inference_seconds`` (seconds the model
    took to write the results; ``None`` when an existing results file was evaluated), and for each
    evaluated IoU type ``box`` (bbox) / ``mask`` (segm): ``{"AP", "APr", "APc", "APf"}`` as in
    ``metrics.json`` (-1 where undefined, LVIS's convention)."""
    info = evaluation.info
    summary = {
        "ann_file": str(info["gt"]),
        "results_file": str(info["results"]),
        "backend": info["backend"],
        "inference_seconds": inference_seconds,
    }
    for iou_type, values in evaluation.metrics.items():
        summary[_IOU_NAMES[iou_type]] = {k: float(values[k]) for k in SUMMARY_METRICS}
    return summary


def write_evaluation_summary(
    run_dir: str | os.PathLike,
    evaluation: Evaluation,
    inference_seconds: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`evaluation_summary` to ``run_dir/evaluation.json``, atomically; returns its
    path. ``FileExistsError`` when that file exists and is not a summary the kit wrote (unless
    ``overwrite``)."""
    path = outputs.check_output(
        Path(run_dir) / EVALUATION_FILE,
        written_by_kit=lambda p: outputs.is_json_object_with(p, EVALUATION_KEYS),
        overwrite=overwrite,
        what="summary of an evaluation",
    )
    summary = evaluation_summary(evaluation, inference_seconds)
    return outputs.write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
