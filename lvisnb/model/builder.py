"""Mask R-CNN presets (mmdetection's LVIS configs as plain dataclasses) and the model builder.

A :class:`Preset` is one flat, frozen dataclass holding everything a run needs: the model
(backbone, norm, FPN, RPN and RoI-head settings), the data pipeline (scales, flip, repeat-factor
sampling) and the optimisation recipe (SGD, linear scaling rule, warmup, step schedule). Its
field defaults are mmdetection's ``mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1``; the other
rows only change what their mmdetection config changes. The README's "Presets" section maps
every field to its mmdetection config key and value; it is generated from these presets and
:data:`lvisnb.model.preset_table.MMDETECTION`, where a new field needs its entry (then
``python -m lvisnb.model.preset_table --write README.md``).

Rows (``PRESETS``), named exactly as mmdetection's ``configs/lvis/`` (``SEED_PRESETS``) and
``configs/seesaw_loss/`` (``SEESAW_PRESETS``) files::

    mask_rcnn_{r50,r101,x101_32x4d,x101_64x4d}_fpn_sample1e-3_mstrain_1x_lvis_v1     1203 classes
    mask_rcnn_{r50,r101,x101_32x4d,x101_64x4d}_fpn_sample1e-3_mstrain_2x_lvis_v0.5   1230 classes
    mask_rcnn_r50_fpn_{sample1e-3,random}_seesaw_loss[_normed_mask]_mstrain_2x_lvis_v1
            Seesaw loss + cosine classifier, with / without RFS, [cosine mask logits]
    toy     ResNet-10 + GroupNorm from scratch, small images; trains on a 2-core CPU

The box classification loss is a field like any other (``cls_loss``: ``"ce"``, ``"seesaw"``,
``"eqlv2"``, ``"federated"``, with its parameters), so every row, ``toy`` included, trains with
any of them: ``get_preset(name, cls_loss="eqlv2")``, ``TrainConfig(overrides={"cls_loss":
"federated"})``, ``lvisnb train --overrides '{cls_loss: seesaw}'``.

How mmdetection maps onto torchvision's ``MaskRCNN`` (:func:`build_model`):

- Backbone: ``torchvision.models.resnet.ResNet`` with ``Bottleneck`` blocks; ResNeXt-101 32x4d
  (not in torchvision's model list) is ``layers=[3, 4, 23, 3], groups=32, width_per_group=4``,
  64x4d the same with ``groups=64``. mmdetection's ``norm_cfg=BN, norm_eval=True`` (BN
  statistics never updated) is ``FrozenBatchNorm2d``; ``frozen_stages=1`` (stem and ``layer1``
  frozen) is ``trainable_layers=3`` (``layer2``-``layer4`` train). One difference: mmdetection
  still learns the BN affine weight/bias of the unfrozen stages (``requires_grad=True``);
  ``FrozenBatchNorm2d`` keeps them fixed, as detectron2 does.
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
  Remaining implementation differences (not settings): torchvision's RoIAlign uses
  ``sampling_ratio=2, aligned=False`` (mmdetection v2: ``0, True``) and smooth-L1 box losses with
  ``beta=1/9`` (mmdetection v2: L1).

Fields that torchvision's model does not use (``flip_prob``, ``rfs_threshold``, ``rfs_rounding``,
``samples_per_gpu``, the optimiser and schedule, ``mask_thresh``) are read by the data pipeline,
the training loop and evaluation; :mod:`lvisnb.engine.schedule` turns the optimisation recipe into
numbers (scaled lr, iterations, warm-up and steps).

Pretrained backbones are only fetched when asked (:func:`build_model` with ``weights=True``, or
:func:`load_backbone_weights`): ``"imagenet"`` is torchvision's weights API (mmdetection's
``torchvision://resnet50`` is ``ResNet50_Weights.IMAGENET1K_V1``), ``"open-mmlab://NAME"`` is
mmdetection's own ImageNet checkpoint (the ResNeXt rows); both need network access once and are
then cached by ``torch.hub`` (``~/.cache/torch/hub/checkpoints``). A local path to a
``state_dict`` works offline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn
from torchvision.models import get_weight
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from lvisnb.data.sampler import ROUNDINGS
from lvisnb.model.losses import CLS_LOSSES, ClsLoss, build_cls_loss
from lvisnb.model.roi_heads import ClsLossRoIHeads, box_predictor, mask_predictor

# name -> (block, blocks per stage, groups, width_per_group): torchvision ResNet arguments
BACKBONES: dict[str, tuple[type[nn.Module], tuple[int, int, int, int], int, int]] = {
    "resnet10": (BasicBlock, (1, 1, 1, 1), 1, 64),  # toy: 4.9M parameters without fc
    "resnet18": (BasicBlock, (2, 2, 2, 2), 1, 64),
    "resnet34": (BasicBlock, (3, 4, 6, 3), 1, 64),
    "resnet50": (Bottleneck, (3, 4, 6, 3), 1, 64),
    "resnet101": (Bottleneck, (3, 4, 23, 3), 1, 64),
    "resnext101_32x4d": (Bottleneck, (3, 4, 23, 3), 32, 4),
    "resnext101_64x4d": (Bottleneck, (3, 4, 23, 3), 64, 4),
}
# pretrained="imagenet": torchvision weights (mmdetection's torchvision://resnet50 is V1)
TORCHVISION_WEIGHTS: dict[str, str] = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
    "resnext101_64x4d": "ResNeXt101_64X4D_Weights.IMAGENET1K_V1",  # newer recipe than mmdet's
}
# pretrained="open-mmlab://NAME": the checkpoints mmdetection's ResNeXt configs start from
OPENMMLAB_WEIGHTS: dict[str, str] = {
    "resnext101_32x4d": "https://download.openmmlab.com/pretrain/third_party/resnext101_32x4d-a5af3160.pth",
    "resnext101_64x4d": "https://download.openmmlab.com/pretrain/third_party/resnext101_64x4d-ee2c6f71.pth",
}
NORMS = ("frozen_bn", "bn", "gn")
DATASETS = {"v1": 1203, "v0.5": 1230}  # LVIS version -> number of categories
WARMUPS = ("linear", "constant", None)


# numeric Preset fields: (low, high, low_open, high_open); None bounds are unbounded. Every
# value must also be finite; tuples are checked element-wise, None (= off) is always allowed.
_UNIT = (0.0, 1.0, False, False)  # probabilities, IoU thresholds
_POSITIVE = (0.0, None, True, False)
_NON_NEGATIVE = (0.0, None, False, False)
_RANGES = {
    **dict.fromkeys(
        (
            "flip_prob",
            "rpn_nms_thresh",
            "rpn_fg_iou_thresh",
            "rpn_bg_iou_thresh",
            "box_fg_iou_thresh",
            "box_bg_iou_thresh",
            "box_score_thresh",
            "box_nms_thresh",
            "mask_thresh",
            "image_mean",
            "rfs_threshold",
        ),
        _UNIT,
    ),
    **dict.fromkeys(
        ("rpn_positive_fraction", "box_positive_fraction", "warmup_ratio", "gamma"),
        (0.0, 1.0, True, False),
    ),
    "momentum": (0.0, 1.0, False, True),
    **dict.fromkeys(
        (
            "lr",
            "grad_clip",
            "anchor_sizes",
            "anchor_ratios",
            "image_std",
            "seesaw_cls_temperature",
            "normed_mask_temperature",
            "eqlv2_gamma",
        ),
        _POSITIVE,
    ),
    "seesaw_eps": (0.0, 1.0, True, False),
    **dict.fromkeys(
        (
            "weight_decay",
            "warmup_iters",
            "seesaw_p",
            "seesaw_q",
            "eqlv2_mu",
            "eqlv2_alpha",
            "fed_freq_weight_power",
        ),
        _NON_NEGATIVE,
    ),
    **dict.fromkeys(
        (
            "gn_groups",
            "fpn_channels",
            "box_head_dim",
            "mask_head_channels",
            "train_scales",
            "max_size",
            "test_scale",
            "samples_per_gpu",
            "num_gpus",
            "lr_batch",
            "max_epochs",
            "rpn_pre_nms_top_n_train",
            "rpn_pre_nms_top_n_test",
            "rpn_post_nms_top_n_train",
            "rpn_post_nms_top_n_test",
            "rpn_batch_size_per_image",
            "box_batch_size_per_image",
            "box_detections_per_img",
            "fed_num_classes",
        ),
        (1.0, None, False, False),
    ),
}


def _out_of_range(value, low, high, low_open, high_open) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return True
    below = value <= low if low_open else value < low
    above = high is not None and (value >= high if high_open else value > high)
    return (low is not None and below) or above


def _range_problems(preset: Preset) -> list[str]:
    """``"field must be in [low, high], got value"`` for each numeric field out of its range."""
    problems = []
    for name, (low, high, low_open, high_open) in _RANGES.items():
        value = getattr(preset, name)
        values = value if isinstance(value, tuple) else (value,)
        if value is None or not any(_out_of_range(v, *_RANGES[name]) for v in values):
            continue
        interval = f"{'(' if low_open else '['}{low:g}, " + (
            f"{high:g}{')' if high_open else ']'}" if high is not None else "inf)"
        )
        problems.append(f"{name} must be finite and in {interval}, got {value!r}")
    return problems


@dataclass(frozen=True)
class Preset:
    """One training/testing recipe; defaults are mmdetection's r50 1x LVIS v1 config.

    Units: sizes in pixels, learning rates per iteration at batch ``lr_batch``, schedules in
    epochs (``max_epochs``, ``lr_steps``) unless ``max_iters`` is set. The README's "Presets"
    section maps every field to its mmdetection config key and value; a new field needs its
    entry in :data:`lvisnb.model.preset_table.MMDETECTION`.
    """

    name: str = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"  # mmdetection config name
    # ---- model
    backbone: str = "resnet50"  # a key of BACKBONES (ResNet / ResNeXt depth and cardinality)
    norm: str = "frozen_bn"  # backbone norm: frozen_bn (BN, norm_eval=True) | bn | gn
    gn_groups: int = 32  # GroupNorm groups, used where norm or fpn_norm is "gn"
    trainable_layers: int = 3  # ResNet stages trained, from layer4 down (frozen_stages=1 -> 3)
    pretrained: str | None = "imagenet"  # None | "imagenet" | "open-mmlab://NAME" | path
    fpn_channels: int = 256  # FPN output channels (P2-P6), also the RoI feature channels
    fpn_norm: str | None = None  # norm inside the FPN: None (mmdetection) | "gn"
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # px, one per level P2-P6
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # anchor height / width
    box_head_dim: int = 1024  # hidden width of the two-FC box head
    mask_head_channels: int = 256  # channels of the 4 mask-head convs and the deconv
    # ---- data
    dataset: str = "v1"  # LVIS version of the annotations: "v1" | "v0.5"
    num_classes: int | None = 1203  # foreground classes (v1 1203, v0.5 1230); +1 background
    train_scales: tuple[int, ...] = (640, 672, 704, 736, 768, 800)  # shorter side, px, 1 drawn
    max_size: int = 1333  # longer side cap, px (train and test)
    test_scale: int = 800  # shorter side at test time, px
    flip_prob: float = 0.5  # horizontal flip probability in training
    image_mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # RGB, images scaled to [0, 1]
    image_std: tuple[float, ...] = (0.229, 0.224, 0.225)  # RGB, images scaled to [0, 1]
    rfs_threshold: float | None = 1e-3  # repeat-factor sampling threshold t; None = off
    # copies of image i per epoch: "ceil" = ceil(r(i)) (mmdetection's ClassBalancedDataset),
    # "stochastic" = r(i) in expectation (detectron2's RepeatFactorTrainingSampler)
    rfs_rounding: str = "ceil"
    samples_per_gpu: int = 2  # images per GPU per iteration
    num_gpus: int = 8  # GPUs; total batch = samples_per_gpu * num_gpus
    # ---- optimiser
    optimizer: str = "sgd"  # torch.optim.SGD, weight decay on every parameter
    lr: float = 0.02  # base learning rate at total batch lr_batch
    lr_batch: int = 16  # total batch that lr is quoted for (linear scaling rule)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # L2 weight decay
    grad_clip: float | None = None  # max global grad L2 norm; None = no clipping
    # ---- schedule
    warmup: str | None = "linear"  # "linear" | "constant" | None
    warmup_iters: int = 500  # iterations of warmup
    warmup_ratio: float = 0.001  # lr factor at iteration 0 of the warmup
    max_epochs: int = 12  # training length in epochs (1x = 12, 2x = 24)
    lr_steps: tuple[int, ...] = (8, 11)  # epochs after which lr *= gamma
    gamma: float = 0.1  # step decay factor
    max_iters: int | None = None  # iteration-based schedule; overrides the epochs when set
    lr_steps_iters: tuple[int, ...] | None = None  # iterations at which lr *= gamma
    # ---- RPN
    rpn_pre_nms_top_n_train: int = 2000  # proposals per FPN level before NMS, training
    rpn_pre_nms_top_n_test: int = 1000  # proposals per FPN level before NMS, testing
    rpn_post_nms_top_n_train: int = 1000  # proposals per image after NMS, training
    rpn_post_nms_top_n_test: int = 1000  # proposals per image after NMS, testing
    rpn_nms_thresh: float = 0.7  # IoU threshold of the RPN NMS
    rpn_fg_iou_thresh: float = 0.7  # anchor IoU >= this: positive
    rpn_bg_iou_thresh: float = 0.3  # anchor IoU < this: negative
    rpn_batch_size_per_image: int = 256  # anchors sampled per image for the RPN loss
    rpn_positive_fraction: float = 0.5  # max share of positives among them
    # ---- RoI heads
    box_fg_iou_thresh: float = 0.5  # proposal IoU >= this: foreground
    box_bg_iou_thresh: float = 0.5  # proposal IoU < this: background
    box_batch_size_per_image: int = 512  # RoIs sampled per image for the box/mask losses
    box_positive_fraction: float = 0.25  # max share of foreground RoIs among them
    # ---- testing
    box_score_thresh: float = 1e-4  # drop detections scoring below this
    box_nms_thresh: float = 0.5  # per-class NMS IoU threshold
    box_detections_per_img: int = 300  # detections kept per image (LVIS allows 300)
    mask_thresh: float = 0.5  # mask probability -> binary mask threshold
    # ---- box classification loss (lvisnb.model.losses) and cosine predictors
    # (lvisnb.model.roi_heads)
    cls_loss: str = "ce"  # "ce" | "seesaw" | "eqlv2" | "federated" (lvisnb.model.losses.CLS_LOSSES)
    seesaw_p: float = 0.8  # Seesaw mitigation exponent: negatives of rarer classes * (N_j/N_i)^p
    seesaw_q: float = 2.0  # Seesaw compensation exponent: misclassified RoIs * (s_j/s_i)^q
    seesaw_eps: float = 1e-2  # floor of the own-class score s_i in the compensation ratio
    # with seesaw only: the classifier is a NormedLinear (cosine) with this temperature;
    # None = nn.Linear
    seesaw_cls_temperature: float | None = 20.0
    normed_mask_temperature: float | None = None  # mask logits NormedConv2d; None = nn.Conv2d
    eqlv2_gamma: float = 12.0  # EQLv2 slope of f(g) = sigmoid(gamma * (g - mu))
    eqlv2_mu: float = 0.8  # EQLv2 centre of f: the positive/negative gradient ratio g
    eqlv2_alpha: float = 4.0  # EQLv2 positive weight 1 + alpha * (1 - f(g))
    fed_num_classes: int = 50  # federated: classes trained per batch (gt + drawn negatives)
    fed_freq_weight_power: float = 0.5  # federated: negatives drawn ~ train image count ** power

    def _sequence_problems(self) -> list[str]:
        """Make the sequence fields tuples; what is wrong with their lengths: one anchor size
        per FPN level (P2-P6), three channels of mean and std, at least one scale and ratio."""
        lengths = {
            **{"anchor_sizes": (5, 5), "anchor_ratios": (1, None), "train_scales": (1, None)},
            **{"image_mean": (3, 3), "image_std": (3, 3)},
            **{"lr_steps": (0, None), "lr_steps_iters": (0, None)},
        }
        problems = []
        for name, (low, high) in lengths.items():
            value = getattr(self, name)
            if value is None and name == "lr_steps_iters":
                continue
            if isinstance(value, str) or not isinstance(value, tuple | list):
                problems.append(f"{name} must be a list of numbers, got {value!r}")
                continue
            object.__setattr__(self, name, tuple(value))
            if len(value) < low or (high is not None and len(value) > high):
                count = f"{low}" if low == high else f"at least {low}"
                problems.append(f"{name} needs {count} values, got {len(value)}")
        return problems

    def __post_init__(self) -> None:
        problems = self._sequence_problems()
        if problems:
            raise ValueError(f"preset {self.name!r}: " + "; ".join(problems))
        problems = []
        if self.backbone not in BACKBONES:
            problems.append(f"backbone {self.backbone!r} is not one of {sorted(BACKBONES)}")
        if self.norm not in NORMS:
            problems.append(f"norm {self.norm!r} is not one of {NORMS}")
        if self.fpn_norm not in (None, "gn"):
            problems.append(f"fpn_norm {self.fpn_norm!r} is not None or 'gn'")
        if self.dataset not in DATASETS:
            problems.append(f"dataset {self.dataset!r} is not one of {sorted(DATASETS)}")
        if not 0 <= self.trainable_layers <= 5:
            problems.append(f"trainable_layers {self.trainable_layers} is not in 0..5")
        if self.num_classes is not None and self.num_classes < 1:
            problems.append(f"num_classes {self.num_classes} is not >= 1")
        if self.warmup not in WARMUPS:
            problems.append(f"warmup {self.warmup!r} is not one of {WARMUPS}")
        if list(self.lr_steps) != sorted(set(self.lr_steps)) or any(
            not 0 < s <= self.max_epochs for s in self.lr_steps
        ):
            problems.append(f"lr_steps {self.lr_steps} must increase within 1..max_epochs")
        if (self.max_iters is None) != (self.lr_steps_iters is None):
            problems.append("max_iters and lr_steps_iters are set together or not at all")
        elif self.max_iters is not None and (
            list(self.lr_steps_iters) != sorted(set(self.lr_steps_iters))
            or any(not 0 < s <= self.max_iters for s in self.lr_steps_iters)
        ):
            problems.append(
                f"lr_steps_iters {self.lr_steps_iters} must increase within 1..max_iters"
            )
        if self.rfs_rounding not in ROUNDINGS:
            problems.append(f"rfs_rounding {self.rfs_rounding!r} is not one of {ROUNDINGS}")
        if self.optimizer != "sgd":
            problems.append(f"optimizer {self.optimizer!r}: only 'sgd' (as mmdetection)")
        if self.cls_loss not in CLS_LOSSES:
            problems.append(f"cls_loss {self.cls_loss!r} is not one of {sorted(CLS_LOSSES)}")
        if isinstance(self.fed_num_classes, bool) or not isinstance(self.fed_num_classes, int):
            problems.append(f"fed_num_classes must be an int, got {self.fed_num_classes!r}")
        problems += _range_problems(self)
        if problems:
            raise ValueError(f"preset {self.name!r}: " + "; ".join(problems))

    @property
    def total_batch(self) -> int:
        """Images per iteration over all GPUs (mmdetection: ``samples_per_gpu`` x GPUs)."""
        return self.samples_per_gpu * self.num_gpus

    @property
    def num_classes_with_background(self) -> int | None:
        """What torchvision's ``num_classes`` means: foreground classes + 1 (label 0)."""
        return None if self.num_classes is None else self.num_classes + 1


