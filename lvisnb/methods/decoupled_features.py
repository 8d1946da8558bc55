"""Decoupled classifier retraining, step 1: RoI features of a trained model, and their cache.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition" (ICLR 2020,
cRT) and Li et al., "Overcoming Classifier Imbalance for Long-tail Object Detection with
Balanced Group Softmax" (CVPR 2020, BAGS) keep a detector's features and retrain only its
classifier with the long-tail method under study. Because the features are frozen, they can be
computed once and every method and seed then trains in seconds on a CPU; what differs between
two runs is the classifier's loss and sampling alone. Three steps, a module each:

1. :func:`extract_roi_features` (here) runs a trained Mask R-CNN in eval mode (no gradients) at
   its test scale (no flip, no multi-scale):

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
     each image's resized and original size, so that
     :func:`lvisnb.methods.decoupled_scoring.score_val` can finish what
     ``RoIHeads.postprocess_detections`` and ``transform.postprocess`` do.

   :func:`cached_roi_features` keeps both in ``torch.save`` files loadable with
   ``torch.load(weights_only=True)``, written atomically, and reuses a file only when it was
   made from the same checkpoint bytes (BLAKE2b digest), annotation file, images and settings.

2. :mod:`lvisnb.methods.decoupled_retraining`: a fresh classifier trained with the method's
   loss and sampling on the cached train RoIs.

3. :mod:`lvisnb.methods.decoupled_scoring`: the val features through the retrained classifier
   and the model's own test-time steps -> detections and LVIS result records; masks for them
   from the model's frozen mask head, in one pass for every run.

A classifier copied from the model's own ``cls_score`` reproduces the model's own box
detections, and :func:`lvisnb.methods.decoupled_scoring.segment_val` then its masks, pixel for pixel
(``tests/methods/test_decoupled_scoring.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler
from torchvision.transforms.v2.functional import to_dtype
from tqdm.auto import tqdm

from lvisnb.data.dataset import LVISDetection, collate, read_record_image
from lvisnb.files import atomic_path
from lvisnb.model.checkpoint import load_weights_only

__all__ = [
    "RoIFeatures",
    "cached_roi_features",
    "extract_roi_features",
    "file_digest",
]

CACHE_VERSION = 2  # bump when what a cache file holds changes: older files are rebuilt


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
        payload = load_weights_only(path)
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
    ``model`` is the checkpoint's (:func:`lvisnb.engine.model_source.load_model`)."""
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


def image_batches(dataset: LVISDetection, batch_size: int, progress: bool, desc: str) -> Iterator:
    """``(images, targets)`` batches of ``dataset`` in order (:class:`_ImagesAndBoxes`), with a
    progress bar: the extraction's, and :func:`lvisnb.methods.decoupled_scoring.segment_val`'s
    (the same batching gives the same features)."""
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

    ``model``: a kit Mask R-CNN (:func:`lvisnb.engine.model_source.load_model`), run in eval
    mode on its own device; ``dataset``'s mapping must be the model's. ``train``: sampled,
    labelled RoIs of proposals + ground truth; else the test-time proposals with the frozen
    box regression. ``rois_per_image``: RoIs sampled per train image (``None``: the model's
    ``box_batch_size_per_image``, a quarter of them foreground at most). ``batch_size``:
    images per forward pass (padding to a common size touches GroupNorm statistics: the same
    batching as :func:`lvisnb.engine.inference.predict` gives the same features). ``seed`` fixes the
    RoI sample (torch's global RNG state is restored afterwards). On the CPU it runs on one
    torch thread (see :func:`one_thread`: 0.24 s an image against 0.7 with two threads on the
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
    threads = one_thread() if device.type == "cpu" else contextlib.nullcontext()
    try:
        with torch.random.fork_rng(devices=[]), threads:
            torch.manual_seed(seed)
            desc = f"RoI features ({'train' if train else 'val'})"
            for images, targets in image_batches(dataset, batch_size, progress, desc):
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
        "box_min_size": getattr(heads, "box_min_size", 1e-2),  # torchvision RoIHeads: 0.01
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


# ----------------------------------------------------------------------------- torch threads


@contextlib.contextmanager
def one_thread():
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
