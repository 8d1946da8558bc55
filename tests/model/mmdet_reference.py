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
            if name.endswith("running_var"):
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
) -> dict[str, float]:
    """Run mmdetection's model of ``preset_name`` (seeded weights, saved by mmengine) and the
    kit's model loaded from that checkpoint on one seeded image of ``original_size`` (H, W),
    tested at ``test_scale`` / ``max_size``; the differences. ``kit_overrides``: preset fields
    changed on the kit's side only (e.g. :data:`lvisnb.model.presets.TORCHVISION_OPS`).

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
    proposals, boxes, scores, labels, masks = reference_predict(reference, resized, original_size)
    zeros = torch.zeros(len(proposals), dtype=torch.long)
    _, proposal_gap = match_detections(
        proposals, zeros, kit_proposals, torch.zeros(len(kit_proposals), dtype=torch.long)
    )
    index, gap = match_detections(boxes, labels + 1, kit_out["boxes"], kit_out["labels"])
    matched = gap < 1e-3
    kit_masks = kit_out["masks"][index[matched], 0] >= preset.mask_thresh
    return {
        "resized": (height, width),
        "proposals": len(proposals),
        "kit_proposals": len(kit_proposals),
        "unmatched_proposals": int((proposal_gap >= 1e-3).sum()),
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
        "loss_classifier": losses["loss_cls"],
        "loss_box_reg": losses["loss_bbox"],
        "loss_mask": total(losses["loss_mask"]),
    }


def small_reference_file(folder: Path, preset_name: str, seed: int, name: str) -> Path:
    """mmdetection's model of ``preset_name`` with 12 classes and seeded weights, saved by
    mmengine as ``folder / name``."""
    model, _ = build_reference(preset_name, seed=seed, num_classes=12)
    return save_reference_checkpoint(model, Path(folder) / name)