# ----------------------------------------------------------------------------- presets

_SEED_BACKBONES = {
    "r50": ("resnet50", "imagenet"),
    "r101": ("resnet101", "imagenet"),
    "x101_32x4d": ("resnext101_32x4d", "open-mmlab://resnext101_32x4d"),
    "x101_64x4d": ("resnext101_64x4d", "open-mmlab://resnext101_64x4d"),
}
_SCHEDULES = {  # dataset -> (schedule tag, max_epochs, lr_steps) of mmdetection's LVIS rows
    "v1": ("1x", 12, (8, 11)),
    "v0.5": ("2x", 24, (16, 22)),
}


def _seed_presets() -> dict[str, Preset]:
    rows = {}
    for dataset, (tag, epochs, steps) in _SCHEDULES.items():
        for short, (backbone, pretrained) in _SEED_BACKBONES.items():
            name = f"mask_rcnn_{short}_fpn_sample1e-3_mstrain_{tag}_lvis_{dataset}"
            rows[name] = Preset(
                name=name,
                backbone=backbone,
                pretrained=pretrained,
                dataset=dataset,
                num_classes=DATASETS[dataset],
                max_epochs=epochs,
                lr_steps=steps,
            )
    return rows


def _seesaw_presets() -> dict[str, Preset]:
    """mmdetection v2's ``configs/seesaw_loss/`` Mask R-CNN R-50 rows (LVIS v1, 2x = 24 epochs,
    steps after 16 and 22): Seesaw loss (``p=0.8, q=2.0``) on a ``NormedLinear`` classifier
    (``tempearture=20``). ``sample1e-3`` builds on ``_base_/datasets/lvis_v1_instance.py``
    (``ClassBalancedDataset``, ``oversample_thr=1e-3``); ``random`` on ``coco_instance.py`` with
    a plain ``LVISV1Dataset`` (no RFS); ``normed_mask`` adds ``mask_head.predictor_cfg=
    dict(type='NormedConv2d', tempearture=20)``."""
    rows = {}
    for sampling, threshold in (("sample1e-3", 1e-3), ("random", None)):
        for mask, temperature in (("", None), ("_normed_mask", 20.0)):
            name = f"mask_rcnn_r50_fpn_{sampling}_seesaw_loss{mask}_mstrain_2x_lvis_v1"
            rows[name] = Preset(
                name=name,
                rfs_threshold=threshold,
                max_epochs=24,
                lr_steps=(16, 22),
                cls_loss="seesaw",
                normed_mask_temperature=temperature,
            )
    return rows


