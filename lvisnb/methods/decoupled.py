"""Decoupled classifier retraining: the box classifier retrained on cached RoI features.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition" (ICLR 2020,
cRT) and Li et al., "Overcoming Classifier Imbalance for Long-tail Object Detection with
Balanced Group Softmax" (CVPR 2020, BAGS) keep a detector's features and retrain only its
classifier with the long-tail method under study. Because the features are frozen, they can be
computed once and every method and seed then trains in seconds on a CPU; what differs between
two runs is the classifier's loss and sampling alone. Three steps:

1. :func:`extract_roi_features` runs a trained Mask R-CNN in eval mode (no gradients) at its
   test scale (no flip, no multi-scale):

   - ``train=True``: for each image, the RPN's proposals plus the ground-truth boxes, matched
     to the ground truth at IoU 0.5 by the box head's own ``proposal_matcher`` and subsampled
     by its ``fg_bg_sampler`` (torchvision ``RoIHeads.assign_targets_to_proposals`` /
     ``subsample``: at most ``box_batch_size_per_image`` RoIs, a quarter foreground); kept:
     each sampled RoI's box-head feature ``(R, D)`` (``box_head`` output, ``D`` =
     ``box_head_dim``), its label (``1..K`` matched, ``0`` background) and its image index.
     The RPN runs with its test-time settings, and the sample is drawn once, with a fixed seed:
     the classifier sees the same RoIs of an image every time the image is drawn.
   - ``train=False`` (val): every test-time proposal's feature, its box (XYXY in the resized
     image's pixels), the frozen ``box_predictor.bbox_pred`` deltas ``(R, (K + 1) * 4)``, and
     each image's resized and original size, so that :func:`score_val` can finish what
     ``RoIHeads.postprocess_detections`` and ``transform.postprocess`` do.

   :func:`cached_roi_features` keeps both in ``torch.save`` files loadable with
   ``torch.load(weights_only=True)``, written atomically, and reuses a file only when it was
   made from the same checkpoint bytes (BLAKE2b digest), annotation file, images and settings.

2. :func:`retrain_classifier`: a freshly initialised classifier (``nn.Linear(D, K + 1)``;
   Seesaw: the preset's ``NormedLinear(D, K + 2)``, as :func:`lvisnb.model.builder.build_model`
   makes it) trained with the method's loss (:func:`lvisnb.model.builder.build_preset_cls_loss`, the
   preset's parameters) on the cached RoIs. Images are drawn uniformly or by their repeat
   factors (:func:`lvisnb.data.sampler.build_sampler`, the preset's threshold and rounding, computed
   on the cached images), ``images_per_batch`` at a time, and a step trains on all their RoIs.
   One recipe for every method (:data:`RECIPE`: SGD, momentum 0.9, weight decay 1e-4, cosine
   decay), the same iterations; a seed fixes the initialisation, the sampling and the
   federated loss's draws.

3. :func:`score_val`: the val features through the retrained classifier, the loss's
   ``scores``, then torchvision's test-time steps exactly as the model runs them
   (:meth:`lvisnb.model.roi_heads.ClsLossRoIHeads.postprocess_detections`: decode the cached deltas,
   clip, score threshold, per-class NMS, top-k; boxes resized back to the original image) ->
   detections per val image (:func:`val_detections`), or LVIS result records
   (:func:`score_val`).

4. :func:`segment_val`: masks for the detections of any number of retrained classifiers in
   one pass over the val images. The image features are not cached (float32 FPN maps: about
   2 MB an image for toy-LVIS, 90 MB at LVIS's 800 x 1333 with 256 channels), so the backbone
   runs again, once per image, and the model's frozen mask head runs once per distinct
   (box, label) pair of all the runs together.

A classifier copied from the model's own ``cls_score`` reproduces the model's own box
detections, and :func:`segment_val` then its masks, pixel for pixel
(``tests/test_decoupled.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes
from torchvision.transforms.v2.functional import to_dtype
from tqdm.auto import tqdm

from lvisnb.data.dataset import CategoryMapping, LVISDetection, collate, read_record_image
from lvisnb.data.sampler import build_sampler
from lvisnb.engine.inference import detection_records, masks_to_rle
from lvisnb.files import atomic_path
from lvisnb.model.builder import build_preset_cls_loss
from lvisnb.model.losses import ClsLoss
from lvisnb.model.normed_predictor import NormedLinear
from lvisnb.model.presets import Preset
from lvisnb.model.roi_heads import ClsLossRoIHeads

__all__ = [
    "RECIPE",
    "Retrained",
    "RoIFeatures",
    "build_classifier",
    "cached_roi_features",
    "class_image_counts",
    "extract_roi_features",
    "file_digest",
    "image_sampler",
    "retrain_classifier",
    "score_val",
    "segment_val",
    "val_detections",
    "val_records",
]

CACHE_VERSION = 2  # bump when what a cache file holds changes: older files are rebuilt
RECIPE = {  # the classifier's SGD recipe, the same for every method and seed
    "lr": 0.02,  # peak learning rate, reached after the warm-up, then cosine-decayed to 0
    "warmup_iters": 100,  # linear warm-up from lr * 0.001 (at most a quarter of the steps)
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "images_per_batch": 8,  # images whose RoIs make one step (128 RoIs each for toy)
}


# ----------------------------------------------------------------------------- the cache


@dataclass
class RoIFeatures:
    """Cached RoIs of one split, as :func:`extract_roi_features` returns them (CPU tensors).

    Every split: ``features`` ``(R, D)`` (float16 for train, float32 for val), ``boxes``
    ``(R, 4)`` float32 XYXY RoIs in the resized image's pixels, ``image_index`` ``(R,)`` int64
    (index into ``image_ids``; the RoIs of an image are contiguous, images in order),
    ``image_ids`` ``(I,)`` int64 LVIS ids, ``image_sizes`` / ``original_sizes`` ``(I, 2)``
    int64 ``(height, width)`` resized / as read, ``category_ids`` (label ``k`` is
    ``category_ids[k - 1]``), ``meta`` (plain values: what made the cache).
    Train: ``labels`` ``(R,)`` int64 in ``0..K``; ``gt_labels`` / ``gt_image_index`` ``(G,)``
    int64, every ground-truth instance's label and image (the images' categories, for RFS and
    the class counts). Val: ``deltas`` ``(R, (K + 1) * 4)`` float32, the frozen box regression.
    """

    features: torch.Tensor
    boxes: torch.Tensor
    image_index: torch.Tensor
    image_ids: torch.Tensor
    image_sizes: torch.Tensor
    original_sizes: torch.Tensor
    category_ids: list[int]
    meta: dict = field(default_factory=dict)
    labels: torch.Tensor | None = None
    gt_labels: torch.Tensor | None = None
    gt_image_index: torch.Tensor | None = None
    deltas: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def is_train(self) -> bool:
        return self.labels is not None

    def roi_offsets(self) -> torch.Tensor:
        """``(I + 1,)`` int64: the RoIs of image ``i`` are rows ``offsets[i]:offsets[i + 1]``."""
        counts = torch.bincount(self.image_index, minlength=self.num_images)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    def category_sets(self) -> list[set[int]]:
        """The labels annotated in each image (``1..K``), by image index: the input of RFS."""
        sets: list[set[int]] = [set() for _ in range(self.num_images)]
        for label, image in zip(self.gt_labels.tolist(), self.gt_image_index.tolist(), strict=True):
            sets[image].add(label)
        return sets

    def payload(self) -> dict:
        """What the cache file holds: tensors, lists and plain values only."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def class_image_counts(features: RoIFeatures) -> np.ndarray:
    """Images of the cached train split annotated with each class, ``(K,)`` int64 in label
    order ``1..K`` (as :func:`lvisnb.engine.train.class_image_counts` counts a dataset)."""
    counts = np.zeros(features.num_classes, dtype=np.int64)
    for labels in features.category_sets():
        counts[[label - 1 for label in labels]] += 1
    return counts


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b (hex) of a file's bytes: what a cache records of the checkpoint it came from."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_cache(path: Path, meta: dict, image_ids: list[int]) -> RoIFeatures | None:
    """The cache at ``path`` if it was made with ``meta`` for ``image_ids``, else ``None``."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        cached = RoIFeatures(**payload)
    except Exception:  # damaged, another version's fields: rebuilt
        return None
    recorded = {key: cached.meta.get(key) for key in meta}
    if recorded != meta or cached.image_ids.tolist() != list(image_ids):
        return None
    return cached


def cached_roi_features(
    path: str | os.PathLike,
    model: nn.Module,
    dataset: LVISDetection,
    checkpoint: str | os.PathLike,
    *,
    train: bool,
    rois_per_image: int | None = None,
    batch_size: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> tuple[RoIFeatures, bool]:
    """``(features, reused)``: the cache at ``path`` when it was made from the same
    ``checkpoint`` bytes, annotation file, images and settings, else
    :func:`extract_roi_features` written there atomically (``.NAME.tmp-PID``, then renamed).
    ``model`` is the checkpoint's (:func:`lvisnb.engine.inference.load_trained_model`)."""
    path = Path(path)
    meta = {
        "version": CACHE_VERSION,
        "split": "train" if train else "val",
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_digest": file_digest(checkpoint),
        "ann_file": str(dataset.source),
        "rois_per_image": rois_per_image,
        "batch_size": batch_size,
        "seed": seed,
    }
    cached = _load_cache(path, meta, dataset.image_ids)
    if cached is not None:
        return cached, True
    features = extract_roi_features(
        model,
        dataset,
        train=train,
        rois_per_image=rois_per_image,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    features.meta = {**features.meta, **meta}
    with atomic_path(path) as tmp:
        torch.save(features.payload(), tmp)
    return features, False


# ----------------------------------------------------------------------------- extraction


class _ImagesAndBoxes(Dataset):
    """Images of an :class:`LVISDetection` as float32 [0, 1] with their ground-truth boxes
    (XYXY, original pixels) and labels ``1..K``; no masks are decoded."""

    def __init__(self, dataset: LVISDetection):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        info = self.dataset.image_info(index)
        image = to_dtype(read_record_image(info, self.dataset.image_root), torch.float32, True)
        anns = self.dataset.lvis.img_ann_map.get(info["id"], [])
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        labels = self.dataset.mapping.to_labels([a["category_id"] for a in anns])
        return image, {"boxes": boxes, "labels": labels, "index": index}


def _batches(dataset: LVISDetection, batch_size: int, progress: bool, desc: str) -> Iterator:
    loader = DataLoader(
        _ImagesAndBoxes(dataset), batch_size=batch_size, shuffle=False, collate_fn=collate
    )
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress) as bar:
        for images, targets in loader:
            yield images, targets
            bar.update(len(images))


