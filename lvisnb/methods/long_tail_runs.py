"""The runs of notebook 05's comparison: every arm and seed, under one of two protocols.

An *arm* (:class:`lvisnb.methods.long_tail_summary.Arm`) is a sampler and a box-classification
loss: ``uniform+ce`` (no re-sampling), ``rfs+ce`` (repeat-factor sampling, the LVIS baseline,
:data:`lvisnb.methods.long_tail_summary.BASELINE`), and ``rfs+seesaw``, ``rfs+eqlv2``,
``rfs+federated`` (RFS with each loss of :mod:`lvisnb.model.losses`); :func:`arms` lists them.
Each arm runs with several seeds, each (arm, seed) into its own run directory
``run_dir/long_tail/<protocol>/<sampler>_<method>_seed<k>/`` holding ``metrics.json``
(:func:`lvisnb.evaluation.report.save_metrics`) and ``config.json`` (sections ``train``,
``preset``, ``resolved`` as :func:`lvisnb.engine.trainer.train` writes them), so
:func:`lvisnb.methods.ranking.leaderboard` reads every run, whichever protocol made it.

- ``"decoupled"`` (:func:`prepare_decoupled`, :func:`run_decoupled`): the box classifier alone
  is retrained on RoI features cached once from a trained model
  (:mod:`lvisnb.methods.decoupled_features`, :mod:`lvisnb.methods.decoupled_retraining`,
  :mod:`lvisnb.methods.decoupled_scoring`; cRT / BAGS); box AP, and mask AP from the model's
  frozen mask head (one pass for all runs). Minutes on a CPU.
- ``"end_to_end"`` (:func:`run_end_to_end`): every (arm, seed) trains the whole Mask R-CNN
  with :func:`lvisnb.engine.trainer.train`, then runs inference and box + mask evaluation. Hours on
  a CPU for toy-LVIS; the seed presets need a GPU.

:mod:`lvisnb.methods.long_tail_summary` compares the runs (paired differences against the
baseline, tables, verdicts, the summary file).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from lvisnb.data.dataset import LVISDetection
from lvisnb.engine.device import resolve_device
from lvisnb.engine.inference import predict, save_results
from lvisnb.engine.model_source import checkpoint_path, load_model, load_trained_model
from lvisnb.engine.trainer import train
from lvisnb.evaluation.evaluator import evaluate
from lvisnb.evaluation.ground_truth import GroundTruth, load_ground_truth
from lvisnb.evaluation.report import save_metrics
from lvisnb.files import check_output, write_text_atomic
from lvisnb.methods.decoupled_features import RoIFeatures, cached_roi_features
from lvisnb.methods.decoupled_retraining import retrain_classifier
from lvisnb.methods.decoupled_scoring import segment_val, val_detections, val_records
from lvisnb.methods.long_tail_summary import (
    BASELINE,
    DEFAULT_ITERATIONS,
    PROTOCOLS,
    Arm,
    json_ready,
)
from lvisnb.methods.ranking import read_run
from lvisnb.model.losses import CLS_LOSSES
from lvisnb.model.mmdet_zoo import PUBLISHED
from lvisnb.model.presets import Preset

__all__ = [
    "Decoupled",
    "RunDone",
    "arms",
    "prepare_decoupled",
    "run_decoupled",
    "run_end_to_end",
    "runs_table",
    "subset_ground_truth",
]

FOLDER = "long_tail"  # under run_dir: caches and one run directory per (arm, seed)


def arms(methods: str | Sequence[str], uniform: bool = True) -> list[Arm]:
    """``uniform+ce`` (when ``uniform``), then ``rfs+<method>`` for each of ``methods`` (a
    comma-separated string or a list; each a loss of :data:`lvisnb.model.losses.CLS_LOSSES`).
    ``ValueError`` for an unknown loss, and for a comparison without
    :data:`~lvisnb.methods.long_tail_summary.BASELINE` (``methods`` must hold ``ce``) or without
    a second arm to compare with it: checked here, before any run trains, rather than after all
    of them."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else methods
    names = list(dict.fromkeys(m for m in names if m))
    unknown = [m for m in names if m not in CLS_LOSSES]
    if unknown or not names:
        raise ValueError(f"methods must be taken from {sorted(CLS_LOSSES)}, got {names}")
    arm_list = ([Arm("uniform", "ce")] if uniform else []) + [Arm("rfs", m) for m in names]
    if BASELINE not in arm_list or len(arm_list) < 2:
        raise ValueError(
            f"every arm is compared with {BASELINE.name}: methods must include "
            f"{BASELINE.method!r} and one more arm (another loss, or uniform=True); got "
            f"{[a.name for a in arm_list]}"
        )
    return arm_list


