"""mmdetection 3.3.0's own Mask R-CNN as the reference for the kit's (test only).

mmdetection is pure Python on the package index; only mmcv's compiled ops (``mmcv._ext``) are
missing there (``mmcv-lite``). :func:`install_mmcv_stand_in` puts a module in their place whose
``nms``, ``roi_align_forward`` and ``roi_align_backward`` run torchvision's kernels (the same
Detectron2 RoIAlign, ``aligned`` and ``sampling_ratio`` passed through) and whose every other op
raises ``NotImplementedError``, so a Mask R-CNN that used anything else would fail loudly.

:func:`build_reference` builds the model of a kit preset from mmdetection's own config file (as
shipped in the ``mmdet`` wheel), with seeded random weights whose class scores vary (a scaled
classifier, random BN statistics); :func:`save_reference_checkpoint` writes it the way
mmengine's ``save_checkpoint`` does; :func:`reference_predict` runs its test-time path on one
image the kit has resized, with the metadata mmdetection's ``Resize`` would have written.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

from lvisnb.model.builder import no_weight_init

MMDET_AVAILABLE = all(
    importlib.util.find_spec(name) is not None for name in ("mmdet", "mmengine", "mmcv")
)
SKIP_REASON = "the parity extra (mmdet 3.3.0, mmengine, mmcv-lite) is not installed"


def _nms(boxes, scores, iou_threshold, offset):
    if offset != 0:
        raise NotImplementedError("the stand-in nms takes offset=0 only")
    return torch.ops.torchvision.nms(boxes, scores, float(iou_threshold))


def _roi_align_forward(features, rois, output, argmax_y, argmax_x, **kw):
    if kw["pool_mode"] != 1:
        raise NotImplementedError("the stand-in roi_align takes pool_mode='avg' only")
    output.copy_(
        torch.ops.torchvision.roi_align(
            features,
            rois,
            kw["spatial_scale"],
            kw["aligned_height"],
            kw["aligned_width"],
            kw["sampling_ratio"],
            kw["aligned"],
        )
    )


def _roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input, **kw):
    batch, channels, height, width = grad_input.shape
    grad_input.copy_(
        torch.ops.torchvision._roi_align_backward(
            grad_output,
            rois,
            kw["spatial_scale"],
            kw["aligned_height"],
            kw["aligned_width"],
            batch,
            channels,
            height,
            width,
            kw["sampling_ratio"],
            kw["aligned"],
        )
    )


class _StandInExt(types.ModuleType):
    """``mmcv._ext``: the three ops above; any other name is an op that raises when called."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise NotImplementedError(f"mmcv._ext.{name} has no stand-in")

        return missing


def install_mmcv_stand_in() -> None:
    """Put the stand-in ``mmcv._ext`` in ``sys.modules`` (before ``mmcv.ops`` is imported)."""
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    if isinstance(sys.modules.get("mmcv._ext"), _StandInExt):
        return
    ext = _StandInExt("mmcv._ext")
    ext.nms, ext.roi_align_forward = _nms, _roi_align_forward
    ext.roi_align_backward = _roi_align_backward
    sys.modules["mmcv._ext"] = ext


def mmdet_config(preset_name: str):
    """mmengine ``Config`` of the mmdetection 3.3.0 config file of a kit preset (from the
    ``mmdet`` wheel's ``.mim/configs``), ImageNet initialisation off."""
    install_mmcv_stand_in()
    import mmdet
    from mmengine.config import Config

    from lvisnb.model.mmdet_zoo import PUBLISHED

    root = Path(mmdet.__file__).parent / ".mim"
    config = Config.fromfile(str(root / PUBLISHED[preset_name].config))
    config.model.backbone.init_cfg = None
    return config


