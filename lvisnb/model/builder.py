"""The torchvision Mask R-CNN of a :class:`lvisnb.model.presets.Preset`: backbone, FPN, heads.

How mmdetection maps onto torchvision's ``MaskRCNN`` (:func:`build_model`):

- Backbone: ``torchvision.models.resnet.ResNet`` with ``Bottleneck`` blocks; ResNeXt-101 32x4d
  (not in torchvision's model list) is ``layers=[3, 4, 23, 3], groups=32, width_per_group=4``,
  64x4d the same with ``groups=64``. mmdetection's ``norm_cfg=BN, norm_eval=True`` (BN
  statistics never updated, affine weight/bias still learnt) is ``norm="bn_eval"``
  (:class:`lvisnb.model.train_targets.EvalBatchNorm2d`); ``"frozen_bn"`` is torchvision's and
  detectron2's ``FrozenBatchNorm2d``, which fixes the affine too. ``frozen_stages=1`` (stem and
  ``layer1`` frozen) is ``trainable_layers=3`` (``layer2``-``layer4`` train).
- Neck: ``BackboneWithFPN`` over ``layer1``-``layer4`` (C2-C5), 256 channels, plus
  ``LastLevelMaxPool`` for P6 (mmdetection ``FPN(num_outs=5)``); anchors 32-512 px, one size per
  level, ratios 0.5/1/2 (mmdetection ``AnchorGenerator(scales=[8], strides=[4, ..., 64])``).
- Multi-scale training: the data pipeline (:func:`lvisnb.data.transforms.train_transforms`,
  ``torchvision.transforms.v2``) draws the shorter side from ``train_scales`` with the longer
  side capped at ``max_size``, which is mmdetection's ``Resize(img_scale=[(1333, 640), ...,
  (1333, 800)], multiscale_mode='value')``; the resize runs in the loader workers, once, with
  boxes and masks moving along. The model's transform (:class:`PresizedRCNNTransform`) therefore
  only normalises and pads in ``train()`` mode, and in ``eval()`` mode resizes to
  ``test_scale`` / ``max_size`` (mmdetection's ``(1333, 800)``) and maps detections back to the
  input image's pixels. Padding to a multiple of 32 is the same.
- Box classification: :class:`lvisnb.model.roi_heads.ClsLossRoIHeads` replaces torchvision's softmax
  cross-entropy and softmax scores by ``preset.cls_loss`` (:mod:`lvisnb.model.losses`); ``"ce"`` is
  torchvision's exactly. Seesaw widens the classifier to ``K + 2`` outputs (mmdetection's
  objectness pair) and, as mmdetection's Seesaw configs, makes it a cosine ``NormedLinear``.
- RPN and RoI settings map one to one (``rpn_pre_nms_top_n_*`` is per FPN level and
  ``rpn_post_nms_top_n_*`` per image, as mmdetection's ``nms_pre`` / ``max_per_img``).
  Where torchvision and mmdetection compute differently (anchors, RoIAlign, test resize, mask
  paste; box losses, low-quality matches, mask targets) is a preset field each, mmdetection's
  value the rows' default (:mod:`lvisnb.model.rcnn_ops`, :mod:`lvisnb.model.train_targets`).

Backbone weights come from :func:`lvisnb.model.backbone_weights.load_backbone_weights`; the
presets and their checks are in :mod:`lvisnb.model.presets`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.models.resnet import ResNet
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from lvisnb.model.backbone_weights import load_backbone_weights
from lvisnb.model.losses import ClsLoss, build_cls_loss
from lvisnb.model.presets import BACKBONES, NORMS, Preset, get_preset
from lvisnb.model.rcnn_ops import (
    AlignedMultiScaleRoIAlign,
    PresetAnchorGenerator,
    eval_resize_size,
    paste_masks_grid_sample,
)
from lvisnb.model.roi_heads import ClsLossRoIHeads, box_predictor, mask_predictor
from lvisnb.model.train_targets import EvalBatchNorm2d, MaxIoUMatcher, PresetRPN


def norm_layer(norm: str, gn_groups: int = 32):
    """``norm_layer`` callable (``channels -> module``) for ``"frozen_bn"``, ``"bn_eval"``,
    ``"bn"``, ``"gn"``."""
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    if norm == "bn_eval":
        return EvalBatchNorm2d
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return partial(nn.GroupNorm, gn_groups)  # GroupNorm(num_groups, num_channels)
    raise ValueError(f"norm {norm!r} is not one of {NORMS}")


def build_resnet(name: str, norm: str = "bn", gn_groups: int = 32) -> ResNet:
    """The plain ResNet/ResNeXt classifier ``name`` (a key of
    :data:`lvisnb.model.presets.BACKBONES`), random init.

    Built with ``torchvision.models.resnet.ResNet`` so state_dict keys match torchvision's
    (``conv1.weight``, ``layer1.0.conv2.weight``, ...). Output of ``layer1``..``layer4``: stride
    4..32, channels 256..2048 (Bottleneck) or 64..512 (BasicBlock).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    block, layers, groups, width = BACKBONES[name]
    return ResNet(
        block,
        list(layers),
        groups=groups,
        width_per_group=width,
        norm_layer=norm_layer(norm, gn_groups),
    )