TOY = Preset(
    name="toy",
    backbone="resnet10",  # BasicBlock x [1, 1, 1, 1], trained from scratch
    norm="gn",
    gn_groups=16,
    trainable_layers=5,
    pretrained=None,
    fpn_channels=64,  # 64 not 128: 2x faster on the CPU (RPN head, RoI features, mask head)
    fpn_norm="gn",
    anchor_sizes=(16, 32, 64, 128, 256),  # toy objects are 7-230 px across
    box_head_dim=512,
    mask_head_channels=64,
    dataset="v1",  # toy-LVIS is in LVIS v1 format
    num_classes=None,  # from the data: build_model("toy", num_classes=len(categories))
    train_scales=(224, 256, 288),
    max_size=352,
    test_scale=288,
    rfs_threshold=0.1,  # 1e-3 x LVIS's ~100k images = 100 images; toy-LVIS has 1000
    # reproduces no mmdetection row and trains by iterations, so the epoch length sets nothing;
    # stochastic keeps each image at r(i) in expectation, where ceil would double the 230 of
    # toy-LVIS's 1000 train images with 1 < r(i) < 1.5 (README "Presets": rfs_rounding)
    rfs_rounding="stochastic",
    samples_per_gpu=4,
    num_gpus=1,
    lr=0.02,
    lr_batch=4,
    grad_clip=10.0,  # from-scratch GN training: guard against early loss spikes
    warmup_iters=100,
    max_iters=1100,  # ~19 min on 2 cores at ~1.05 s/iteration (benchmarks/RESULTS.md)
    lr_steps_iters=(733, 990),  # 2/3 and 9/10 of the run
    rpn_pre_nms_top_n_train=600,
    rpn_pre_nms_top_n_test=300,
    rpn_post_nms_top_n_train=300,
    rpn_post_nms_top_n_test=150,
    box_batch_size_per_image=128,
    box_detections_per_img=100,
)