@dataclass
class RunDone:
    """One (arm, seed) run: where it is, how long it took, whether an earlier one was reused."""

    arm: Arm
    seed: int
    run_dir: Path
    seconds: float
    reused: bool = False
    loss_first: float | None = None  # decoupled: the classifier's first and last loss
    loss_last: float | None = None
    shared_seconds: float = 0.0  # decoupled: its share of the one mask pass (in seconds)


def runs_table(done: Sequence[RunDone]) -> pd.DataFrame:
    """One row per run: arm, seed, seconds, reused, and the decoupled classifier's first and
    last loss (NaN end to end)."""
    return pd.DataFrame(
        [
            {
                "arm": r.arm.name,
                "seed": r.seed,
                "seconds": r.seconds,
                "reused": r.reused,
                "loss first": r.loss_first,
                "loss last": r.loss_last,
            }
            for r in done
        ]
    ).astype({"loss first": float, "loss last": float})


def subset_ground_truth(dataset) -> dict:
    """The LVIS dict of ``dataset``'s images only (an :class:`lvisnb.data.dataset.LVISDetection`
    whose ``image_ids`` were cut): what evaluation must score a subset against."""
    data = dataset.lvis.dataset
    keep = set(dataset.image_ids)
    return {
        **data,
        "images": [i for i in data["images"] if i["id"] in keep],
        "annotations": [a for a in data["annotations"] if a["image_id"] in keep],
    }


def _first_images(dataset, count: int | None):
    """``dataset`` cut to its first ``count`` images by id (``None``: all of them)."""
    if count is not None:
        if count < 1:
            raise ValueError(f"the number of images must be >= 1, got {count}")
        dataset.image_ids = dataset.image_ids[:count]
    return dataset


