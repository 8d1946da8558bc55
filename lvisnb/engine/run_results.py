"""The results notebooks 03 and 04 evaluate and draw: a results file as it is, or a model run
over an LVIS split into ``run_dir/results.json`` (:func:`results_for_evaluation`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

from lvisnb.data.dataset import LVISDetection
from lvisnb.engine.device import resolve_device
from lvisnb.engine.inference import is_saved_results, predict, save_results
from lvisnb.engine.model_source import load_model
from lvisnb.files import check_output
from lvisnb.model.mmdet_zoo import PUBLISHED

__all__ = ["RESULTS_FILE", "DEFAULT_CHECKPOINT", "ResultsFile", "results_for_evaluation"]


RESULTS_FILE = "results.json"  # what results_for_evaluation writes into a run directory
DEFAULT_CHECKPOINT = "checkpoints/final.pt"  # under run_dir: what notebook 02 trains


class ResultsFile(NamedTuple):
    """What :func:`results_for_evaluation` returns."""

    path: Path  # the LVIS results JSON to evaluate
    seconds: float | None  # model loading + inference + writing, s; None: an existing file
    description: str  # one line saying where the results came from


def results_for_evaluation(
    run_dir: str | os.PathLike,
    ann_path: str | os.PathLike,
    image_root: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    results_file: str | os.PathLike | None = None,
    device: str = "auto",
    max_dets: int | None = None,
    progress: bool = True,
    preset: str | None = None,
) -> ResultsFile:
    """The LVIS results file to evaluate on ``ann_path``: ``results_file`` as it is, or the
    predictions of a trained model written to ``run_dir/results.json``.

    With ``results_file`` nothing runs (``seconds`` is ``None``). Otherwise the model of
    ``checkpoint`` (``None``: ``run_dir/checkpoints/final.pt``, notebook 02's; or an mmdetection
    checkpoint file, whose ``preset`` is named when its file name does not say, or the name of
    a published model: :func:`lvisnb.engine.model_source.load_model`) runs on
    ``device`` (``"auto"``: cuda when available) over every image of ``ann_path`` (images
    under ``image_root``), keeping ``max_dets`` detections per image (``None``: the preset's,
    see :func:`predict`), and ``seconds`` is the wall-clock time of loading, inference and
    writing.

    Raises ``ValueError`` when both ``checkpoint`` and ``results_file`` are given,
    ``FileNotFoundError`` naming a missing ``results_file`` or checkpoint, and
    ``FileExistsError`` when ``run_dir/results.json`` exists and was not written by
    :func:`save_results` (a user's file is never replaced), besides what
    :func:`lvisnb.engine.model_source.load_model` and :func:`predict` raise.
    """
    if results_file is not None:
        if checkpoint is not None:
            raise ValueError(
                "give checkpoint (run the model) or results_file (evaluate it), not both"
            )
        path = Path(results_file)
        if not path.is_file():
            raise FileNotFoundError(f"results_file not found: {path}")
        return ResultsFile(path, None, f"existing results {path}")
    weights = Path(checkpoint) if checkpoint is not None else Path(run_dir) / DEFAULT_CHECKPOINT
    if not weights.is_file() and str(checkpoint) not in PUBLISHED:
        raise FileNotFoundError(
            f"no checkpoint at {weights}: train one (notebook 02 into this run_dir), or pass "
            "checkpoint or results_file"
        )
    path = check_output(
        Path(run_dir) / RESULTS_FILE,
        [ann_path, *([weights] if weights.is_file() else [])],
        written_by_kit=is_saved_results,
        what="results file",
    )
    started = time.perf_counter()
    model, mapping = load_model(weights, preset, device=resolve_device(device))
    dataset = LVISDetection(ann_path, image_root, mapping=mapping)
    records = predict(model, dataset, mapping, max_dets=max_dets, progress=progress)
    count = save_results(path, records)
    seconds = time.perf_counter() - started
    description = (
        f"{count:,} detections on {len(dataset):,} images from {weights} in {seconds:.1f} s"
    )
    return ResultsFile(path, seconds, description)
