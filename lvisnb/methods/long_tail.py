"""What helps the rare categories: the comparison of notebook 05, under two protocols.

An *arm* is a sampler and a box-classification loss: ``uniform+ce`` (no re-sampling),
``rfs+ce`` (repeat-factor sampling, the LVIS baseline, :data:`BASELINE`), and ``rfs+seesaw``,
``rfs+eqlv2``, ``rfs+federated`` (RFS with each loss of :mod:`lvisnb.model.losses`). Each arm runs
with several seeds, each (arm, seed) into its own run directory
``run_dir/long_tail/<protocol>/<sampler>_<method>_seed<k>/`` holding ``metrics.json``
(:func:`lvisnb.evaluation.evaluate.save_metrics`) and ``config.json`` (sections ``train``,
``preset``, ``resolved`` as :func:`lvisnb.engine.train.train` writes them), so
:func:`lvisnb.methods.leaderboard.leaderboard` reads every run, whichever protocol made it.

- ``"decoupled"`` (:func:`run_decoupled`): the box classifier alone is retrained on RoI
  features cached once from a trained model (:mod:`lvisnb.methods.decoupled`, cRT / BAGS); box AP,
  and mask AP from the model's frozen mask head (one pass for all runs). Minutes on a CPU.
- ``"end_to_end"`` (:func:`run_end_to_end`): every (arm, seed) trains the whole Mask R-CNN
  with :func:`lvisnb.engine.train.train`, then runs inference and box + mask evaluation. Hours on a
  CPU for toy-LVIS; the seed presets need a GPU.

:func:`paired_differences` compares each arm with :data:`BASELINE` seed by seed: the same
seed pairs the two runs, the difference is taken per seed and its mean gets a 95% Student-t
interval over the seeds (:func:`lvisnb.methods.leaderboard.t975`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lvisnb.files import check_output, write_text_atomic
from lvisnb.methods.leaderboard import IOU_PREFIX, METRICS, read_run, t975

__all__ = [
    "BASELINE",
    "Arm",
    "Decoupled",
    "RunDone",
    "arms",
    "difference_table",
    "differences_from_summary",
    "format_interval",
    "interval_table",
    "metric_columns",
    "paired_differences",
    "prepare_decoupled",
    "run_decoupled",
    "run_end_to_end",
    "runs_table",
    "subset_ground_truth",
    "verdicts",
    "with_arm",
    "write_summary",
]

PROTOCOLS = ("decoupled", "end_to_end")
SUMMARY_FILE = "long_tail_methods.json"
FOLDER = "long_tail"  # under run_dir: caches and one run directory per (arm, seed)
DEFAULT_ITERATIONS = 1000  # classifier steps per decoupled run (parameter iterations=None)


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


def arms(methods: str | Sequence[str], uniform: bool = True) -> list[Arm]:
    """``uniform+ce`` (when ``uniform``), then ``rfs+<method>`` for each of ``methods`` (a
    comma-separated string or a list; each a loss of :data:`lvisnb.model.losses.CLS_LOSSES`).
    ``ValueError`` for an unknown loss, and for a comparison without :data:`BASELINE`
    (``methods`` must hold ``ce``) or without a second arm to compare with it: checked here,
    before any run trains, rather than after all of them."""
    from lvisnb.model.losses import CLS_LOSSES

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


def metric_columns(protocol: str, masks: bool = True) -> list[str]:
    """Leaderboard columns a protocol fills: box AP..APf, then mask AP..APf (end to end, and
    decoupled with ``masks``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    with_masks = masks or protocol == "end_to_end"
    prefixes = list(IOU_PREFIX.values()) if with_masks else ["box"]
    return [f"{p}_{m}" for p in prefixes for m in METRICS]


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


def _plain(value):
    """JSON-ready: NaN -> None, numpy scalars -> Python, tuples -> lists, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _is_our_config(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("protocol") in PROTOCOLS
    except (OSError, ValueError, AttributeError):
        return False


def _write_config(run_dir: Path, config: dict) -> Path:
    """``run_dir/config.json``, refusing a file the kit did not write there."""
    path = check_output(run_dir / "config.json", written_by_kit=_is_our_config, what="run config")
    return write_text_atomic(path, json.dumps(_plain(config), indent=1))


# ----------------------------------------------------------------------------- decoupled


@dataclass
class Decoupled:
    """What :func:`prepare_decoupled` returns: the cached RoIs and what scoring needs."""

    train: object  # lvisnb.methods.decoupled.RoIFeatures of the train images
    val: object  # lvisnb.methods.decoupled.RoIFeatures of the val images
    preset: object  # the checkpoint's lvisnb.model.builder.Preset
    ground_truth: object  # lvisnb.evaluation.ground_truth.GroundTruth of the val images scored
    checkpoint: Path
    seconds: float  # loading the model and extracting (or reading) the features
    reused: bool  # both caches were read, nothing extracted
    model: object = None  # the checkpoint's Mask R-CNN (eval mode): its mask head segments
    val_dataset: object = None  # lvisnb.data.dataset.LVISDetection of the val images scored

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
    the same checkpoint bytes (:func:`lvisnb.methods.decoupled.cached_roi_features`)."""
    from lvisnb.data.dataset import LVISDetection
    from lvisnb.engine.device import resolve_device
    from lvisnb.engine.inference import load_trained_model
    from lvisnb.evaluation.ground_truth import load_ground_truth
    from lvisnb.methods.decoupled import cached_roi_features

    started = time.perf_counter()
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {checkpoint}: run notebook 02 into this run_dir first, or pass "
            "checkpoint"
        )
    model, mapping = load_trained_model(checkpoint, device=resolve_device(device))
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
    """config.json of a decoupled run, in :func:`lvisnb.engine.train.train`'s sections."""
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

    Each run: :func:`lvisnb.methods.decoupled.retrain_classifier` for ``iterations`` steps
    (``None``: :data:`DEFAULT_ITERATIONS`) and :func:`lvisnb.methods.decoupled.val_detections`. With
    ``masks``, one pass of the model's frozen mask head over the val images then segments the
    detections of every run at once (:func:`lvisnb.methods.decoupled.segment_val`), and each run is
    evaluated for box and mask AP; else box AP only. ``metrics.json`` and ``config.json`` go to
    ``out_dir/long_tail/decoupled/<sampler>_<method>_seed<k>/`` (replacing an earlier run's).
    A run's ``seconds`` are its retraining, scoring and evaluation plus an equal share of the
    mask pass. ``ValueError`` when a run keeps no val detection (train it longer).
    """
    from tqdm.auto import tqdm

    from lvisnb.methods.decoupled import (
        retrain_classifier,
        segment_val,
        val_detections,
        val_records,
    )

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
    from lvisnb.evaluation.evaluate import evaluate, save_metrics

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

    ``template``: a :class:`lvisnb.engine.train.TrainConfig` (preset, data, device, batch size,
    ``max_iters``, ``overwrite``...); each run replaces its ``run_dir``
    (``out_dir/long_tail/end_to_end/<sampler>_<method>_seed<k>/``), ``sampler``, ``seed`` and
    ``overrides["cls_loss"]``. Then the run's ``checkpoints/final.pt`` predicts the val images
    (``val_images`` first by id; ``None``: all) into ``results.json``, evaluated into
    ``metrics.json``. A run directory that already holds an evaluated run of the same arm,
    seed and ``max_iters`` is reused (unless ``template.overwrite``), so a comparison that was
    stopped continues with the runs it had not finished (a run stopped half-way is refused by
    :func:`lvisnb.engine.train.train`: pass ``overwrite``).
    """
    from lvisnb.data.dataset import LVISDetection
    from lvisnb.engine.device import resolve_device
    from lvisnb.engine.inference import load_trained_model, predict, save_results
    from lvisnb.engine.train import train
    from lvisnb.evaluation.evaluate import evaluate, save_metrics
    from lvisnb.evaluation.ground_truth import load_ground_truth

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


# ----------------------------------------------------------------------------- reading the runs


def with_arm(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (a leaderboard or :func:`lvisnb.methods.leaderboard.over_seeds` table) with an
    ``arm`` column ``<sampler>+<method>`` first."""
    arm = frame["sampler"].astype(str) + "+" + frame["method"].astype(str)
    return frame.assign(arm=arm)[["arm", *frame.columns]]


def paired_differences(
    board: pd.DataFrame, metrics: Sequence[str], baseline: Arm = BASELINE
) -> pd.DataFrame:
    """Each arm minus ``baseline``, seed by seed, per metric: one row per (arm, metric).

    ``board``: :func:`lvisnb.methods.leaderboard.leaderboard` rows (``method``, ``sampler``,
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
    return write_text_atomic(Path(out_dir) / SUMMARY_FILE, json.dumps(_plain(record), indent=1))