def _is_our_config(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("protocol") in PROTOCOLS
    except (OSError, ValueError, AttributeError):
        return False


def _write_config(run_dir: Path, config: dict) -> Path:
    """``run_dir/config.json``, refusing a file the kit did not write there."""
    path = check_output(run_dir / "config.json", written_by_kit=_is_our_config, what="run config")
    return write_text_atomic(path, json.dumps(json_ready(config), indent=1))


# ----------------------------------------------------------------------------- decoupled


@dataclass
class Decoupled:
    """What :func:`prepare_decoupled` returns: the cached RoIs and what scoring needs."""

    train: RoIFeatures  # of the train images
    val: RoIFeatures  # of the val images
    preset: Preset  # the checkpoint's
    ground_truth: GroundTruth  # of the val images scored
    checkpoint: Path
    seconds: float  # loading the model and extracting (or reading) the features
    reused: bool  # both caches were read, nothing extracted
    model: nn.Module | None = None  # the checkpoint's Mask R-CNN (eval mode), for its mask head
    val_dataset: LVISDetection | None = None  # the val images scored

    def describe(self) -> str:
        how = "read from the cache" if self.reused else "extracted"
        return (
            f"{len(self.train.features):,} train RoIs of {self.train.num_images:,} images "
            f"({int((self.train.labels > 0).sum()):,} foreground), "
            f"{len(self.val.features):,} val RoIs of {self.val.num_images:,} images, "
            f"{self.train.num_classes} classes, D = {self.train.features.shape[1]}; {how} in "
            f"{self.seconds:.1f} s from {self.checkpoint}"
        )


def prepare_decoupled(
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike,
    train_ann: str | os.PathLike,
    val_ann: str | os.PathLike,
    train_root: str | os.PathLike,
    val_root: str | os.PathLike,
    *,
    train_images: int | None = None,
    val_images: int | None = None,
    rois_per_image: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> Decoupled:
    """Load ``checkpoint`` and cache its RoI features of the train images (``train_images``
    first by id; ``None``: all with annotations) and of the val images (``val_images``) in
    ``out_dir/long_tail/decoupled/roi_features_{train,val}.pt``, or read the caches made from
    the same checkpoint bytes (:func:`lvisnb.methods.decoupled_features.cached_roi_features`)."""
    started = time.perf_counter()
    if not Path(checkpoint).is_file() and str(checkpoint) not in PUBLISHED:
        raise FileNotFoundError(
            f"no checkpoint at {checkpoint}: run notebook 02 into this run_dir first, or pass "
            "checkpoint (a kit or mmdetection checkpoint file, or a published model's name)"
        )
    checkpoint = checkpoint_path(checkpoint, progress)  # a published name: its cached file
    model, mapping = load_model(checkpoint, device=resolve_device(device))
    train = _first_images(
        LVISDetection(train_ann, train_root, mapping=mapping, skip_empty=True), train_images
    )
    val = _first_images(LVISDetection(val_ann, val_root, mapping=mapping), val_images)
    if not any(val.lvis.img_ann_map.get(i) for i in val.image_ids):
        raise ValueError(
            f"{val_ann}: the {len(val.image_ids)} val images scored have no annotations, so "
            "no AP can be computed; pass other val images (val_ann, val_images)"
        )
    cache = Path(out_dir) / FOLDER / "decoupled"
    common = {"rois_per_image": rois_per_image, "progress": progress}
    train_rois, reused_train = cached_roi_features(
        cache / "roi_features_train.pt", model, train, checkpoint, train=True, **common
    )
    val_rois, reused_val = cached_roi_features(
        cache / "roi_features_val.pt", model, val, checkpoint, train=False, **common
    )
    truth = load_ground_truth(subset_ground_truth(val) if val_images else val_ann)
    seconds = time.perf_counter() - started
    reused = reused_train and reused_val
    return Decoupled(
        train_rois, val_rois, model.preset, truth, checkpoint, seconds, reused, model, val
    )


def _decoupled_config(data: Decoupled, settings: dict, loss: list[float]) -> dict:
    """config.json of a decoupled run, in :func:`lvisnb.engine.trainer.train`'s sections."""
    preset = dataclasses.replace(
        data.preset, cls_loss=settings["method"], num_classes=data.train.num_classes
    )
    resolved = {
        "sampler": settings["sampler"],
        "rfs_threshold": settings["rfs_threshold"],
        "rfs_rounding": settings["rfs_rounding"],
        "max_iters": settings["iterations"],
        "lr": settings["lr"],
        "images_per_batch": settings["images_per_batch"],
        "checkpoint": str(data.checkpoint),
        "train_images": data.train.num_images,
        "val_images": data.val.num_images,
        "category_ids": data.train.category_ids,
    }
    return {
        "protocol": "decoupled",
        "train": {"preset": preset.name, "seed": settings["seed"], "sampler": settings["sampler"]},
        "preset": dataclasses.asdict(preset),
        "resolved": resolved,
        "classifier": {"loss_first": loss[0], "loss_last": loss[-1], "recipe": settings},
    }


def run_decoupled(
    data: Decoupled,
    arm_list: Iterable[Arm],
    seeds: Iterable[int],
    iterations: int | None,
    out_dir: str | os.PathLike,
    masks: bool = True,
    progress: bool = True,
) -> list[RunDone]:
    """Retrain, score and evaluate the classifier of every arm and seed on ``data``.

    Each run: :func:`lvisnb.methods.decoupled_retraining.retrain_classifier` for
    ``iterations`` steps (``None``: :data:`~lvisnb.methods.long_tail_summary.DEFAULT_ITERATIONS`)
    and :func:`lvisnb.methods.decoupled_scoring.val_detections`. With ``masks``, one pass of the
    model's frozen mask head over the val images then segments the detections of every run at
    once (:func:`lvisnb.methods.decoupled_scoring.segment_val`), and each run is evaluated for
    box and mask AP; else box AP only. ``metrics.json`` and ``config.json`` go to
    ``out_dir/long_tail/decoupled/<sampler>_<method>_seed<k>/`` (replacing an earlier run's).
    A run's ``seconds`` are its retraining, scoring and evaluation plus an equal share of the
    mask pass. ``ValueError`` when a run keeps no val detection (train it longer).
    """
    if masks and (data.model is None or data.val_dataset is None):
        raise ValueError(
            "masks need the model and the val dataset (Decoupled.model, .val_dataset, which "
            "prepare_decoupled sets); pass masks=False for box AP only"
        )
    iterations = DEFAULT_ITERATIONS if iterations is None else iterations
    seeds = list(seeds)  # an iterator would give its seeds to the first arm only
    jobs = [(arm, seed) for arm in arm_list for seed in seeds]
    fits, found, seconds = [], [], []
    for arm, seed in tqdm(jobs, desc="decoupled runs", disable=not progress):
        started = time.perf_counter()
        fit = retrain_classifier(
            data.train, arm.method, arm.sampler, seed, iterations, preset=data.preset
        )
        fits.append(fit)
        found.append(val_detections(fit.classifier, fit.cls_loss, data.val))
        if not sum(len(f["boxes"]) for f in found[-1]):
            raise ValueError(
                f"{arm.name}, seed {seed}: no val RoI scores above the threshold "
                f"({data.val.meta['score_thresh']}); train the classifier longer (iterations)"
            )
        seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    segmentations = (
        segment_val(data.model, data.val_dataset, data.val, found, progress=progress)
        if masks
        else [None] * len(jobs)
    )
    shared = (time.perf_counter() - started) / max(len(jobs), 1)
    done = []
    runs = zip(jobs, fits, found, segmentations, seconds, strict=True)
    for (arm, seed), fit, dets, segm, own in tqdm(
        runs, total=len(jobs), desc="evaluating runs", disable=not progress
    ):
        started = time.perf_counter()
        run_dir = Path(out_dir) / FOLDER / "decoupled" / arm.run_name(seed)
        _evaluate_run(data, run_dir, val_records(data.val, dets, segm), masks)
        _write_config(run_dir, _decoupled_config(data, fit.settings, fit.losses))
        own += shared + time.perf_counter() - started
        losses = fit.losses[0], fit.losses[-1]
        done.append(RunDone(arm, seed, run_dir, own, False, *losses, shared_seconds=shared))
    return done


def _evaluate_run(data: Decoupled, run_dir: Path, records: list[dict], masks: bool) -> None:
    """Box (and mask) AP of one decoupled run's records into ``run_dir/metrics.json``."""
    iou_types = ("bbox", "segm") if masks else ("bbox",)
    save_metrics(
        run_dir / "metrics.json", evaluate(data.ground_truth, records, iou_types=iou_types)
    )


# ----------------------------------------------------------------------------- end to end


def _finished(run_dir: Path, arm: Arm, seed: int, iterations: int | None) -> bool:
    """Whether ``run_dir`` holds an evaluated run of ``arm`` and ``seed`` (and ``iterations``)."""
    try:
        row = read_run(run_dir)
    except (FileNotFoundError, ValueError):
        return False
    same = (row["method"], row["sampler"], row["seed"]) == (arm.method, arm.sampler, seed)
    return same and (iterations is None or row["iterations"] == iterations)


def run_end_to_end(
    template,
    arm_list: Iterable[Arm],
    seeds: Iterable[int],
    val_ann: str | os.PathLike,
    val_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    val_images: int | None = None,
    progress: bool = True,
) -> list[RunDone]:
    """Train, run and evaluate (box and mask AP) Mask R-CNN for every arm and seed.

    ``template``: a :class:`lvisnb.engine.config.TrainConfig` (preset, data, device, batch size,
    ``max_iters``, ``overwrite``...); each run replaces its ``run_dir``
    (``out_dir/long_tail/end_to_end/<sampler>_<method>_seed<k>/``), ``sampler``, ``seed`` and
    ``overrides["cls_loss"]``. Then the run's ``checkpoints/final.pt`` predicts the val images
    (``val_images`` first by id; ``None``: all) into ``results.json``, evaluated into
    ``metrics.json``. A run directory that already holds an evaluated run of the same arm,
    seed and ``max_iters`` is reused (unless ``template.overwrite``), so a comparison that was
    stopped continues with the runs it had not finished (a run stopped half-way is refused by
    :func:`lvisnb.engine.trainer.train`: pass ``overwrite``).
    """
    truth = None
    done = []
    seeds = list(seeds)  # an iterator would give its seeds to the first arm only
    for arm in arm_list:
        for seed in seeds:
            started = time.perf_counter()
            run_dir = Path(out_dir) / FOLDER / "end_to_end" / arm.run_name(seed)
            if not template.overwrite and _finished(run_dir, arm, seed, template.max_iters):
                done.append(RunDone(arm, seed, run_dir, 0.0, reused=True))
                continue
            config = dataclasses.replace(
                template,
                run_dir=str(run_dir),
                sampler=arm.sampler,
                seed=seed,
                overrides={**template.overrides, "cls_loss": arm.method},
                progress=progress,
            )
            result = train(config)
            model, mapping = load_trained_model(result.checkpoint, resolve_device(config.device))
            val = _first_images(LVISDetection(val_ann, val_root, mapping=mapping), val_images)
            save_results(run_dir / "results.json", predict(model, val, mapping, progress=progress))
            if truth is None:
                truth = load_ground_truth(subset_ground_truth(val) if val_images else val_ann)
            save_metrics(
                run_dir / "metrics.json", evaluate(truth, run_dir / "results.json"), overwrite=True
            )
            done.append(RunDone(arm, seed, run_dir, time.perf_counter() - started))
    return done