def build_reference(
    preset_name: str, seed: int = 0, num_classes: int | None = None, sample_all: bool = False
):
    """mmdetection's model of ``preset_name`` in eval mode with seeded random weights.

    ``num_classes`` overrides the config's (small models for fast cases). Every parameter is
    drawn ``N(0, 0.05)`` (convolutions scaled by fan-in, so features neither vanish nor explode),
    BN statistics at random, and the classifier scaled so that softmax scores vary.
    ``sample_all``: the RPN and RoI samplers take every anchor and RoI (``num=10**6``), so
    training has no random choice left to make."""
    install_mmcv_stand_in()
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    config = mmdet_config(preset_name)
    if num_classes is not None:
        config.model.roi_head.bbox_head.num_classes = num_classes
        config.model.roi_head.mask_head.num_classes = num_classes
        if "num_classes" in config.model.roi_head.bbox_head.loss_cls:
            config.model.roi_head.bbox_head.loss_cls.num_classes = num_classes
    if sample_all:
        config.model.train_cfg.rpn.sampler.num = 10**6
        config.model.train_cfg.rcnn.sampler.num = 10**6
    with no_weight_init():  # randomise draws every floating-point tensor of the state dict
        model = MODELS.build(config.model)
    randomise(model, seed)
    return model.eval(), config


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Seeded weights for ``model`` (see :func:`build_reference`)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("cum_samples"):  # Seesaw's counts: whole numbers, in a float buffer
                tensor.copy_(torch.randint(0, 1000, tensor.shape, generator=generator).float())
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                scale = (2.0 / fan_in) ** 0.5
                if "fc_cls" in name or "conv_logits" in name:
                    scale *= 3.0  # varied scores
                if "fc_reg" in name or "rpn_reg" in name:
                    scale *= 0.05  # box deltas of a few tenths
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)
            else:  # BN affine; the residual branch's last BN small, so depth does not blow up
                base = 0.2 if ("bn3" in name or "downsample" in name) else 1.0
                tensor.copy_(base * (1.0 + torch.randn(tensor.shape, generator=generator) * 0.1))


def save_reference_checkpoint(model: torch.nn.Module, path: Path, classes=None) -> Path:
    """``path`` written by mmengine's own ``save_checkpoint``: ``{"meta", "state_dict"}``, as
    mmdetection's published checkpoints hold them."""
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    meta = {"mmdet_version": "3.3.0"}
    if classes is not None:
        meta["dataset_meta"] = {"classes": tuple(classes)}
    save_checkpoint({"meta": meta, "state_dict": weights_to_cpu(model.state_dict())}, str(path))
    return path


