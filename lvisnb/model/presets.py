"""Mask R-CNN presets: mmdetection's LVIS configs as plain dataclasses, and their checks.

A :class:`Preset` is one flat, frozen dataclass holding everything a run needs: the model
(backbone, norm, FPN, RPN and RoI-head settings), the data pipeline (scales, flip, repeat-factor
sampling) and the optimisation recipe (SGD, linear scaling rule, warmup, step schedule). Its
field defaults are mmdetection's ``mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1``; the other
rows only change what their mmdetection config changes. The "Presets" page (docs/presets.md) maps
every field to its mmdetection config key and value; it is generated from these presets and
:data:`lvisnb.model.mmdet_config_keys.MMDETECTION`, where a new field needs its entry (then
``python -m lvisnb.model.preset_table --write docs/presets.md``).

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

Fields that torchvision's model does not use (``flip_prob``, ``rfs_threshold``, ``rfs_rounding``,
``samples_per_gpu``, the optimiser and schedule, ``mask_thresh``) are read by the data pipeline,
the training loop and evaluation; :mod:`lvisnb.engine.schedule` turns the optimisation recipe into
numbers (scaled lr, iterations, warm-up and steps). The model of a preset is
:func:`lvisnb.model.builder.build_model`'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from lvisnb.data.sampler import ROUNDINGS
from lvisnb.model.losses import CLS_LOSSES
from lvisnb.model.ranges import Range, range_problems
from lvisnb.model.rcnn_ops import MASK_PASTES, RESIZE_ROUNDINGS
from lvisnb.model.train_targets import BOX_LOSSES, MASK_TARGETS

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
NORMS = ("frozen_bn", "bn_eval", "bn", "gn")
DATASETS = {"v1": 1203, "v0.5": 1230}  # LVIS version -> number of categories
WARMUPS = ("linear", "constant", None)


# numeric Preset fields: lvisnb.model.ranges.Range (low, high, low_open,
# high_open); high None is unbounded. Every
# value must also be finite; tuples are checked element-wise, None (= off) is always allowed.
_UNIT = Range(0.0, 1.0)  # probabilities, IoU thresholds
_POSITIVE = Range(0.0, None, low_open=True)
_NON_NEGATIVE = Range(0.0)
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
        Range(0.0, 1.0, low_open=True),
    ),
    "momentum": Range(0.0, 1.0, high_open=True),
    "anchor_strides": Range(1.0),
    "roi_align_sampling_ratio": Range(0.0),
    "box_min_size": Range(0.0),
    "rpn_min_pos_iou": Range(0.0, 1.0),
    "box_min_pos_iou": Range(0.0, 1.0),
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
    "seesaw_eps": Range(0.0, 1.0, low_open=True),
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
        Range(1.0),
    ),
}


def _range_problems(preset: Preset) -> list[str]:
    """``"field must be finite and in [low, high], got value"`` for each numeric field out of
    its range (:func:`lvisnb.model.ranges.range_problems` over ``_RANGES``)."""
    return range_problems(preset, _RANGES)


@dataclass(frozen=True)
class Preset:
    """One training/testing recipe; defaults are mmdetection's r50 1x LVIS v1 config.

    Units: sizes in pixels, learning rates per iteration at batch ``lr_batch``, schedules in
    epochs (``max_epochs``, ``lr_steps``) unless ``max_iters`` is set. The "Presets" page
    section maps every field to its mmdetection config key and value; a new field needs its
    entry in :data:`lvisnb.model.mmdet_config_keys.MMDETECTION`.
    """

    name: str = "mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1"  # mmdetection config name
    # ---- model
    backbone: str = "resnet50"  # a key of BACKBONES (ResNet / ResNeXt depth and cardinality)
    # backbone norm: bn_eval (mmdetection BN, norm_eval=True: statistics fixed, affine trained)
    # | frozen_bn (torchvision / detectron2: both fixed) | bn | gn
    norm: str = "bn_eval"
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
    # ---- where torchvision and mmdetection compute differently (lvisnb.model.rcnn_ops);
    # defaults are mmdetection's, TORCHVISION_OPS torchvision's
    anchor_round: bool = False  # round base anchors to whole pixels (torchvision)
    anchor_strides: tuple[int, ...] | None = (4, 8, 16, 32, 64)  # px; None: inferred (torchvision)
    roi_align_aligned: bool = True  # RoIAlign half-pixel shift (mmcv RoIAlign aligned=True)
    roi_align_sampling_ratio: int = 0  # RoIAlign points per bin side; 0 = adaptive
    test_resize_rounding: str = "round"  # test-time resized size: "round" (mmcv) | "floor"
    box_min_size: float | None = None  # px; drop smaller detections at test time; None = keep
    mask_paste: str = "grid_sample"  # "grid_sample" (mmdetection) | "torchvision"
    box_loss: str = "l1"  # RPN and RoI box regression loss: "l1" (mmdetection) | "smooth_l1"
    rpn_min_pos_iou: float | None = 0.3  # low-quality matches from this IoU; None: torchvision's
    box_min_pos_iou: float | None = 0.5  # the same for the RoI heads; None: none (torchvision)
    mask_targets: str = "mmdetection"  # aligned RoIAlign, binarised (mmdetection) | "torchvision"
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
            **{"lr_steps": (0, None), "lr_steps_iters": (0, None), "anchor_strides": (5, 5)},
        }
        problems = []
        for name, (low, high) in lengths.items():
            value = getattr(self, name)
            if value is None and name in ("lr_steps_iters", "anchor_strides"):
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
        problems += _ops_problems(self)
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


def _ops_problems(preset: Preset) -> list[str]:
    """What is wrong with the fields of :data:`TORCHVISION_OPS` beyond their ranges."""
    problems = []
    for name in ("anchor_round", "roi_align_aligned"):
        if not isinstance(getattr(preset, name), bool):
            problems.append(f"{name} must be true or false, got {getattr(preset, name)!r}")
    sampling = preset.roi_align_sampling_ratio
    if isinstance(sampling, bool) or not isinstance(sampling, int):
        problems.append(f"roi_align_sampling_ratio must be an int, got {sampling!r}")
    if preset.test_resize_rounding not in RESIZE_ROUNDINGS:
        problems.append(
            f"test_resize_rounding {preset.test_resize_rounding!r} is not one of {RESIZE_ROUNDINGS}"
        )
    if preset.mask_paste not in MASK_PASTES:
        problems.append(f"mask_paste {preset.mask_paste!r} is not one of {MASK_PASTES}")
    if preset.box_loss not in BOX_LOSSES:
        problems.append(f"box_loss {preset.box_loss!r} is not one of {BOX_LOSSES}")
    if preset.mask_targets not in MASK_TARGETS:
        problems.append(f"mask_targets {preset.mask_targets!r} is not one of {MASK_TARGETS}")
    return problems


# The torchvision values of the fields where torchvision and mmdetection compute differently
# (lvisnb.model.rcnn_ops): toy's, and what a checkpoint saved before these fields existed ran
TORCHVISION_OPS: dict[str, object] = {
    "anchor_round": True,
    "anchor_strides": None,
    "roi_align_aligned": False,
    "roi_align_sampling_ratio": 2,
    "test_resize_rounding": "floor",
    "box_min_size": 1e-2,
    "mask_paste": "torchvision",
    "box_loss": "smooth_l1",
    "rpn_min_pos_iou": None,
    "box_min_pos_iou": None,
    "mask_targets": "torchvision",
}


def preset_from_record(record: dict) -> Preset:
    """The :class:`Preset` of a saved record (``dataclasses.asdict(preset)``, as checkpoints and
    ``config.json`` hold it): unknown keys are ignored, and a field of :data:`TORCHVISION_OPS`
    the record lacks (saved before it existed) takes its torchvision value, which is what that
    run computed. Raises ``ValueError`` as :class:`Preset` does."""
    known = {f.name for f in dataclasses.fields(Preset)}
    values = {**TORCHVISION_OPS, **{k: v for k, v in record.items() if k in known}}
    return Preset(**values)


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
    # toy-LVIS's 1000 train images with 1 < r(i) < 1.5 (docs/presets.md: rfs_rounding)
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
    **TORCHVISION_OPS,  # toy keeps torchvision's computation
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