_SEED_ROWS, _SEESAW_ROWS = _seed_presets(), _seesaw_presets()
PRESETS: dict[str, Preset] = {**_SEED_ROWS, **_SEESAW_ROWS, "toy": TOY}
SEED_PRESETS: tuple[str, ...] = tuple(_SEED_ROWS)  # mmdetection's configs/lvis rows
SEESAW_PRESETS: tuple[str, ...] = tuple(_SEESAW_ROWS)  # mmdetection's configs/seesaw_loss rows


def get_preset(name: str, **overrides: object) -> Preset:
    """The preset called ``name`` with ``overrides`` applied (a new, validated instance).

    ``get_preset("toy", max_iters=200, lr_steps_iters=(150, 180))``. Raises ``ValueError`` for an
    unknown name (listing the valid ones) or an unknown field (naming it).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown Preset field(s) {', '.join(map(repr, unknown))}; "
            f"valid fields: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(PRESETS[name], **overrides)


# ----------------------------------------------------------------------------- backbones


def norm_layer(norm: str, gn_groups: int = 32):
    """``norm_layer`` callable (``channels -> module``) for ``"frozen_bn"``, ``"bn"``, ``"gn"``."""
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return partial(nn.GroupNorm, gn_groups)  # GroupNorm(num_groups, num_channels)
    raise ValueError(f"norm {norm!r} is not one of {NORMS}")


def build_resnet(name: str, norm: str = "bn", gn_groups: int = 32) -> ResNet:
    """The plain ResNet/ResNeXt classifier ``name`` (a key of :data:`BACKBONES`), random init.

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

    def resize(self, image, target=None):
        if self.training:
            return image, target
        return super().resize(image, target)


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
        "rpn_anchor_generator": AnchorGenerator(
            sizes=tuple((s,) for s in preset.anchor_sizes),
            aspect_ratios=(preset.anchor_ratios,) * levels,
        ),
        **rpn,
        "box_head": TwoMLPHead(preset.fpn_channels * 7 * 7, preset.box_head_dim),
        "box_predictor": box_predictor(preset.box_head_dim, classes, cls_outputs, temperature),
        **boxes,
        "mask_head": MaskRCNNHeads(preset.fpn_channels, (preset.mask_head_channels,) * 4, 1),
        "mask_predictor": mask_predictor(
            preset.mask_head_channels, classes, preset.normed_mask_temperature
        ),
    }


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