def reference_predict(model, resized: torch.Tensor, original_size: tuple[int, int]):
    """mmdetection's test-time forward on one image.

    ``resized``: ``(3, h, w)`` float RGB in [0, 1], the image after the kit's test resize;
    ``original_size``: ``(H, W)`` before it. The batch is made as ``DetDataPreprocessor`` makes
    it (normalised on the 0-255 scale, padded to a multiple of 32) with the metadata of
    mmdetection's ``Resize``, from a BGR image as ``LoadImageFromFile`` reads one. Returns
    ``(proposals (1000, 4), boxes (N, 4), scores (N,),
    labels (N,) 0-based, masks (N, H, W) bool)``, boxes XYXY, proposals in the resized image's
    pixels, detections in the original's."""
    from mmdet.structures import DetDataSample

    height, width = resized.shape[-2:]
    scale_factor = (width / original_size[1], height / original_size[0])
    meta = {
        "img_shape": (height, width),
        "ori_shape": tuple(original_size),
        "scale_factor": scale_factor,
        "batch_input_shape": (-(-height // 32) * 32, -(-width // 32) * 32),
        "pad_shape": (-(-height // 32) * 32, -(-width // 32) * 32),
    }
    sample = DetDataSample(metainfo=meta)
    bgr = resized.flip(0) * 255.0  # as mmcv.imread gives it; the preprocessor flips it back
    data = model.data_preprocessor({"inputs": [bgr], "data_samples": [sample]}, training=False)
    with torch.no_grad():
        features = model.extract_feat(data["inputs"])
        proposals = model.rpn_head.predict(features, data["data_samples"], rescale=False)
        results = model.roi_head.predict(features, proposals, data["data_samples"], rescale=True)
    detections = results[0]
    return (
        proposals[0].bboxes,
        detections.bboxes,
        detections.scores,
        detections.labels,
        detections.masks,
    )


def match_detections(
    ref_boxes, ref_labels, kit_boxes, kit_labels
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each reference detection, the kit detection of the same label whose box is
    nearest (max coordinate difference): ``(index (N,), distance (N,) px)``; ``inf`` where the
    kit has none of that label."""
    if len(ref_boxes) == 0 or len(kit_boxes) == 0:
        return torch.zeros(len(ref_boxes), dtype=torch.long), torch.full(
            (len(ref_boxes),), float("inf")
        )
    distance = (ref_boxes[:, None, :] - kit_boxes[None, :, :]).abs().amax(-1)
    other = ref_labels[:, None] != kit_labels[None, :]
    distance = distance.masked_fill(other, float("inf"))
    best, index = distance.min(1)
    return index, best


def compare_inference(
    preset_name: str,
    checkpoint_dir: Path,
    *,
    num_classes: int | None,
    original_size: tuple[int, int],
    test_scale: int,
    max_size: int,
    max_dets: int = 300,
    seed: int = 0,
    kit_overrides: dict | None = None,
    reference_input: str = "kit",
    tolerance: float = 1e-3,
) -> dict[str, float]:
    """Run mmdetection's model of ``preset_name`` (seeded weights, saved by mmengine) and the
    kit's model loaded from that checkpoint on one seeded image of ``original_size`` (H, W),
    tested at ``test_scale`` / ``max_size``; the differences. ``kit_overrides``: preset fields
    changed on the kit's side only (e.g. :data:`lvisnb.model.presets.TORCHVISION_OPS`).
    ``reference_input``: ``"kit"``, mmdetection runs on the kit's resized image (the models
    alone compared); ``"mmcv"``, the image is 8-bit and mmdetection resizes it itself as its
    test pipeline's ``Resize`` does (``mmcv.imrescale``: cv2 bilinear on uint8), the kit as
    its own transform does (on floats). ``tolerance``: px within which a detection matches.

    Returns ``proposals`` / ``detections`` (mmdetection's counts), ``kit_proposals`` /
    ``kit_detections``, ``unmatched_proposals`` / ``unmatched_detections`` (mmdetection's
    without a kit one within 1e-3 px, same label), ``box_diff`` (px, max over matched
    detections), ``proposal_diff``, ``score_diff``, ``mask_pixels`` (pixels of matched masks
    that differ) and ``mask_pixel_total``, ``resized`` (the size both models ran on)."""
    from lvisnb.engine.model_source import load_mmdet_model
    from lvisnb.model.presets import PRESETS, get_preset

    reference, _ = build_reference(preset_name, seed=seed, num_classes=num_classes)
    reference.roi_head.test_cfg.max_per_img = max_dets
    path = save_reference_checkpoint(reference, checkpoint_dir / f"{preset_name}-seed{seed}.pth")
    preset = get_preset(
        preset_name,
        num_classes=num_classes or PRESETS[preset_name].num_classes,
        test_scale=test_scale,
        max_size=max_size,
        box_detections_per_img=max_dets,
        **(kit_overrides or {}),
    )
    kit = load_mmdet_model(path, preset)
    image = torch.rand((3, *original_size), generator=torch.Generator().manual_seed(seed))
    if reference_input == "mmcv":
        image = (image * 255).round() / 255  # an 8-bit image, as both pipelines read one
    seen = {}
    hook = kit.transform.register_forward_hook(lambda _m, _i, out: seen.update(batch=out[0]))
    try:
        with torch.no_grad():
            kit_out = kit([image])[0]
            batch = seen["batch"]
            kit_proposals = kit.rpn(batch, kit.backbone(batch.tensors))[0][0]
    finally:
        hook.remove()
    height, width = batch.image_sizes[0]
    mean = torch.tensor(preset.image_mean)[:, None, None]
    std = torch.tensor(preset.image_std)[:, None, None]
    resized = batch.tensors[0, :, :height, :width] * std + mean
    if reference_input == "mmcv":
        resized = mmcv_resized(image, test_scale, max_size)
    proposals, boxes, scores, labels, masks = reference_predict(reference, resized, original_size)
    zeros = torch.zeros(len(proposals), dtype=torch.long)
    _, proposal_gap = match_detections(
        proposals, zeros, kit_proposals, torch.zeros(len(kit_proposals), dtype=torch.long)
    )
    index, gap = match_detections(boxes, labels + 1, kit_out["boxes"], kit_out["labels"])
    matched = gap < tolerance
    kit_masks = kit_out["masks"][index[matched], 0] >= preset.mask_thresh
    return {
        "resized": (height, width),
        "proposals": len(proposals),
        "kit_proposals": len(kit_proposals),
        "unmatched_proposals": int((proposal_gap >= tolerance).sum()),
        "proposal_diff": float(proposal_gap.max()) if len(proposals) else 0.0,
        "detections": len(boxes),
        "kit_detections": len(kit_out["boxes"]),
        "unmatched_detections": int((~matched).sum()),
        "box_diff": float(gap[matched].max()) if matched.any() else 0.0,
        "score_diff": float((scores[matched] - kit_out["scores"][index[matched]]).abs().max())
        if matched.any()
        else 0.0,
        "mask_pixels": int((kit_masks != masks[matched]).sum()),
        "mask_pixel_total": int(kit_masks.numel()),
    }


def mmcv_resized(image: torch.Tensor, test_scale: int, max_size: int) -> torch.Tensor:
    """``image`` (3, H, W) float RGB of 8-bit values resized as mmdetection's test ``Resize``
    resizes the uint8 BGR image it loads (``mmcv.imrescale``, bilinear), as float RGB in [0, 1]."""
    import mmcv

    bgr = (image * 255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1]
    resized = mmcv.imrescale(bgr, (max_size, test_scale), interpolation="bilinear")
    return torch.from_numpy(resized[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255


def reference_losses(model, image: torch.Tensor, boxes, labels, masks) -> dict[str, torch.Tensor]:
    """mmdetection's training losses on one image: ``image`` ``(3, H, W)`` float RGB in [0, 1]
    (H, W multiples of 32: no padding), ``boxes`` ``(N, 4)`` XYXY, ``labels`` ``(N,)`` kit
    labels 1..K, ``masks`` ``(N, H, W)`` uint8. Keys as the kit names its losses, each summed
    over FPN levels where mmdetection keeps one per level."""
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    height, width = image.shape[-2:]
    sample = DetDataSample(
        metainfo={
            "img_shape": (height, width),
            "ori_shape": (height, width),
            "scale_factor": (1.0, 1.0),
            "pad_shape": (height, width),
            "batch_input_shape": (height, width),
        }
    )
    sample.gt_instances = InstanceData(
        bboxes=boxes.float(),
        labels=labels - 1,
        masks=BitmapMasks(masks.numpy().astype(np.uint8), height, width),
    )
    data = model.data_preprocessor(
        {"inputs": [image.flip(0) * 255.0], "data_samples": [sample]}, training=True
    )
    losses = model.loss(data["inputs"], data["data_samples"])
    total = lambda value: sum(value) if isinstance(value, list) else value  # noqa: E731
    return {
        "loss_objectness": total(losses["loss_rpn_cls"]),
        "loss_rpn_box_reg": total(losses["loss_rpn_bbox"]),
        "loss_classifier": losses["loss_cls"] if "loss_cls" in losses else _seesaw_sum(losses),
        "loss_box_reg": losses["loss_bbox"],
        "loss_mask": total(losses["loss_mask"]),
    }


def seeded_targets(seed: int, height: int, width: int, count: int, classes: int = 12):
    """``(boxes (count, 4) XYXY float, labels (count,) int64 in 1..classes, masks (count, H, W)
    uint8)``: seeded objects whose masks fill an ellipse of each box (some overlapping, the
    first touching the bottom-right border)."""
    generator = torch.Generator().manual_seed(seed)
    xy = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
    wh = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.5, height * 0.5]) + 12
    boxes = torch.cat([xy, torch.minimum(xy + wh, torch.tensor([width, height]) - 1)], 1)
    boxes[0, 2:] = torch.tensor([width - 1.0, height - 1.0])
    labels = torch.randint(1, classes + 1, (count,), generator=generator)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    masks = []
    for x0, y0, x1, y1 in boxes.tolist():
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        masks.append((((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1).to(torch.uint8))
    return boxes, labels, torch.stack(masks)


def compare_losses(
    preset_name: str,
    checkpoint_dir: Path,
    *,
    seed: int,
    size: tuple[int, int],
    count: int,
    kit_overrides: dict | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(mmdetection's losses, the kit's)`` on one seeded image of ``size`` (H, W) with
    ``count`` seeded objects (:func:`seeded_targets`), 12 classes, mmdetection's seeded weights
    saved by mmengine and loaded by the kit, every anchor and RoI sampled on both sides (no
    random choice left). ``kit_overrides``: preset fields changed on the kit's side only."""
    from lvisnb.engine.model_source import load_mmdet_model
    from lvisnb.model.presets import get_preset

    reference, _ = build_reference(preset_name, seed=seed, num_classes=12, sample_all=True)
    path = save_reference_checkpoint(reference, checkpoint_dir / f"{preset_name}-train{seed}.pth")
    everything = {"rpn_batch_size_per_image": 10**6, "box_batch_size_per_image": 10**6}
    preset = get_preset(preset_name, num_classes=12, **everything, **(kit_overrides or {}))
    kit = load_mmdet_model(path, preset).train()
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(seed))
    boxes, labels, masks = seeded_targets(seed, *size, count)
    expected = reference_losses(reference.train(), image, boxes, labels, masks)
    got = kit([image], [{"boxes": boxes, "labels": labels, "masks": masks}])
    return expected, got


def _seesaw_sum(losses: dict) -> torch.Tensor:
    """mmdetection's Seesaw classification loss, which its ``SeesawLoss`` returns as two terms
    (``loss_cls_classes``, ``loss_cls_objectness``), as one (the kit's ``loss_classifier``)."""
    return losses["loss_cls_classes"] + losses["loss_cls_objectness"]


def small_reference_file(folder: Path, preset_name: str, seed: int, name: str) -> Path:
    """mmdetection's model of ``preset_name`` with 12 classes and seeded weights, saved by
    mmengine as ``folder / name``."""
    model, _ = build_reference(preset_name, seed=seed, num_classes=12)
    return save_reference_checkpoint(model, Path(folder) / name)
