"""Run a trained Mask R-CNN over an LVIS split and write LVIS result records.

One result record per detection, in the LVIS (= COCO) results format the official ``lvis`` API
and hotcoco read::

    {"image_id": int,            # LVIS image id
     "category_id": int,         # LVIS category id (not the model's contiguous label)
     "bbox": [x, y, w, h],       # XYWH, original image pixels, rounded to 0.01 px
     "score": float,             # classification score in (0, 1]
     "segmentation": {"size": [H, W], "counts": str}}   # pycocotools RLE of the binary mask

Defaults are LVIS's: score threshold 1e-4, at most 300 detections per image (LVIS AP is
computed over the top 300 of each image; the ``toy`` preset keeps 100, plenty for 40
categories and cheaper on a CPU). Masks are the model's per-detection probabilities
pasted into the image and binarised at ``mask_thresh`` (0.5, mmdetection's ``mask_thr_binary``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2.functional import to_dtype
from tqdm.auto import tqdm

from lvisnb.annotations.categories import check_same_version
from lvisnb.data.dataset import CategoryMapping, LVISDetection, collate, read_record_image
from lvisnb.engine.device import autocast_dtype
from lvisnb.evaluation.metrics import MAX_DETS_PER_IMAGE
from lvisnb.files import atomic_path, check_output

__all__ = [
    "predict",
    "save_results",
    "masks_to_rle",
    "is_saved_results",
]


class _Images(Dataset):
    """Images of an :class:`LVISDetection` as float32 [0, 1], with their ids (no targets)."""

    def __init__(self, dataset: LVISDetection):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        info = self.dataset.image_info(index)
        image = read_record_image(info, self.dataset.image_root)
        return to_dtype(image, torch.float32, scale=True), int(info["id"])


def masks_to_rle(masks: torch.Tensor) -> list[dict]:
    """Binary masks ``(K, H, W)`` (bool/uint8) -> K pycocotools RLEs with ``counts`` as str."""
    if len(masks) == 0:
        return []
    array = np.asfortranarray(masks.to(torch.uint8).permute(1, 2, 0).cpu().numpy())
    rles = mask_utils.encode(array)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def detection_records(output: dict, image_id: int, mapping: CategoryMapping, mask_thresh: float):
    """LVIS result records of one image's model output (boxes XYXY pixels -> ``bbox`` XYWH
    rounded to 0.01 px, labels -> LVIS ``category_id``, masks binarised at ``mask_thresh`` ->
    compressed RLE); the one record builder of :func:`predict` and
    :mod:`lvisnb.methods.decoupled_scoring`."""
    boxes = output["boxes"].float().cpu()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)
    xywh = torch.round(xywh * 100) / 100
    category_ids = mapping.to_category_ids(output["labels"].cpu()).tolist()
    scores = output["scores"].float().cpu().tolist()
    rles = masks_to_rle(output["masks"][:, 0] >= mask_thresh) if "masks" in output else None
    for k, (box, category_id, score) in enumerate(
        zip(xywh.tolist(), category_ids, scores, strict=True)
    ):
        record = {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}
        if rles is not None:
            record["segmentation"] = rles[k]
        yield record


def _check_classes(model: torch.nn.Module, mapping: CategoryMapping, source: str) -> None:
    """``ValueError`` when the model's box regressor has not ``mapping``'s (K + 1) x 4 outputs
    (a model of another category set, e.g. LVIS v1's 1,203 run with a v0.5 file's 1,230 ids).
    The regressor, not the classifier: Seesaw's classifier has K + 2 outputs."""
    predictor = getattr(getattr(model, "roi_heads", None), "box_predictor", None)
    outputs = getattr(getattr(predictor, "bbox_pred", None), "out_features", None)
    classes = None if outputs is None else outputs // 4 - 1
    if classes is not None and classes != mapping.num_classes:
        raise ValueError(
            f"the model predicts {classes} categories, but the mapping used for {source} has "
            f"{mapping.num_classes}: pass the mapping saved with the model (load_model)"
        )


ARGUMENTS = ("score_thresh", "max_dets", "batch_size", "num_workers")  # checked by predict


def argument_problems(score_thresh, max_dets, batch_size, num_workers) -> list[str]:
    """What is out of range among :func:`predict`'s numbers (:data:`ARGUMENTS`), each naming
    its argument and value."""
    checks = [
        ("score_thresh", score_thresh, "a number in [0, 1]", not 0 <= score_thresh <= 1),
        ("max_dets", max_dets, "None or an integer >= 1", max_dets is not None and max_dets < 1),
        ("batch_size", batch_size, "an integer >= 1", batch_size < 1),
        ("num_workers", num_workers, "an integer >= 0", num_workers < 0),
    ]
    return [f"{name} must be {rule}, got {value!r}" for name, value, rule, bad in checks if bad]