def build_model(
    preset: Preset | str,
    num_classes: int | None = None,
    *,
    weights: bool = True,
    device: torch.device | str | None = None,
    class_image_counts: Sequence[float] | np.ndarray | torch.Tensor | None = None,
) -> MaskRCNN:
    """torchvision ``MaskRCNN`` for ``preset`` (a :class:`Preset` or a name in ``PRESETS``).

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
        model.roi_heads = ClsLossRoIHeads(model.roi_heads, cls_loss)
        model.transform = PresizedRCNNTransform(
            preset.test_scale,
            preset.max_size,
            list(preset.image_mean),
            list(preset.image_std),
        )
    model.preset = preset
    if weights and preset.pretrained is not None and torch.device(device or "cpu").type != "meta":
        load_backbone_weights(model, preset.pretrained)
    return model


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


AMP_MODES = ("auto", "bf16", "fp16", "off")  # mixed precision: TrainConfig.amp, predict(amp=)


def autocast_dtype(amp: str | bool, device: torch.device) -> torch.dtype | None:
    """The dtype ``torch.autocast`` runs the model in on ``device``, ``None`` for float32.

    ``amp`` is one of :data:`AMP_MODES` (``True`` means ``"auto"``, ``False`` ``"off"``):
    ``"auto"`` is ``torch.bfloat16`` on a CUDA device that supports it, else ``torch.float16``,
    and ``None`` on any other device; ``"bf16"`` / ``"fp16"`` ask for that dtype and raise
    ``ValueError`` when ``device`` is not CUDA; ``"off"`` is ``None``. Training and inference
    both choose here (fp16 training also needs a ``GradScaler``, bf16 does not).
    """
    mode = ("auto" if amp else "off") if isinstance(amp, bool) else amp
    if mode not in AMP_MODES:
        raise ValueError(f"amp {amp!r} is not one of {', '.join(AMP_MODES)}")
    if device.type != "cuda":
        if mode in ("bf16", "fp16"):
            raise ValueError(f"amp={mode!r} needs a CUDA device, got {device}")
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[mode]


# ----------------------------------------------------------------------------- weights


def _resnet_body(model: nn.Module) -> nn.Module:
    """The ResNet trunk inside a MaskRCNN, a BackboneWithFPN, or the trunk itself."""
    if isinstance(model, GeneralizedRCNN):
        model = model.backbone
    if isinstance(model, BackboneWithFPN):
        model = model.body
    if isinstance(model, (ResNet, IntermediateLayerGetter)) and hasattr(model, "layer1"):
        return model
    raise TypeError(
        f"expected a MaskRCNN, a BackboneWithFPN or a ResNet, got {type(model).__name__}"
    )


def backbone_name(model: nn.Module) -> str:
    """The :data:`BACKBONES` name whose architecture ``model``'s ResNet trunk has."""
    body = _resnet_body(model)
    first = body.layer1[0]
    depth = tuple(len(getattr(body, f"layer{i}")) for i in range(1, 5))
    groups = first.conv2.groups if isinstance(first, Bottleneck) else 1
    width = first.conv2.out_channels // groups if isinstance(first, Bottleneck) else 64
    for name, (block, layers, g, w) in BACKBONES.items():
        if isinstance(first, block) and layers == depth and (g, w) == (groups, width):
            return name
    raise ValueError(f"ResNet trunk with blocks {depth}, groups {groups} is not in BACKBONES")


