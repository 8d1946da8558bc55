"""The "Presets" page (docs/presets.md), rendered from :mod:`lvisnb.model.presets` so every value
exists once.

The section (between ``<!-- presets:start -->`` and ``<!-- presets:end -->`` in docs/presets.md) is
generated whole, prose included: a table of the rows (:data:`~lvisnb.model.presets.PRESETS`) with
the fields in which mmdetection's rows differ, and a table of every
:class:`~lvisnb.model.presets.Preset` field with its value in the default row ("kit") and in
``toy``, next to what it reproduces in mmdetection v2 (:data:`MMDETECTION`). Values are ``repr`` in
backticks.

Adding a field to ``Preset`` takes one more thing: its :class:`Entry` in :data:`MMDETECTION`
(rendering fails naming any field without one). Then regenerate and commit the page::

    python -m lvisnb.model.preset_table --write docs/presets.md

``tests/model/test_preset_table.py`` fails, with that command, while docs/presets.md differs from
:func:`presets_markdown`. Without ``--write`` the section is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from lvisnb.files import write_text_atomic
from lvisnb.model.presets import PRESETS, TOY, Preset

START, END = "<!-- presets:start -->", "<!-- presets:end -->"
COMMAND = "python -m lvisnb.model.preset_table --write docs/presets.md"


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
        "differs: `FrozenBatchNorm2d` freezes the statistics (as `norm_eval=True`) and also the "
        "affine weight/bias, which mmdetection still learns in layer2-4 (detectron2 freezes "
        "them too)",
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

_INTRO = """\
<!-- generated from lvisnb/model/presets.py and lvisnb/model/preset_table.py: edit those, then run
     python -m lvisnb.model.preset_table --write docs/presets.md -->
## Presets

`lvisnb.model.presets.PRESETS` holds mmdetection's LVIS Mask R-CNN rows as frozen `Preset`
dataclasses, named exactly as mmdetection's `configs/lvis/` and `configs/seesaw_loss/` files, plus
`toy` (ResNet-10 + GroupNorm from scratch, small images, trains on a 2-core CPU).
`get_preset(name, **overrides)` returns a validated copy with fields replaced;
`build_model(name_or_preset, num_classes=None)` builds the torchvision `MaskRCNN` (`num_classes`
is required for `toy`, whose classes come from the data). The box classification loss is a
field like the others (`cls_loss`: `'ce'`, `'seesaw'`, `'eqlv2'`, `'federated'`, with its
parameters below; `lvisnb.model.losses`), so every row, `toy` included, trains with any of them:
`get_preset(name, cls_loss='eqlv2')`, `lvisnb train --overrides '{cls_loss: federated}'`.

The rows differ only in these fields (values as `Preset` holds them):
"""

_TOY_SCHEDULE = """\
(`toy` trains by iterations instead: `max_iters={max_iters!r}`, \
`lr_steps_iters={lr_steps_iters!r}`; its other
differences are in the `toy` column below.)
"""

_ROUNDING = """\
**Repeat-factor rounding.** Every row samples images by their repeat factor
`r(i) = max over categories c in i of max(1, sqrt(t / f(c)))` (`t = rfs_threshold`, `f(c)` the
fraction of training images containing `c`), but `r(i)` is fractional and the codebases round it
differently; `rfs_rounding` picks which (`lvisnb.data.sampler.RepeatFactorSampler(rounding=...)`):

- the `mask_rcnn_*` rows use **`'ceil'`**: mmdetection's `ClassBalancedDataset` lists
  image `i` `ceil(r(i))` times, so an epoch is `sum_i ceil(r(i))` images, the same every epoch.
  Their schedules are in epochs (12 or 24), and an epoch's length sets how many iterations they
  train; with stochastic rounding an epoch is only `sum_i r(i)` long on average, which on LVIS v1
  is about 10% shorter than mmdetection's, so a "1x" row would train about 9% fewer iterations
  than the mmdetection config it is named after;