def build_backbone(preset: Preset) -> BackboneWithFPN:
    """ResNet + FPN of ``preset``: ``images (B, 3, H, W) -> {"0".."3", "pool"}`` features.

    Levels P2-P6 at strides 4, 8, 16, 32, 64 with ``fpn_channels`` channels each. Stages outside
    the last ``trainable_layers`` (counted from ``layer4``; 5 = all, stem included) get
    ``requires_grad=False``, as torchvision's ``_resnet_fpn_extractor`` does.
    """
    body = build_resnet(preset.backbone, preset.norm, preset.gn_groups)
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][: preset.trainable_layers]
    if preset.trainable_layers == 5:
        trainable.append("bn1")
    for name, parameter in body.named_parameters():
        if not any(name.startswith(layer) for layer in trainable):
            parameter.requires_grad_(False)
    c2 = body.inplanes // 8  # 256 for Bottleneck, 64 for BasicBlock
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[c2, c2 * 2, c2 * 4, c2 * 8],
        out_channels=preset.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=None if preset.fpn_norm is None else norm_layer("gn", preset.gn_groups),
    )


# ----------------------------------------------------------------------------- model


class PresizedRCNNTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` that trusts the data pipeline's resize in training.

    ``train()``: images (already multi-scale resized by the loader) are only normalised and
    batched (padded to a multiple of 32), targets untouched, so masks are interpolated once, not
    twice. ``eval()``: shorter side to ``min_size`` (the preset's ``test_scale``), longer side at
    most ``max_size``, and ``postprocess`` maps boxes and masks back to input-image pixels.
    """

    def __init__(self, preset: Preset) -> None:
        super().__init__(
            preset.test_scale, preset.max_size, list(preset.image_mean), list(preset.image_std)
        )
        self.rounding = preset.test_resize_rounding
        self.mask_paste = preset.mask_paste

    def resize(self, image, target=None):
        if self.training:
            return image, target
        if self.rounding == "floor":  # torchvision's own resize
            return super().resize(image, target)
        height, width = image.shape[-2:]
        size = eval_resize_size(height, width, self.min_size[-1], self.max_size, "round")
        resized = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        if target is not None:  # as torchvision's resize moves them: boxes scaled, masks nearest
            target = {**target, "boxes": resize_boxes(target["boxes"], (height, width), size)}
            if "masks" in target:
                masks = F.interpolate(target["masks"][:, None].float(), size=size)[:, 0]
                target["masks"] = masks.byte()
        return resized, target

    def postprocess(self, result, image_shapes, original_image_sizes):
        if self.training or self.mask_paste == "torchvision":
            return super().postprocess(result, image_shapes, original_image_sizes)
        for pred, im_s, o_im_s in zip(result, image_shapes, original_image_sizes, strict=True):
            pred["boxes"] = resize_boxes(pred["boxes"], im_s, o_im_s)
            if "masks" in pred:
                pred["masks"] = paste_masks_grid_sample(pred["masks"], pred["boxes"], o_im_s)
        return result


def _as_preset(preset: Preset | str) -> Preset:
    if isinstance(preset, Preset):
        return preset
    return get_preset(preset)


def _head_arguments(preset: Preset, cls_outputs: int) -> dict:
    """``MaskRCNN`` keyword arguments of the RPN and the RoI heads, from the preset (the box
    classifier has ``cls_outputs`` columns: ``cls_loss.num_outputs``)."""
    classes = preset.num_classes_with_background
    temperature = preset.seesaw_cls_temperature if preset.cls_loss == "seesaw" else None
    levels = len(preset.anchor_sizes)
    rpn = {name: getattr(preset, name) for name in _RPN_FIELDS}
    boxes = {name: getattr(preset, name) for name in _BOX_FIELDS}
    return {
        "rpn_anchor_generator": PresetAnchorGenerator(
            sizes=tuple((s,) for s in preset.anchor_sizes),
            aspect_ratios=(preset.anchor_ratios,) * levels,
            round_base=preset.anchor_round,
            strides=preset.anchor_strides,
        ),
        "box_roi_pool": _roi_pool(preset, 7),
        "mask_roi_pool": _roi_pool(preset, 14),
        **rpn,
        "box_head": TwoMLPHead(preset.fpn_channels * 7 * 7, preset.box_head_dim),
        "box_predictor": box_predictor(preset.box_head_dim, classes, cls_outputs, temperature),
        **boxes,
        "mask_head": MaskRCNNHeads(preset.fpn_channels, (preset.mask_head_channels,) * 4, 1),
        "mask_predictor": mask_predictor(
            preset.mask_head_channels, classes, preset.normed_mask_temperature
        ),
    }


def _roi_pool(preset: Preset, output_size: int) -> AlignedMultiScaleRoIAlign:
    """RoIAlign over P2-P5 (torchvision's feature names ``"0"``-``"3"``) with the preset's
    alignment and sampling ratio; 7 x 7 for the box head, 14 x 14 for the mask head."""
    return AlignedMultiScaleRoIAlign(
        ["0", "1", "2", "3"],
        output_size,
        sampling_ratio=preset.roi_align_sampling_ratio,
        aligned=preset.roi_align_aligned,
    )


_RPN_FIELDS = (  # Preset fields passed to MaskRCNN under the same name
    "rpn_pre_nms_top_n_train",
    "rpn_pre_nms_top_n_test",
    "rpn_post_nms_top_n_train",
    "rpn_post_nms_top_n_test",
    "rpn_nms_thresh",
    "rpn_fg_iou_thresh",
    "rpn_bg_iou_thresh",
    "rpn_batch_size_per_image",
    "rpn_positive_fraction",
)
_BOX_FIELDS = (
    "box_score_thresh",
    "box_nms_thresh",
    "box_detections_per_img",
    "box_fg_iou_thresh",
    "box_bg_iou_thresh",
    "box_batch_size_per_image",
    "box_positive_fraction",
)


_INITS = (  # torch.nn.init functions module constructors draw their first weights with
    *("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "orthogonal_"),
    *("kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_"),
)


@contextlib.contextmanager
def no_weight_init():
    """Modules built inside keep their parameters as allocated (uninitialised memory): the
    ``torch.nn.init`` draws their constructors make are skipped. Only for a model whose every
    parameter and buffer is then loaded (``load_state_dict(strict=True)``): loading a
    checkpoint need not first draw tens of millions of random numbers (as ``transformers``'
    ``no_init_weights``). Buffers made with ``torch.zeros``/``full`` keep their values."""
    saved = {name: getattr(torch.nn.init, name) for name in _INITS}
    for name in _INITS:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def build_model(
    preset: Preset | str,
    num_classes: int | None = None,
    *,
    weights: bool = True,
    device: torch.device | str | None = None,
    class_image_counts: Sequence[float] | np.ndarray | torch.Tensor | None = None,
) -> MaskRCNN:
    """torchvision ``MaskRCNN`` for ``preset`` (a :class:`~lvisnb.model.presets.Preset` or a name in
    ``PRESETS``).

    ``num_classes``: foreground classes, overriding ``preset.num_classes`` (required for
    ``"toy"``, whose classes come from the data); the model predicts ``num_classes + 1`` with
    label 0 = background, so targets use contiguous labels ``1..num_classes`` (map LVIS
    category ids to that range). ``weights=True`` loads ``preset.pretrained`` into the ResNet
    (which may download once; see :func:`load_backbone_weights`); ``weights=False`` leaves it
    randomly initialised. ``device="meta"`` builds shapes only (no memory, no weights).

    The box classifier is trained and scored with ``preset.cls_loss``
    (:func:`build_preset_cls_loss`, held as ``model.roi_heads.cls_loss``; see
    :mod:`lvisnb.model.roi_heads`). ``class_image_counts`` ``(K,)``: training images per class in
    label order ``1..K``, required by ``"federated"`` (whose weights a checkpoint then
    overwrites with its own), not read otherwise.

    Training: ``model(images, targets)`` with ``images`` a list of float ``(3, H, W)`` tensors
    in ``[0, 1]`` and ``targets`` dicts of ``boxes`` ``(N, 4)`` float XYXY pixels, ``labels``
    ``(N,)`` int64, ``masks`` ``(N, H, W)`` uint8 returns the five losses ``loss_classifier``,
    ``loss_box_reg``, ``loss_mask``, ``loss_objectness``, ``loss_rpn_box_reg``. Eval: one dict
    per image with ``boxes`` ``(K, 4)``, ``labels`` ``(K,)``, ``scores`` ``(K,)`` and ``masks``
    ``(K, 1, H, W)`` probabilities (binarise with ``preset.mask_thresh``), ``K <=
    box_detections_per_img``, in input-image pixels. The preset is kept as ``model.preset``.
    """
    preset = _as_preset(preset)
    if num_classes is not None:
        preset = dataclasses.replace(preset, num_classes=num_classes)
    if preset.num_classes is None:
        raise ValueError(
            f"preset {preset.name!r} takes num_classes from the data: "
            f"build_model({preset.name!r}, num_classes=len(categories))"
        )
    cls_loss = build_preset_cls_loss(preset, class_image_counts)  # on the CPU, then moved
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = MaskRCNN(
            build_backbone(preset),
            num_classes=None,  # set by the explicit predictors of _head_arguments
            min_size=preset.test_scale,
            max_size=preset.max_size,
            image_mean=list(preset.image_mean),
            image_std=list(preset.image_std),
            **_head_arguments(preset, cls_loss.num_outputs),
        )
        cls_loss = cls_loss.to(device) if device is not None else cls_loss
        model.roi_heads = ClsLossRoIHeads(
            model.roi_heads, cls_loss, preset.box_min_size, preset.box_loss, preset.mask_targets
        )
        _use_training_choices(model, preset)
        model.transform = PresizedRCNNTransform(preset)
    model.preset = preset
    if weights and preset.pretrained is not None and torch.device(device or "cpu").type != "meta":
        load_backbone_weights(model, preset.pretrained)
    return model


def _use_training_choices(model: MaskRCNN, preset: Preset) -> None:
    """The preset's RPN box loss and matchers (:mod:`lvisnb.model.train_targets`)."""
    PresetRPN.from_rpn(model.rpn, preset.box_loss)
    if preset.rpn_min_pos_iou is not None:
        model.rpn.proposal_matcher = MaxIoUMatcher(
            preset.rpn_fg_iou_thresh, preset.rpn_bg_iou_thresh, preset.rpn_min_pos_iou
        )
    if preset.box_min_pos_iou is not None:
        model.roi_heads.proposal_matcher = MaxIoUMatcher(  # RoIHeads appends the gt boxes
            preset.box_fg_iou_thresh,
            preset.box_bg_iou_thresh,
            preset.box_min_pos_iou,
            gt_appended=True,
        )


def build_preset_cls_loss(
    preset: Preset,
    class_image_counts: Sequence[float] | np.ndarray | torch.Tensor | None = None,
) -> ClsLoss:
    """``preset.cls_loss`` for ``preset.num_classes`` classes with the preset's parameters
    (:func:`lvisnb.model.losses.build_cls_loss`); ``class_image_counts`` as :func:`build_model`."""
    params = {
        "seesaw": {"p": preset.seesaw_p, "q": preset.seesaw_q, "eps": preset.seesaw_eps},
        "eqlv2": {"gamma": preset.eqlv2_gamma, "mu": preset.eqlv2_mu, "alpha": preset.eqlv2_alpha},
        "federated": {
            "fed_loss_num_classes": preset.fed_num_classes,
            "freq_weight_power": preset.fed_freq_weight_power,
        },
    }.get(preset.cls_loss, {})
    return build_cls_loss(preset.cls_loss, preset.num_classes, class_image_counts, **params)