def _fetch_state_dict(spec: str | os.PathLike, name: str) -> dict[str, torch.Tensor]:
    """Resolve a weights spec to a state_dict (downloads for "imagenet" / "open-mmlab://")."""
    spec_str = os.fspath(spec)
    offline_hint = (
        "this needs network access once (then cached by torch.hub in "
        f"{torch.hub.get_dir()}/checkpoints); offline, pass a local state_dict path instead"
    )
    if spec_str == "imagenet":
        if name not in TORCHVISION_WEIGHTS:
            hint = f"; use 'open-mmlab://{name}'" if name in OPENMMLAB_WEIGHTS else ""
            raise ValueError(f"torchvision has no ImageNet weights for {name}{hint}")
        spec_str = TORCHVISION_WEIGHTS[name]
    try:
        if spec_str.startswith("open-mmlab://"):
            key = spec_str.removeprefix("open-mmlab://")
            if key not in OPENMMLAB_WEIGHTS:
                raise ValueError(f"unknown {spec_str}; known: {', '.join(OPENMMLAB_WEIGHTS)}")
            url = OPENMMLAB_WEIGHTS[key]
            with _unsafe_named(_hub_file(url)):
                return torch.hub.load_state_dict_from_url(
                    url, map_location="cpu", progress=True, weights_only=True
                )
        if "_Weights." in spec_str and not Path(spec_str).exists():
            weights = get_weight(spec_str)  # torch.hub's weights_only default is False
            with _unsafe_named(_hub_file(weights.url)):
                return weights.get_state_dict(progress=True, weights_only=True)
    except OSError as error:  # URLError is an OSError
        raise RuntimeError(
            f"could not download backbone weights {spec_str!r}: {error}; {offline_hint}"
        ) from error
    path = Path(spec_str).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights file not found: {path} (pretrained may be None, 'imagenet', "
            "'open-mmlab://NAME', a torchvision weights name or a state_dict path)"
        )
    with _unsafe_named(path):
        return torch.load(path, map_location="cpu", weights_only=True)


