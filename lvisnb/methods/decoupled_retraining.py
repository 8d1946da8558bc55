"""Decoupled classifier retraining, step 2: a fresh box classifier trained on cached RoIs.

:func:`retrain_classifier`: a freshly initialised classifier (``nn.Linear(D, K + 1)``; Seesaw:
the preset's ``NormedLinear(D, K + 2)``, as :func:`lvisnb.model.builder.build_model` makes it)
trained with the method's loss (:func:`lvisnb.model.builder.build_preset_cls_loss`, the preset's
parameters) on the train RoIs cached by
:func:`lvisnb.methods.decoupled_features.cached_roi_features` (step 1). Images are drawn
uniformly or by their repeat factors (:func:`lvisnb.data.sampler.build_sampler`, the preset's
threshold and rounding, computed on the cached images), ``images_per_batch`` at a time, and a
step trains on all their RoIs. One recipe for every method (:data:`RECIPE`: SGD, momentum 0.9,
weight decay 1e-4, cosine decay), the same iterations; a seed fixes the initialisation, the
sampling and the federated loss's draws.
:mod:`lvisnb.methods.decoupled_scoring` (step 3) scores the val RoIs with the result.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lvisnb.annotations.categories import images_per_category
from lvisnb.data.sampler import build_sampler
from lvisnb.methods.decoupled_features import RoIFeatures, one_thread
from lvisnb.model.builder import build_preset_cls_loss
from lvisnb.model.losses import ClsLoss
from lvisnb.model.normed_predictor import NormedLinear
from lvisnb.model.presets import Preset

__all__ = [
    "RECIPE",
    "Retrained",
    "build_classifier",
    "class_image_counts",
    "image_sampler",
    "retrain_classifier",
]

RECIPE = {  # the classifier's SGD recipe, the same for every method and seed
    "lr": 0.02,  # peak learning rate, reached after the warm-up, then cosine-decayed to 0
    "warmup_iters": 100,  # linear warm-up from lr * 0.001 (at most a quarter of the steps)
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "images_per_batch": 8,  # images whose RoIs make one step (128 RoIs each for toy)
}


def class_image_counts(features: RoIFeatures) -> np.ndarray:
    """Images of the cached train split annotated with each class, ``(K,)`` int64 in label
    order ``1..K`` (as :func:`lvisnb.engine.setup.class_image_counts` counts a dataset)."""
    labels = np.arange(1, features.num_classes + 1)
    return images_per_category(features.gt_image_index.numpy(), features.gt_labels.numpy(), labels)


def build_classifier(preset: Preset, in_features: int, cls_loss: ClsLoss) -> nn.Module:
    """A fresh box classifier as :func:`lvisnb.model.builder.build_model` makes it for ``preset``:
    ``cls_loss.num_outputs`` outputs (``K + 1``; Seesaw ``K + 2``), a
    :class:`~lvisnb.model.normed_predictor.NormedLinear` for Seesaw with ``seesaw_cls_temperature``,
    else ``nn.Linear`` (PyTorch's default initialisation, as torchvision's predictor)."""
    if preset.cls_loss == "seesaw" and preset.seesaw_cls_temperature is not None:
        return NormedLinear(
            in_features, cls_loss.num_outputs, temperature=preset.seesaw_cls_temperature
        )
    return nn.Linear(in_features, cls_loss.num_outputs)


@dataclass
class Retrained:
    """What :func:`retrain_classifier` returns."""

    classifier: nn.Module  # features (N, D) -> logits (N, num_outputs), eval mode, CPU
    cls_loss: ClsLoss  # the loss it was trained with; its scores() read the logits
    losses: list[float]  # the loss of every iteration
    seconds: float  # wall-clock time of the training
    settings: dict  # method, sampler, seed, iterations, recipe, RFS threshold and rounding


def _lr_factor(iterations: int, recipe: dict):
    """Step ``i`` -> lr factor: linear warm-up (mmdetection's, ratio 0.001) times a cosine
    decay from 1 to 0 over ``iterations``. The cosine classifier of Seesaw needs the warm-up:
    its weights start at norm ~0.2 and the temperature (20) scales their first gradients."""
    warmup = min(recipe["warmup_iters"], iterations // 4)

    def factor(i: int) -> float:
        warm = 1.0 - (1.0 - i / warmup) * (1.0 - 1e-3) if i < warmup else 1.0
        return warm * 0.5 * (1.0 + math.cos(math.pi * i / iterations))

    return factor


def image_sampler(features: RoIFeatures, sampler: str, seed: int, preset: Preset):
    """The :class:`lvisnb.data.sampler.EpochShardedSampler` that draws the cached train images:
    ``"uniform"``, or ``"rfs"`` with ``preset.rfs_threshold`` and ``rfs_rounding`` over the
    images' categories (:meth:`~lvisnb.methods.decoupled_features.RoIFeatures.category_sets`); a
    preset without RFS (``rfs_threshold=None``) samples uniformly, as
    :func:`lvisnb.engine.setup.build_train_sampler`."""
    kind = sampler if preset.rfs_threshold is not None else "uniform"
    threshold = preset.rfs_threshold or 0.0
    sets = features.category_sets()
    return build_sampler(kind, sets, threshold, seed, 1, 0, preset.rfs_rounding)


def _image_stream(sampler) -> Iterator[int]:
    """Image indices, epoch after epoch of ``sampler`` (each epoch seeded by the sampler)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from sampler
        epoch += 1


def retrain_classifier(
    features: RoIFeatures,
    method: str,
    sampler: str,
    seed: int,
    iterations: int,
    *,
    preset: Preset,
    recipe: dict | None = None,
    progress: bool = False,
) -> Retrained:
    """Train a fresh classifier with loss ``method`` on the cached train RoIs (step 2).

    ``features``: train RoIs (:func:`lvisnb.methods.decoupled_features.extract_roi_features` with
    ``train=True``). ``method``: a loss of :data:`lvisnb.model.losses.CLS_LOSSES` with
    ``preset``'s parameters (``preset`` is the checkpoint's; its ``cls_loss`` is replaced by
    ``method``). ``sampler``: ``"uniform"`` or ``"rfs"`` (``preset.rfs_threshold`` and
    ``rfs_rounding`` over the cached images; a preset without RFS samples uniformly).
    ``iterations`` steps of :data:`RECIPE` (``recipe`` overrides entries), each on every RoI of
    ``images_per_batch`` images. Deterministic for a ``seed`` (torch's global RNG state is
    restored afterwards).
    """
    if not features.is_train:
        raise ValueError("retrain_classifier needs train RoIs (extract_roi_features(train=True))")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    recipe = {**RECIPE, **(recipe or {})}
    preset = dataclasses.replace(preset, cls_loss=method, num_classes=features.num_classes)
    counts = class_image_counts(features)
    kind = sampler if preset.rfs_threshold is not None else "uniform"
    offsets = features.roi_offsets()
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)
        cls_loss = build_preset_cls_loss(preset, counts)
        classifier = build_classifier(preset, features.features.shape[1], cls_loss)
        optimizer = torch.optim.SGD(
            classifier.parameters(),
            lr=recipe["lr"],
            momentum=recipe["momentum"],
            weight_decay=recipe["weight_decay"],
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(iterations, recipe))
        images = _image_stream(image_sampler(features, kind, seed, preset))
        losses = []
        for _ in tqdm(range(iterations), desc=f"{kind}+{method}", disable=not progress):
            picked = [next(images) for _ in range(recipe["images_per_batch"])]
            rows = torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i in picked])
            logits = classifier(features.features[rows].float())
            loss = cls_loss(logits, features.labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                step = len(losses)
                raise FloatingPointError(f"{method}: the loss is {losses[-1]} at step {step}")
    settings = {
        "method": method,
        "sampler": kind,
        "seed": seed,
        "iterations": iterations,
        "rfs_threshold": preset.rfs_threshold if kind == "rfs" else None,
        "rfs_rounding": preset.rfs_rounding,
        **recipe,
    }
    seconds = time.perf_counter() - started
    return Retrained(classifier.eval(), cls_loss.eval(), losses, seconds, settings)