def _train_rois(heads, proposals, targets, sampler) -> tuple[list, list]:
    """Per image: the sampled RoIs (proposals + GT, XYXY resized pixels) and their labels."""
    gt_boxes = [t["boxes"] for t in targets]
    proposals = heads.add_gt_proposals(proposals, gt_boxes)
    _, labels = heads.assign_targets_to_proposals(
        proposals, gt_boxes, [t["labels"] for t in targets]
    )
    positive, negative = sampler(labels)
    keep = [torch.where(p | n)[0] for p, n in zip(positive, negative, strict=True)]
    return [b[k] for b, k in zip(proposals, keep, strict=True)], [
        lab[k] for lab, k in zip(labels, keep, strict=True)
    ]


@torch.no_grad()
def extract_roi_features(
    model: nn.Module,
    dataset: LVISDetection,
    *,
    train: bool,
    rois_per_image: int | None = None,
    batch_size: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> RoIFeatures:
    """RoI features of every image of ``dataset`` under ``model`` (module docstring, step 1).

    ``model``: a kit Mask R-CNN (:func:`lvisnb.engine.inference.load_trained_model`), run in eval
    mode on its own device; ``dataset``'s mapping must be the model's. ``train``: sampled,
    labelled RoIs of proposals + ground truth; else the test-time proposals with the frozen
    box regression. ``rois_per_image``: RoIs sampled per train image (``None``: the model's
    ``box_batch_size_per_image``, a quarter of them foreground at most). ``batch_size``:
    images per forward pass (padding to a common size touches GroupNorm statistics: the same
    batching as :func:`lvisnb.engine.inference.predict` gives the same features). ``seed`` fixes the
    RoI sample (torch's global RNG state is restored afterwards). On the CPU it runs on one
    torch thread (see :func:`_one_thread`: 0.24 s an image against 0.7 with two threads on the
    busy 2-core machine it was measured on).
    """
    heads = model.roi_heads
    sampler = heads.fg_bg_sampler
    if rois_per_image is not None:
        sampler = BalancedPositiveNegativeSampler(rois_per_image, sampler.positive_fraction)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {}
    image_ids = []
    threads = _one_thread() if device.type == "cpu" else contextlib.nullcontext()
    try:
        with torch.random.fork_rng(devices=[]), threads:
            torch.manual_seed(seed)
            desc = f"RoI features ({'train' if train else 'val'})"
            for images, targets in _batches(dataset, batch_size, progress, desc):
                start = len(image_ids)
                image_ids += [int(dataset.image_ids[t["index"]]) for t in targets]
                out = _forward(model, images, targets, train, sampler, device)
                for key, values in out.items():
                    if key.endswith("index"):
                        values = [v + start for v in values]
                    parts.setdefault(key, []).extend(values)
    finally:
        model.train(was_training)
    tensors = {k: torch.cat(v) if v else torch.zeros(0) for k, v in parts.items()}
    if train:
        tensors["features"] = tensors["features"].half()
    meta = {
        "box_head_dim": int(tensors["features"].shape[1]),
        "bbox_reg_weights": list(heads.box_coder.weights),
        "score_thresh": float(heads.score_thresh),
        "nms_thresh": float(heads.nms_thresh),
        "detections_per_img": int(heads.detections_per_img),
        "sampled_per_image": sampler.batch_size_per_image,  # RoIs drawn per train image
        "batch_size": batch_size,  # images per forward pass: segment_val batches alike
    }
    return RoIFeatures(
        image_ids=torch.tensor(image_ids, dtype=torch.int64),
        category_ids=list(dataset.mapping.category_ids),
        meta=meta,
        **tensors,
    )


def _forward(model, images, targets, train: bool, sampler, device) -> dict[str, list]:
    """One batch through transform, backbone, RPN and box head; CPU tensors per image."""
    originals = [tuple(image.shape[-2:]) for image in images]
    boxes_in = [{"boxes": t["boxes"].to(device)} for t in targets] if train else None
    batch, resized = model.transform([image.to(device) for image in images], boxes_in)
    features = model.backbone(batch.tensors)
    proposals, _ = model.rpn(batch, features)
    heads = model.roi_heads
    if train:
        for target, box in zip(targets, resized, strict=True):
            target["boxes"] = box["boxes"]
            target["labels"] = target["labels"].to(device)
        proposals, labels = _train_rois(heads, proposals, targets, sampler)
    pooled = heads.box_roi_pool(features, proposals, batch.image_sizes)
    roi_features = heads.box_head(pooled)
    per_image = [len(p) for p in proposals]
    out = {
        "features": list(roi_features.float().cpu().split(per_image)),
        "boxes": [p.float().cpu() for p in proposals],
        "image_index": [torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(per_image)],
        "image_sizes": [torch.tensor([list(s) for s in batch.image_sizes], dtype=torch.int64)],
        "original_sizes": [torch.tensor([list(s) for s in originals], dtype=torch.int64)],
    }
    if train:
        out["labels"] = [lab.cpu() for lab in labels]
        out["gt_labels"] = [t["labels"].cpu() for t in targets]
        out["gt_image_index"] = [
            torch.full((len(t["labels"]),), i, dtype=torch.int64) for i, t in enumerate(targets)
        ]
    else:
        out["deltas"] = list(
            heads.box_predictor.bbox_pred(roi_features).float().cpu().split(per_image)
        )
    return out


# ----------------------------------------------------------------------------- retraining


def build_classifier(preset: Preset, in_features: int, cls_loss: ClsLoss) -> nn.Module:
    """A fresh box classifier as :func:`lvisnb.model.builder.build_model` makes it for ``preset``:
    ``cls_loss.num_outputs`` outputs (``K + 1``; Seesaw ``K + 2``), a
    :class:`~lvisnb.model.losses.NormedLinear` for Seesaw with ``seesaw_cls_temperature``, else
    ``nn.Linear`` (PyTorch's default initialisation, as torchvision's predictor)."""
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
    images' categories (:meth:`RoIFeatures.category_sets`); a preset without RFS
    (``rfs_threshold=None``) samples uniformly, as
    :func:`lvisnb.engine.train.build_train_sampler`."""
    kind = sampler if preset.rfs_threshold is not None else "uniform"
    threshold = preset.rfs_threshold or 0.0
    sets = features.category_sets()
    return build_sampler(kind, sets, threshold, seed, 1, 0, preset.rfs_rounding)


@contextlib.contextmanager
def _one_thread():
    """torch on one CPU thread inside the block. On a machine whose cores are busy with other
    work, torch's threads wait for each other at every operation: measured on the shared
    2-core machine the kit targets, a classifier step took 70 ms with 2 threads and 5 with 1,
    and the RoI features of an image 0.7 s and 0.24 s. An idle machine loses little: the
    classifier's matrices are small, and two threads at best halve the feature extraction."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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

    ``features``: train RoIs (:func:`extract_roi_features` with ``train=True``). ``method``: a
    loss of :data:`lvisnb.model.losses.CLS_LOSSES` with ``preset``'s parameters (``preset`` is the
    checkpoint's; its ``cls_loss`` is replaced by ``method``). ``sampler``: ``"uniform"`` or
    ``"rfs"`` (``preset.rfs_threshold`` and ``rfs_rounding`` over the cached images; a preset
    without RFS samples uniformly). ``iterations`` steps of :data:`RECIPE` (``recipe``
    overrides entries), each on every RoI of ``images_per_batch`` images. Deterministic for a
    ``seed`` (torch's global RNG state is restored afterwards).
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
    with torch.random.fork_rng(devices=[]), _one_thread():
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


# ----------------------------------------------------------------------------- scoring


@dataclass
class _Heads:
    """What ``ClsLossRoIHeads.postprocess_detections`` reads of its heads: with these it runs
    on cached RoIs exactly as inside the model."""

    cls_loss: ClsLoss
    box_coder: BoxCoder
    score_thresh: float
    nms_thresh: float
    detections_per_img: int

    postprocess_detections = ClsLossRoIHeads.postprocess_detections


@torch.no_grad()
@_one_thread()
def val_detections(
    classifier: nn.Module,
    cls_loss: ClsLoss,
    val: RoIFeatures,
    *,
    score_thresh: float | None = None,
    max_dets: int | None = None,
    chunk_images: int = 64,
) -> list[dict]:
    """The detections of ``classifier`` on the cached val RoIs, one dict per val image (in
    ``val.image_ids`` order): ``boxes`` ``(N, 4)`` float32 XYXY in the *resized* image's
    pixels, ``scores`` ``(N,)`` float32, ``labels`` ``(N,)`` int64 in ``1..K`` (step 3, before
    the boxes go back to the original image).

    ``classifier``: features ``(N, D)`` -> logits ``(N, cls_loss.num_outputs)``;
    ``cls_loss.scores`` reads them. ``score_thresh`` / ``max_dets``: ``None`` takes the
    model's (recorded in ``val.meta``: the preset's ``box_score_thresh`` and
    ``box_detections_per_img``, as :func:`lvisnb.engine.inference.predict` with its defaults).
    """
    if val.is_train:
        raise ValueError("scoring needs val RoIs (extract_roi_features(train=False))")
    meta = val.meta
    heads = _Heads(
        cls_loss,
        BoxCoder(tuple(meta["bbox_reg_weights"])),
        meta["score_thresh"] if score_thresh is None else score_thresh,
        meta["nms_thresh"],
        meta["detections_per_img"] if max_dets is None else max_dets,
    )
    offsets = val.roi_offsets()
    detections: list[dict] = []
    for first in range(0, val.num_images, chunk_images):
        images = range(first, min(first + chunk_images, val.num_images))
        rows = slice(int(offsets[images.start]), int(offsets[images.stop]))
        logits = classifier(val.features[rows].float())
        proposals = [val.boxes[offsets[i] : offsets[i + 1]] for i in images]
        sizes = [tuple(val.image_sizes[i].tolist()) for i in images]
        boxes, scores, labels = heads.postprocess_detections(
            logits, val.deltas[rows], proposals, sizes
        )
        detections += [
            {"boxes": b, "scores": s, "labels": lab}
            for b, s, lab in zip(boxes, scores, labels, strict=True)
        ]
    return detections


def val_records(
    val: RoIFeatures, detections: list[dict], segmentations: list[list[dict]] | None = None
) -> list[dict]:
    """LVIS result records (``image_id``, ``category_id``, ``bbox`` XYWH in original pixels,
    ``score``; ``segmentation`` RLE when ``segmentations`` gives one per detection) of
    :func:`val_detections`' output, boxes resized back to each original image."""
    mapping = CategoryMapping(tuple(val.category_ids))
    records: list[dict] = []
    for i, found in enumerate(detections):
        size, original = val.image_sizes[i].tolist(), val.original_sizes[i].tolist()
        output = {**found, "boxes": resize_boxes(found["boxes"], size, original)}
        image = list(detection_records(output, int(val.image_ids[i]), mapping, 0.5))
        if segmentations is not None:
            for record, rle in zip(image, segmentations[i], strict=True):
                record["segmentation"] = rle
        records += image
    return records


def score_val(classifier: nn.Module, cls_loss: ClsLoss, val: RoIFeatures, **options) -> list[dict]:
    """LVIS result records (``image_id``, ``category_id``, ``bbox`` XYWH in original pixels,
    ``score``; no ``segmentation``) of ``classifier`` on the cached val RoIs (step 3):
    :func:`val_detections` (``options``: its ``score_thresh``, ``max_dets``,
    ``chunk_images``) through :func:`val_records`."""
    return val_records(val, val_detections(classifier, cls_loss, val, **options))


# ----------------------------------------------------------------------------- masks


def _mask_probabilities(heads, features, boxes: list, labels: list, sizes: list, chunk: int):
    """``(N, 1, 28, 28)`` mask probabilities of each image's ``boxes`` (XYXY resized pixels)
    for its ``labels``: ``mask_roi_pool``, ``mask_head``, ``mask_predictor``, then the sigmoid
    of the label's channel (torchvision ``maskrcnn_inference``), ``chunk`` RoIs at a time."""
    pooled = heads.mask_roi_pool(features, boxes, sizes)
    labels = torch.cat(labels)
    parts = []
    for start in range(0, len(pooled), chunk):
        logits = heads.mask_predictor(heads.mask_head(pooled[start : start + chunk]))
        picked = logits[torch.arange(len(logits)), labels[start : start + chunk]]
        parts.append(picked.sigmoid()[:, None])
    if not parts:
        return pooled.new_zeros((0, 1, *pooled.shape[-2:]))
    return torch.cat(parts)


def _union(found: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct (box, label) pairs of one image's detections over every run, and for
    each detection of each run (concatenated in run order) its row among them."""
    boxes = torch.cat([f["boxes"] for f in found]).float()
    labels = torch.cat([f["labels"] for f in found])
    keys = torch.cat([boxes, labels[:, None].to(boxes.dtype)], dim=1)
    unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
    return unique[:, :4].contiguous(), unique[:, 4].long(), inverse


@torch.no_grad()
def segment_val(
    model: nn.Module,
    dataset: LVISDetection,
    val: RoIFeatures,
    runs: list[list[dict]],
    *,
    mask_thresh: float | None = None,
    chunk: int = 256,
    progress: bool = True,
) -> list[list[list[dict]]]:
    """Masks of every run's val detections from the model's frozen mask head, in one pass.

    ``runs``: for each run, :func:`val_detections`' output (a dict per val image). For each
    image the backbone runs once (the same transform and batching as the val cache, so the
    same features as :func:`lvisnb.engine.inference.predict`), and the mask head once over the
    distinct (box, label) pairs of all runs: runs that keep the same RoI of the same class
    share its mask. Each mask is pasted into the original image (torchvision's
    ``transform.postprocess``), binarised at ``mask_thresh`` (``None``: the preset's, 0.5)
    and encoded as compressed RLE. Returns ``[run][image][detection]`` RLE dicts, in the
    order of ``runs``' detections (:func:`val_records` takes one run's). ``ValueError`` when
    ``dataset``'s images are not ``val``'s, a run has not one entry per val image or a label
    outside ``1..K``, ``mask_thresh`` is outside [0, 1] or ``chunk`` < 1. Runs in fp32 (no
    autocast): on a GPU, :func:`~lvisnb.engine.inference.predict` with ``amp=True`` rounds
    otherwise. Mask R-CNN's test-time mask path (He et al., ICCV 2017): the mask of a detection is
    predicted on its final box for its class.
    """
    if val.is_train or [int(i) for i in dataset.image_ids] != val.image_ids.tolist():
        raise ValueError("segment_val needs the val RoIs of the same images as dataset")
    if mask_thresh is None:
        mask_thresh = getattr(getattr(model, "preset", None), "mask_thresh", 0.5)
    _check_runs(runs, val)
    if not 0.0 <= mask_thresh <= 1.0 or chunk < 1:
        raise ValueError(
            f"mask_thresh must be in [0, 1] and chunk >= 1, got {mask_thresh}, {chunk}"
        )
    if not runs:
        return []
    device = next(model.parameters()).device
    out: list[list[list[dict]]] = [[] for _ in runs]
    was_training = model.training
    model.eval()
    threads = _one_thread() if device.type == "cpu" else contextlib.nullcontext()
    try:
        with threads:
            batch_size = val.meta.get("batch_size", 2)  # predict's default
            batches = _batches(dataset, batch_size, progress, "masks (val)")
            for images, targets in batches:
                indices = [t["index"] for t in targets]
                for per_run in _segment_batch(model, images, indices, runs, mask_thresh, chunk):
                    for run, rles in zip(out, per_run, strict=True):
                        run.append(rles)
    finally:
        model.train(was_training)
    return out


def _check_runs(runs: list[list[dict]], val: RoIFeatures) -> None:
    """``ValueError`` unless every run has one detection dict per val image with labels in
    ``1..K`` (what :func:`val_detections` returns)."""
    for k, run in enumerate(runs):
        if len(run) != val.num_images:
            raise ValueError(
                f"run {k} has detections for {len(run)} images, the val RoIs {val.num_images}: "
                "pass val_detections' output for these val RoIs"
            )
        labels = torch.cat([found["labels"] for found in run]) if run else torch.zeros(0)
        if len(labels) and (labels.min() < 1 or labels.max() > val.num_classes):
            raise ValueError(
                f"run {k}: labels must be in 1..{val.num_classes} (0 is the background), got "
                f"{int(labels.min())}..{int(labels.max())}"
            )


def _segment_batch(model, images, indices, runs, mask_thresh: float, chunk: int) -> list:
    """For each image of one batch: for each run, the RLEs of its detections there."""
    device = next(model.parameters()).device
    originals = [tuple(image.shape[-2:]) for image in images]
    batch, _ = model.transform([image.to(device) for image in images])
    features = model.backbone(batch.tensors)
    unions = [_union([run[i] for run in runs]) for i in indices]
    boxes = [u[0].to(device) for u in unions]
    labels = [u[1].to(device) for u in unions]
    probabilities = _mask_probabilities(
        model.roi_heads, features, boxes, labels, batch.image_sizes, chunk
    ).split([len(b) for b in boxes])
    result = []
    for k, i in enumerate(indices):
        rles = _pasted_rles(
            boxes[k], probabilities[k], batch.image_sizes[k], originals[k], mask_thresh, chunk
        )
        counts = [len(run[i]["boxes"]) for run in runs]
        rows = unions[k][2].split(counts)
        result.append([[rles[j] for j in part.tolist()] for part in rows])
    return result


def _pasted_rles(boxes, probabilities, size, original, mask_thresh: float, chunk: int) -> list:
    """Masks ``(N, 1, 28, 28)`` on ``boxes`` (XYXY, resized image ``size``) pasted into the
    ``original`` image as torchvision's ``transform.postprocess`` does, binarised, as RLE."""
    boxes = resize_boxes(boxes, size, original)
    rles: list[dict] = []
    for start in range(0, len(boxes), chunk):
        part = slice(start, start + chunk)
        pasted = paste_masks_in_image(probabilities[part], boxes[part], original)
        rles += masks_to_rle(pasted[:, 0] >= mask_thresh)
    return rles