def _hub_file(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` caches ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


@contextlib.contextmanager
def _unsafe_named(path: Path):
    """Turn ``torch.load(..., weights_only=True)``'s refusal of a file into a ``ValueError``
    naming ``path`` (torch's own message advises ``weights_only=False``, which would run
    whatever the file's pickle asks)."""
    from lvisnb.model.checkpoint import describe_load_error

    try:
        yield
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: not a plain weights file: {describe_load_error(error)}; it was not "
            "loaded. Delete it if you did not put it there"
        ) from None
    except (RuntimeError, EOFError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(
            f"{path}: not a usable weights file ({describe_load_error(error)})"
        ) from None


def load_backbone_weights(
    model_or_backbone: nn.Module,
    spec: str | os.PathLike | Mapping[str, torch.Tensor],
) -> int:
    """Load ImageNet-style weights into the ResNet trunk; return the number of tensors loaded.

    ``model_or_backbone``: a MaskRCNN from :func:`build_model`, its ``BackboneWithFPN``, or a
    ResNet from :func:`build_resnet`. ``spec``:

    - ``"imagenet"``: torchvision's weights for the trunk's architecture, e.g.
      ``ResNet50_Weights.IMAGENET1K_V1`` (= mmdetection's ``torchvision://resnet50``);
    - ``"open-mmlab://resnext101_32x4d"`` / ``..._64x4d``: mmdetection's ResNeXt checkpoints;
    - a torchvision weights name such as ``"ResNet50_Weights.IMAGENET1K_V2"``;
    - a local file (``torch.load(..., weights_only=True)``) or an in-memory state_dict.

    The first three need network access once and are then cached by ``torch.hub``. Checkpoint
    wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and ``module.``, ``backbone.``,
    ``backbone.body.``, ``body.`` key prefixes are removed, the classifier (``fc.*``) dropped
    (a plain ResNet's own ``fc`` is left as it is); every remaining key must match the trunk
    (shape errors and missing or unexpected keys raise), so a GroupNorm trunk refuses
    BatchNorm weights. BatchNorm's ``num_batches_tracked`` counters are optional either way.
    """
    body = _resnet_body(model_or_backbone)
    if isinstance(spec, Mapping):
        state = dict(spec)
    else:
        state = _fetch_state_dict(spec, backbone_name(body))
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), Mapping):
            state = dict(state[wrapper])
    for prefix in ("module.", "backbone.body.", "backbone.", "body."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    expected = {k for k in body.state_dict() if not k.startswith("fc.")}
    state = {
        k: v
        for k, v in state.items()
        if not k.startswith("fc.") and not (k.endswith("num_batches_tracked") and k not in expected)
    }
    # old checkpoints (e.g. torchvision's V1 ResNets) have no num_batches_tracked: BN fills it in
    missing = sorted(k for k in expected - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"backbone weights do not fit the {backbone_name(body)} trunk: "
            f"{len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    # strict=False only for what was checked above: a classifier's fc, num_batches_tracked;
    # shape mismatches still raise
    body.load_state_dict(state, strict=False)
    return len(state)
