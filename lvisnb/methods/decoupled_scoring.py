"""Decoupled classifier retraining, step 3: retrained classifiers scored on the val RoIs.

:func:`val_detections`: the val features cached by
:func:`lvisnb.methods.decoupled_features.cached_roi_features` (step 1) through a classifier
retrained by :func:`lvisnb.methods.decoupled_retraining.retrain_classifier` (step 2), the loss's
``scores``, then torchvision's test-time steps exactly as the model runs them
(:meth:`lvisnb.model.roi_heads.ClsLossRoIHeads.postprocess_detections`: decode the cached deltas,
clip, score threshold, per-class NMS, top-k) -> detections per val image; :func:`val_records`
turns them into LVIS result records (boxes resized back to the original image), and
:func:`score_val` does both.

:func:`segment_val`: masks for the detections of any number of retrained classifiers in one
pass over the val images. The image features are not cached (float32 FPN maps: about 2 MB an
image for toy-LVIS, 90 MB at LVIS's 800 x 1333 with 256 channels), so the backbone runs again,
once per image, and the model's frozen mask head runs once per distinct (box, label) pair of all
the runs together.

A classifier copied from the model's own ``cls_score`` reproduces the model's own box
detections, and :func:`segment_val` then its masks, pixel for pixel
(``tests/methods/test_decoupled_scoring.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import resize_boxes

from lvisnb.data.dataset import CategoryMapping, LVISDetection
from lvisnb.engine.inference import detection_records, masks_to_rle
from lvisnb.methods.decoupled_features import RoIFeatures, image_batches, one_thread
from lvisnb.model.losses import ClsLoss
from lvisnb.model.roi_heads import ClsLossRoIHeads

__all__ = [
    "score_val",
    "segment_val",
    "val_detections",
    "val_records",
]


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
    box_min_size: float | None

    postprocess_detections = ClsLossRoIHeads.postprocess_detections


@torch.no_grad()
@one_thread()
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
        meta.get("box_min_size", 1e-2),  # a cache from before the field: torchvision's
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
    threads = one_thread() if device.type == "cpu" else contextlib.nullcontext()
    try:
        with threads:
            batch_size = val.meta.get("batch_size", 2)  # predict's default
            batches = image_batches(dataset, batch_size, progress, "masks (val)")
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