def predict(
    model: torch.nn.Module,
    dataset: LVISDetection,
    mapping: CategoryMapping | None = None,
    *,
    batch_size: int = 2,
    device: str | torch.device | None = None,
    score_thresh: float = 1e-4,
    max_dets: int | None = None,
    mask_thresh: float | None = None,
    amp: bool = True,
    num_workers: int = 0,
    progress: bool = True,
) -> Iterator[dict]:
    """Yield LVIS result records (see the module docstring) for every image of ``dataset``.

    ``model``: a torchvision Mask R-CNN (:func:`lvisnb.engine.model_source.load_model`); its
    ``score_thresh`` and ``detections_per_img`` are set to ``score_thresh`` / ``max_dets``
    for the call and restored after. ``max_dets=None`` keeps the model's own limit (the preset's
    ``box_detections_per_img``: 300 for the seed rows, 100 for ``toy``), capped at LVIS's
    ``MAX_DETS_PER_IMAGE`` (300); the model's own top-k is the cut, so evaluation, which cuts
    with :func:`lvisnb.evaluation.caps.cap_per_image`, keeps every record.
    ``mapping`` converts labels to LVIS category ids (default: the dataset's); a model trained
    on one LVIS version run on a file of the other is a ``ValueError`` naming both.
    Runs under ``torch.inference_mode``, with autocast on CUDA when ``amp`` (bf16 where the GPU
    supports it, else fp16: :func:`lvisnb.engine.device.autocast_dtype`).
    ``mask_thresh`` defaults to the model preset's (0.5). ``ValueError`` for a number out of
    range; :class:`~lvisnb.annotations.images.ImageReadError` before any inference when an
    image is missing (:meth:`LVISDetection.check_images`). Detections of categories the
    annotation file does not list (a model of all of LVIS run on a file of some categories) are
    left out, as ``lvis.LVISResults`` would refuse them; the per-image cut comes before.
    """
    if problems := argument_problems(score_thresh, max_dets, batch_size, num_workers):
        raise ValueError("; ".join(problems))
    mapping = mapping or dataset.mapping
    check_same_version(mapping.lvis_version, dataset.lvis.dataset["categories"], dataset.source)
    _check_classes(model, mapping, dataset.source)
    dataset.check_images()  # after the checks that need no image
    known = {int(c["id"]) for c in dataset.lvis.dataset["categories"]}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if mask_thresh is None:
        mask_thresh = getattr(getattr(model, "preset", None), "mask_thresh", 0.5)
    heads = model.roi_heads
    saved = heads.score_thresh, heads.detections_per_img
    if max_dets is None:
        max_dets = min(heads.detections_per_img, MAX_DETS_PER_IMAGE)
    heads.score_thresh, heads.detections_per_img = score_thresh, max_dets
    was_training = model.training
    model.eval()
    amp_dtype = autocast_dtype(bool(amp), device)
    loader = DataLoader(
        _Images(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
    )
    bar = tqdm(total=len(dataset), desc="inference", unit="img", disable=not progress)
    try:
        with torch.inference_mode():
            for images, image_ids in loader:
                autocast = (
                    torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
                )
                with autocast:
                    outputs = model([image.to(device, non_blocking=True) for image in images])
                for output, image_id in zip(outputs, image_ids, strict=True):
                    records = detection_records(output, image_id, mapping, mask_thresh)
                    yield from (r for r in records if r["category_id"] in known)
                bar.update(len(images))
    finally:
        bar.close()
        heads.score_thresh, heads.detections_per_img = saved
        model.train(was_training)


def save_results(path: str | os.PathLike, records: Iterable[dict], overwrite: bool = False) -> int:
    """Stream ``records`` to an LVIS results JSON array at ``path``; return how many.

    Records are written one at a time as they come (a generator from :func:`predict` is never
    held in memory as a whole), into a temporary file that is renamed at the end.
    ``FileExistsError`` when ``path`` is a folder or an existing file that this function did
    not write (unless ``overwrite``): a user's file is never replaced.
    """
    check_output(path, written_by_kit=is_saved_results, overwrite=overwrite, what="results file")
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        handle.write("[")
        for record in records:
            handle.write(",\n" if count else "\n")
            handle.write(json.dumps(record, separators=(",", ":")))
            count += 1
        handle.write("\n]\n")
    return count


def is_saved_results(path: Path) -> bool:
    """Whether ``path`` starts as :func:`save_results` writes (``[`` then a record or ``]``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            head = handle.read(16)
    except (OSError, ValueError):
        return False
    return head.startswith(('[\n{"image_id":', "[\n]"))