- **`toy`** uses **`'stochastic'`** (detectron2's `RepeatFactorTrainingSampler`): it reproduces
  no mmdetection row and trains a fixed number of iterations, so the epoch length sets nothing,
  while stochastic rounding keeps each image's expected count at exactly `r(i)`. `'ceil'` would
  double the 230 of toy-LVIS's 1,000 train images whose `r(i)` lies in (1, 1.5) and make an
  epoch 20% longer (1,735 images against `sum_i r(i)` = 1,445);
- a detectron2-style preset (a schedule in iterations, as detectron2's LVIS configs) should use
  `'stochastic'`, which is what detectron2 does.

`TrainConfig(rfs_rounding=...)` (`lvisnb train --rfs-rounding stochastic`) overrides the preset's.
With `t = 0` (or the `uniform` sampler) both roundings give a plain shuffled pass over the images.
"""

_FIELDS_INTRO = """\
Every field, its value in the `{kit}` row ("kit") and
in `toy`, and the mmdetection v2 config key and value it reproduces (`model.*` keys are from
`_base_/models/mask_rcnn_r50_fpn.py` with the LVIS configs' overrides, `data.*` from
`_base_/datasets/lvis_v1_instance.py`, `optimizer*`/`lr_config`/`runner` from
`_base_/schedules/schedule_1x.py`). Sizes are pixels, images are RGB scaled to [0, 1].
"""

_DIFFERENCES = """\
Differences that are not settings: torchvision's RoIAlign uses `sampling_ratio=2, aligned=False`
(mmdetection v2: `sampling_ratio=0`, `aligned=True`), its RPN and box losses are smooth-L1 with
`beta=1/9` (mmdetection v2: L1), the BN affine parameters stay frozen (see `norm`), and the RoI
matcher does not keep low-quality matches (mmdetection's `match_low_quality=True`; with both
RoI thresholds at 0.5 this changes almost nothing).
"""


def value_cell(value: object) -> str:
    """A field value as the tables show it: its ``repr`` in backticks (``'resnet50'``, ``None``)."""
    return f"`{value!r}`"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("|" + "|".join(f" {c} " if c else " " for c in line) + "|" for line in lines)


def row_fields() -> list[str]:
    """The fields besides ``name`` in which some mmdetection row (``configs/lvis`` or
    ``configs/seesaw_loss``) differs from ``Preset()``'s defaults, in declaration order: the
    columns of :func:`rows_table`."""
    default = Preset()
    rows = [preset for name, preset in PRESETS.items() if name != TOY.name]
    return [
        f.name
        for f in dataclasses.fields(Preset)
        if f.name != "name" and any(getattr(p, f.name) != getattr(default, f.name) for p in rows)
    ]


def rows_table() -> str:
    """One line per preset of ``PRESETS`` (in order) with its values of :func:`row_fields`."""
    fields = row_fields()
    rows = [
        [f"`{name}`", *(value_cell(getattr(preset, f)) for f in fields)]
        for name, preset in PRESETS.items()
    ]
    return _table(["preset", *fields], rows)


def undocumented(
    preset_cls: type = Preset, mmdetection: Mapping[str, Entry] = MMDETECTION
) -> list[str]:
    """The fields of ``preset_cls`` that have no entry in ``mmdetection``, in declaration order."""
    return [f.name for f in dataclasses.fields(preset_cls) if f.name not in mmdetection]


def fields_table(mmdetection: Mapping[str, Entry] = MMDETECTION) -> str:
    """One line per ``Preset`` field: its value in ``Preset()`` and ``TOY``, then its entry.

    Raises ``ValueError`` naming the fields without an entry, or entries for no field.
    """
    missing = undocumented(Preset, mmdetection)
    unknown = sorted(set(mmdetection) - {f.name for f in dataclasses.fields(Preset)})
    problems = [f"no entry for Preset field(s) {missing}"] if missing else []
    problems += [f"entries for no field {unknown}"] if unknown else []
    if problems:
        raise ValueError(f"lvisnb.model.preset_table.MMDETECTION: {'; '.join(problems)}")
    default = Preset()
    rows = []
    for f in dataclasses.fields(Preset):
        key, value, note = mmdetection[f.name]
        kit, toy = getattr(default, f.name), getattr(TOY, f.name)
        rows.append([f"`{f.name}`", value_cell(kit), value_cell(toy), key, value, note])
    header = ["field", "kit", "toy", "mmdetection key", "mmdetection value", "note"]
    return _table(header, rows)


def presets_markdown() -> str:
    """The Presets section of a page: everything between its two markers, newlines included."""
    toy_schedule = _TOY_SCHEDULE.format(max_iters=TOY.max_iters, lr_steps_iters=TOY.lr_steps_iters)
    parts = [
        _INTRO,
        rows_table(),
        toy_schedule,
        _ROUNDING,
        _FIELDS_INTRO.format(kit=Preset().name),
        fields_table(),
        _DIFFERENCES,
    ]
    return "\n" + "\n\n".join(part.strip("\n") for part in parts) + "\n"


def split_section(text: str) -> tuple[str, str, str]:
    """``(before START, between the markers, after END)`` of ``text``; ``ValueError`` unless
    each marker occurs once, ``START`` first."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"expected one {START!r} followed by one {END!r}")
    head, rest = text.split(START)
    section, tail = rest.split(END)
    return head, section, tail


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between its markers (:func:`split_section`) set to ``section``."""
    head, _, tail = split_section(text)
    return head + START + section + END + tail


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lvisnb.model.preset_table",
        description="Print the Presets section (docs/presets.md) generated from "
        "lvisnb.model.presets, or "
        "rewrite it in place between its markers.",
    )
    parser.add_argument(
        "--write", metavar="PAGE", type=Path, help="rewrite the section of this file"
    )
    args = parser.parse_args(argv)
    section = presets_markdown()
    if args.write is None:
        sys.stdout.write(section)
        return 0
    text = args.write.read_text(encoding="utf-8")
    try:
        new = replace_section(text, section)
    except ValueError as error:
        parser.error(f"{args.write}: {error}")
    if new == text:
        print(f"{args.write}: Presets section already up to date")
    else:
        write_text_atomic(args.write, new)
        print(f"{args.write}: Presets section rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
