"""What each :class:`lvisnb.model.presets.Preset` field reproduces in mmdetection: config key,
value and a note (:data:`MMDETECTION`), rendered by :mod:`lvisnb.model.preset_table` into the
"Presets" page. A new ``Preset`` field needs its :class:`Entry` here.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    """What one ``Preset`` field reproduces in mmdetection v2; markdown, backticks included."""

    key: str  # config key(s), e.g. "`optimizer.lr`"; "(none)" for a field of the kit only
    value: str  # its value in mmdetection's r50 1x LVIS v1 config, e.g. "`0.02`"
    note: str = ""  # how the kit differs or uses it, the other rows' values


# Preset field -> its mmdetection v2 config key, value and a note; one entry per field, in any
# order (the table follows Preset's declaration order)
MMDETECTION: dict[str, Entry] = {
    "name": Entry(
        "config file",
        "`configs/lvis/mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1.py`",
    ),
    "backbone": Entry(
        "`model.backbone.type`, `.depth`",
        "`'ResNet'`, `50`",
        "ResNeXt rows: `type='ResNeXt', depth=101, groups=32` (or `64`), `base_width=4`; built "
        "as torchvision `ResNet(Bottleneck, groups=..., width_per_group=4)`",
    ),
    "norm": Entry(
        "`model.backbone.norm_cfg`, `.norm_eval`",
        "`dict(type='BN', requires_grad=True)`, `True`",
        "`'bn_eval'`: BatchNorm held in eval mode, statistics fixed, affine weight/bias trained "
        "in layer2-4, as mmdetection; `'frozen_bn'` (torchvision, detectron2) fixes the affine "
        "too",
    ),
    "gn_groups": Entry(
        "(none)",
        "(none)",
        "GroupNorm groups where `norm` or `fpn_norm` is `'gn'`; unused by the mmdetection rows",
    ),
    "trainable_layers": Entry(
        "`model.backbone.frozen_stages`",
        "`1`",
        "`frozen_stages=1`: stem and layer1 frozen, layer2-4 trained (`requires_grad=False` on "
        "the rest)",
    ),
    "pretrained": Entry(
        "`model.backbone.init_cfg.checkpoint`",
        "`'torchvision://resnet50'`",
        "`'imagenet'` = `ResNet50_Weights.IMAGENET1K_V1`, the file mmcv maps "
        "`torchvision://resnet50` to; ResNeXt rows use `'open-mmlab://resnext101_32x4d'` / "
        "`_64x4d`, the same URLs as mmcv; a local state_dict path works offline",
    ),
    "fpn_channels": Entry(
        "`model.neck.out_channels`",
        "`256`",
        "`FPN(num_outs=5)`: P2-P5 plus max-pooled P6",
    ),
    "fpn_norm": Entry("`model.neck.norm_cfg`", "`None`"),
    "anchor_sizes": Entry(
        "`model.rpn_head.anchor_generator.scales` x `.strides`",
        "`[8]` x `[4, 8, 16, 32, 64]`",
        "one size per level, 8 x stride",
    ),
    "anchor_ratios": Entry(
        "`model.rpn_head.anchor_generator.ratios`",
        "`[0.5, 1.0, 2.0]`",
        "height / width in both",
    ),
    "box_head_dim": Entry(
        "`model.roi_head.bbox_head.fc_out_channels`",
        "`1024`",
        "`Shared2FCBBoxHead` = torchvision `TwoMLPHead`, RoIAlign 7x7",
    ),
    "mask_head_channels": Entry(
        "`model.roi_head.mask_head.conv_out_channels`",
        "`256`",
        "`FCNMaskHead(num_convs=4)`, RoIAlign 14x14, 28x28 masks",
    ),
    "dataset": Entry(
        "`dataset_type`",
        "`'LVISV1Dataset'`",
        "v0.5 rows: `'LVISV05Dataset'` (`_base_/datasets/lvis_v0.5_instance.py`)",
    ),
    "num_classes": Entry(
        "`model.roi_head.bbox_head.num_classes`, `mask_head.num_classes`",
        "`1203`",
        "v0.5 rows: `1230`; torchvision predicts `num_classes + 1` with background at label 0 "
        "(mmdetection: last); `toy`: from the data",
    ),
    "train_scales": Entry(
        "`train_pipeline` `Resize.img_scale`, `multiscale_mode`",
        "`[(1333, 640), (1333, 672), ..., (1333, 800)]`, `'value'`",
        "shorter side drawn from the list, in the data pipeline (`lvisnb.data.transforms`)",
    ),
    "max_size": Entry("`Resize.img_scale` long side (train and test)", "`1333`"),
    "test_scale": Entry(
        "`test_pipeline` `MultiScaleFlipAug.img_scale`",
        "`(1333, 800)`",
        "torchvision floors the resized size, mmdetection rounds (at most 1 px apart)",
    ),
    "flip_prob": Entry("`train_pipeline` `RandomFlip.flip_ratio`", "`0.5`"),
    "image_mean": Entry(
        "`img_norm_cfg.mean`",
        "`[123.675, 116.28, 103.53]`",
        "the same divided by 255",
    ),
    "image_std": Entry(
        "`img_norm_cfg.std`",
        "`[58.395, 57.12, 57.375]`",
        "the same divided by 255",
    ),
    "rfs_threshold": Entry(
        "`data.train.oversample_thr` (`type='ClassBalancedDataset'`)",
        "`1e-3`",
        "repeat-factor sampling; `toy`: 1e-3 of LVIS's ~100k images is 100 images, toy-LVIS has "
        "1000",
    ),
    "rfs_rounding": Entry(
        "`ClassBalancedDataset` repeat indices (`mmdet/datasets/dataset_wrappers.py`)",
        "`[dataset_idx] * math.ceil(repeat_factor)`",
        "`'ceil'`: image `i` exactly `ceil(r(i))` times every epoch, as mmdetection; "
        "`'stochastic'`: `floor(r(i))` plus one with probability `r(i) - floor(r(i))`, "
        'detectron2\'s `RepeatFactorTrainingSampler`; see "Repeat-factor rounding" below',
    ),
    "samples_per_gpu": Entry("`data.samples_per_gpu`", "`2`"),
    "num_gpus": Entry(
        "launcher (`tools/dist_train.sh CONFIG 8`)",
        "`8`",
        "the model zoo's setup: total batch 16",
    ),
    "optimizer": Entry(
        "`optimizer.type`",
        "`'SGD'`",
        "weight decay on every parameter (no `paramwise_cfg`)",
    ),
    "lr": Entry("`optimizer.lr`", "`0.02`"),
    "lr_batch": Entry(
        "`auto_scale_lr.base_batch_size`",
        "`16`",
        "linear scaling rule, `lvisnb.engine.schedule.scaled_lr(preset, total_batch)`: 1 GPU x 2 "
        "images -> 0.0025",
    ),
    "momentum": Entry("`optimizer.momentum`", "`0.9`"),
    "weight_decay": Entry("`optimizer.weight_decay`", "`0.0001`"),
    "grad_clip": Entry(
        "`optimizer_config.grad_clip`",
        "`None`",
        "`toy`: from-scratch GN training, max global grad L2 norm",
    ),
    "warmup": Entry("`lr_config.warmup`", "`'linear'`"),
    "warmup_iters": Entry("`lr_config.warmup_iters`", "`500`"),
    "warmup_ratio": Entry(
        "`lr_config.warmup_ratio`",
        "`0.001`",
        "`lvisnb.engine.schedule.lr_factor`: `1 - (1 - i / 500) * (1 - 0.001)` "
        "at iteration `i < 500`",
    ),
    "max_epochs": Entry(
        "`runner.max_epochs`",
        "`12`",
        "2x rows (v0.5): `24`; `toy` uses `max_iters`",
    ),
    "lr_steps": Entry(
        "`lr_config.step`",
        "`[8, 11]`",
        "epochs after which lr is multiplied by `gamma`; 2x rows: `[16, 22]`",
    ),
    "gamma": Entry("`lr_config.gamma`", "`0.1`", "`StepLrUpdaterHook` default"),
    "max_iters": Entry(
        "`runner.max_iters` (`IterBasedRunner`)",
        "(epoch-based)",
        "overrides the epochs when set; `lvisnb.engine.schedule.schedule_iters` converts epochs to "
        "iterations",
    ),
    "lr_steps_iters": Entry(
        "`lr_config.step` with `IterBasedRunner`",
        "(epoch-based)",
        "set together with `max_iters`",
    ),
    "rpn_pre_nms_top_n_train": Entry(
        "`model.train_cfg.rpn_proposal.nms_pre`",
        "`2000`",
        "per FPN level in both",
    ),
    "rpn_pre_nms_top_n_test": Entry(
        "`model.test_cfg.rpn.nms_pre`",
        "`1000`",
        "per FPN level in both",
    ),
    "rpn_post_nms_top_n_train": Entry(
        "`model.train_cfg.rpn_proposal.max_per_img`",
        "`1000`",
        "per image in both",
    ),
    "rpn_post_nms_top_n_test": Entry(
        "`model.test_cfg.rpn.max_per_img`",
        "`1000`",
        "per image in both",
    ),
    "rpn_nms_thresh": Entry(
        "`model.train_cfg.rpn_proposal.nms.iou_threshold`, `model.test_cfg.rpn.nms.iou_threshold`",
        "`0.7`",
    ),
    "rpn_fg_iou_thresh": Entry(
        "`model.train_cfg.rpn.assigner.pos_iou_thr`",
        "`0.7`",
        "low-quality matches on in both (mmdetection: `min_pos_iou=0.3`, torchvision: no minimum)",
    ),
    "rpn_bg_iou_thresh": Entry("`model.train_cfg.rpn.assigner.neg_iou_thr`", "`0.3`"),
    "rpn_batch_size_per_image": Entry("`model.train_cfg.rpn.sampler.num`", "`256`"),
    "rpn_positive_fraction": Entry("`model.train_cfg.rpn.sampler.pos_fraction`", "`0.5`"),
    "box_fg_iou_thresh": Entry("`model.train_cfg.rcnn.assigner.pos_iou_thr`", "`0.5`"),
    "box_bg_iou_thresh": Entry("`model.train_cfg.rcnn.assigner.neg_iou_thr`", "`0.5`"),
    "box_batch_size_per_image": Entry(
        "`model.train_cfg.rcnn.sampler.num`",
        "`512`",
        "ground-truth boxes added to the proposals in both",
    ),
    "box_positive_fraction": Entry("`model.train_cfg.rcnn.sampler.pos_fraction`", "`0.25`"),
    "box_score_thresh": Entry(
        "`model.test_cfg.rcnn.score_thr`",
        "`0.0001`",
        "LVIS configs' override of the base `0.05`",
    ),
    "box_nms_thresh": Entry(
        "`model.test_cfg.rcnn.nms.iou_threshold`",
        "`0.5`",
        "per class in both",
    ),
    "box_detections_per_img": Entry(
        "`model.test_cfg.rcnn.max_per_img`",
        "`300`",
        "LVIS allows 300 per image (base: `100`)",
    ),
    "mask_thresh": Entry("`model.test_cfg.rcnn.mask_thr_binary`", "`0.5`"),
    "anchor_round": Entry(
        "`AnchorGenerator` base anchors",
        "not rounded (`center_offset=0`)",
        "`True`: torchvision's `AnchorGenerator`, which rounds them to whole pixels (toy)",
    ),
    "anchor_strides": Entry(
        "`model.rpn_head.anchor_generator.strides`",
        "`[4, 8, 16, 32, 64]`",
        "`None`: torchvision infers each level's stride as padded size // feature size "
        "(61, not 64, for P6 of an 800-px side) (toy)",
    ),
    "roi_align_aligned": Entry(
        "`roi_layer.aligned` (`RoIAlign` default)",
        "`True`",
        "`False`: torchvision's `MultiScaleRoIAlign`, no half-pixel shift (toy)",
    ),
    "roi_align_sampling_ratio": Entry(
        "`model.roi_head.*_roi_extractor.roi_layer.sampling_ratio`",
        "`0`",
        "`2`: torchvision's `MultiScaleRoIAlign` (toy)",
    ),
    "test_resize_rounding": Entry(
        "`Resize(scale=(1333, 800), keep_ratio=True)` (mmcv `rescale_size`)",
        "`int(side * scale + 0.5)`",
        "`'floor'`: torchvision's `GeneralizedRCNNTransform` (toy); the pixels are "
        "interpolated bilinearly in both, on uint8 with OpenCV in mmdetection, on float here",
    ),
    "box_min_size": Entry(
        "`multiclass_nms`",
        "no size filter",
        "`0.01`: torchvision's `RoIHeads` drops detections under 0.01 px (toy)",
    ),
    "box_loss": Entry(
        "`model.rpn_head.loss_bbox`, `model.roi_head.bbox_head.loss_bbox`",
        "`dict(type='L1Loss', loss_weight=1.0)`",
        "`'smooth_l1'`: torchvision's RPN and `fastrcnn_loss`, beta 1/9 (toy); both divide the "
        "positives' sum by the RoIs sampled",
    ),
    "rpn_min_pos_iou": Entry(
        "`model.train_cfg.rpn.assigner.min_pos_iou`",
        "`0.3` (`match_low_quality=True`)",
        "`None`: torchvision's `Matcher(allow_low_quality_matches=True)`, no minimum, each "
        "such anchor kept for its own best ground truth (toy)",
    ),
    "box_min_pos_iou": Entry(
        "`model.train_cfg.rcnn.assigner.min_pos_iou`",
        "`0.5` (`match_low_quality=True`)",
        "`None`: torchvision's RoI heads match no low-quality proposals (toy)",
    ),
    "mask_targets": Entry(
        "`mask_target` (`BitmapMasks.crop_and_resize`)",
        "RoIAlign `aligned=True`, binarised at 0.5",
        "`'torchvision'`: `project_masks_on_boxes`, RoIAlign `aligned=False`, soft targets (toy)",
    ),
    "mask_paste": Entry(
        "`FCNMaskHead._do_paste_mask`",
        "`grid_sample` at pixel centres",
        "`'torchvision'`: `paste_masks_in_image` resizes the padded 28 x 28 map to the box "
        "rounded to whole pixels (toy)",
    ),
    "cls_loss": Entry(
        "`model.roi_head.bbox_head.loss_cls.type`",
        "`'CrossEntropyLoss'`",
        "`configs/seesaw_loss/` rows: `'SeesawLoss'`; also `'eqlv2'` (tztztztztz/eqlv2, "
        "`type='EQLv2'`) and `'federated'` (detectron2 `USE_FED_LOSS=True` with sigmoid CE); "
        "see `lvisnb.model.losses`",
    ),
    "seesaw_p": Entry("`loss_cls.p` (`SeesawLoss`)", "`0.8`", "mitigation exponent"),
    "seesaw_q": Entry("`loss_cls.q` (`SeesawLoss`)", "`2.0`", "compensation exponent"),
    "seesaw_eps": Entry(
        "`loss_cls.eps` (`SeesawLoss` default)",
        "`1e-2`",
        "floor of the own-class score in the compensation ratio",
    ),
    "seesaw_cls_temperature": Entry(
        "`model.roi_head.bbox_head.cls_predictor_cfg`",
        "`dict(type='NormedLinear', tempearture=20)`",
        "read with `cls_loss='seesaw'` only; `None` = `nn.Linear` (`dict(type='Linear')`)",
    ),
    "normed_mask_temperature": Entry(
        "`model.roi_head.mask_head.predictor_cfg`",
        "`dict(type='Conv')`",
        "`*_normed_mask_*` rows: `dict(type='NormedConv2d', tempearture=20)`; any loss",
    ),
    "eqlv2_gamma": Entry("eqlv2 `loss_cls.gamma` (not in mmdetection v2)", "`12`", "slope of f(g)"),
    "eqlv2_mu": Entry("eqlv2 `loss_cls.mu`", "`0.8`", "centre of f(g)"),
    "eqlv2_alpha": Entry("eqlv2 `loss_cls.alpha`", "`4.0`", "positive-weight gain"),
    "fed_num_classes": Entry(
        "detectron2 `MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES`",
        "`50`",
        "classes trained per batch: the batch's ground truth plus drawn negatives",
    ),
    "fed_freq_weight_power": Entry(
        "detectron2 `MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER`",
        "`0.5`",
        "negatives drawn in proportion to train image count ** power",
    ),
}
