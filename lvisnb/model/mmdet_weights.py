"""mmdetection Mask R-CNN checkpoints in the kit's model: read, checked, converted, loaded.

A checkpoint of mmdetection 2.x or 3.x (``{"meta": ..., "state_dict": ...}``, or a bare state
dict; both versions name these modules' weights alike) is read with ``weights_only=True``
(:func:`read_mmdet_state_dict`) and its weights renamed and laid out as the kit's
torchvision-based model holds them (:func:`convert_mmdet_state_dict`):

- ``backbone.*`` -> ``backbone.body.*`` (``num_batches_tracked`` only where the kit's norm
  has it);
- ``neck.lateral_convs.i.conv.*`` / ``neck.fpn_convs.i.conv.*`` ->
  ``backbone.fpn.inner_blocks.i.0.*`` / ``backbone.fpn.layer_blocks.i.0.*``;
- ``rpn_head.rpn_conv`` / ``rpn_cls`` / ``rpn_reg`` -> ``rpn.head.conv.0.0`` / ``cls_logits`` /
  ``bbox_pred``;
- ``roi_head.bbox_head.shared_fcs.0`` / ``.1`` -> ``roi_heads.box_head.fc6`` / ``fc7``;
- ``roi_head.bbox_head.fc_cls`` (C+1 outputs) -> ``roi_heads.box_predictor.cls_score`` with the
  background moved from last to first; Seesaw's C+2 ``[classes, object, background]`` becomes
  ``[background, classes, object]``;
- ``roi_head.bbox_head.fc_reg`` (4C) -> ``roi_heads.box_predictor.bbox_pred`` (4(C+1)): four
  zero rows for the background, which is never decoded;
- ``roi_head.bbox_head.loss_cls.cum_samples`` (Seesaw's class counts) ->
  ``roi_heads.cls_loss.cum_samples``, background first;
- ``roi_head.mask_head.convs.i.conv.*`` -> ``roi_heads.mask_head.i.0.*``;
  ``roi_head.mask_head.upsample`` -> ``roi_heads.mask_predictor.conv5_mask``;
- ``roi_head.mask_head.conv_logits`` (C) -> ``roi_heads.mask_predictor.mask_fcn_logits`` (C+1):
  a zero background channel first.

Class ``k`` of mmdetection (0-based, the ``k``-th LVIS category id in ascending order, as its
``LVISV1Dataset`` numbers them) is the kit's label ``k + 1``. A file whose weights do not fit
the chosen preset is refused naming the keys missing or left over and the shapes that differ,
with the class count when that is what differs (:class:`MMDetCheckpointError`).
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from lvisnb.model.checkpoint import load_weights_only
from lvisnb.model.mmdet_zoo import PUBLISHED
from lvisnb.model.presets import DATASETS, PRESETS, Preset

__all__ = [
    "MMDetCheckpointError",
    "read_mmdet_state_dict",
    "convert_mmdet_state_dict",
    "infer_preset_name",
    "mmdet_class_count",
    "mmdet_class_names",
]


class MMDetCheckpointError(ValueError):
    """An mmdetection checkpoint that cannot be loaded; the message names the file and why."""


_PREFIXES = (  # mmdetection prefix -> kit prefix, first match wins
    ("backbone.", "backbone.body."),
    ("rpn_head.rpn_conv.", "rpn.head.conv.0.0."),
    ("rpn_head.rpn_cls.", "rpn.head.cls_logits."),
    ("rpn_head.rpn_reg.", "rpn.head.bbox_pred."),
    ("roi_head.bbox_head.shared_fcs.0.", "roi_heads.box_head.fc6."),
    ("roi_head.bbox_head.shared_fcs.1.", "roi_heads.box_head.fc7."),
    ("roi_head.bbox_head.fc_cls.", "roi_heads.box_predictor.cls_score."),
    ("roi_head.bbox_head.fc_reg.", "roi_heads.box_predictor.bbox_pred."),
    ("roi_head.bbox_head.loss_cls.cum_samples", "roi_heads.cls_loss.cum_samples"),
    ("roi_head.mask_head.upsample.", "roi_heads.mask_predictor.conv5_mask."),
    ("roi_head.mask_head.conv_logits.", "roi_heads.mask_predictor.mask_fcn_logits."),
)


_LAYERS = (  # mmdetection's per-layer names -> the kit's ({i}: layer index, {p}: the tensor)
    ("neck.lateral_convs.{i}.conv.{p}", "backbone.fpn.inner_blocks.{i}.0.{p}"),
    ("neck.fpn_convs.{i}.conv.{p}", "backbone.fpn.layer_blocks.{i}.0.{p}"),
    ("roi_head.mask_head.convs.{i}.conv.{p}", "roi_heads.mask_head.{i}.0.{p}"),
)


def _renamed(key: str, pairs) -> str | None:
    """``key`` renamed by the first ``(from, to)`` template pair that matches it whole."""
    for source, target in pairs:
        pattern = (
            re.escape(source).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", "(?P<p>[^.]+)")
        )
        if match := re.fullmatch(pattern, key):
            return target.format(**match.groupdict())
    return None


def _kit_key(key: str) -> str | None:
    """The kit's name of mmdetection's weight ``key``, or ``None`` for one the kit has no
    place for."""
    if (renamed := _renamed(key, _LAYERS)) is not None:
        return renamed
    return next((t + key[len(s) :] for s, t in _PREFIXES if key.startswith(s)), None)


def _file_key(kit: str) -> str:
    """mmdetection's name of the kit's weight ``kit`` (the inverse of :func:`_kit_key`), so that
    errors name keys as the user's file holds them; ``kit`` itself where it has none."""
    if (renamed := _renamed(kit, [(t, s) for s, t in _LAYERS])) is not None:
        return renamed
    return next((s + kit[len(t) :] for s, t in _PREFIXES if kit.startswith(t)), kit)


def _file_shape(kit: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape mmdetection's file holds for the kit's weight ``kit`` of ``shape``: the box
    regression without the background's 4 rows, the mask logits without its channel."""
    rows = {"roi_heads.box_predictor.bbox_pred.": 4, "roi_heads.mask_predictor.mask_fcn_logits.": 1}
    for prefix, extra in rows.items():
        if kit.startswith(prefix):
            return (shape[0] - extra, *shape[1:])
    return shape


_UNREADABLE = "not a readable torch checkpoint (damaged, truncated, or not written by torch.save)"


def read_mmdet_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, meta)`` of an mmdetection checkpoint file, read with ``weights_only=True``.

    ``meta`` is the file's ``"meta"`` dict (``{}`` when absent). A leading ``module.`` (a model
    saved inside ``DistributedDataParallel``) is dropped from every key. Raises
    :class:`MMDetCheckpointError` naming the file for a missing, unreadable or non-torch file,
    one holding objects ``weights_only`` refuses (an mmengine training checkpoint with its
    message hub: publish it first with mmdetection's ``tools/model_converters/publish_model.py``),
    or one without tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise MMDetCheckpointError(f"{path}: a folder, not a checkpoint file")
    if not path.is_file():
        raise MMDetCheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = load_weights_only(path)
    except pickle.UnpicklingError as error:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if refused is None:
            raise MMDetCheckpointError(f"{path}: {_UNREADABLE}") from None
        raise MMDetCheckpointError(
            f"{path}: holds objects that weights_only=True refuses ({refused.group(1)}); strip a "
            "training checkpoint to its weights with mmdetection's "
            "tools/model_converters/publish_model.py"
        ) from None
    except Exception:  # noqa: BLE001 - whatever torch raises on a file it cannot read
        raise MMDetCheckpointError(f"{path}: {_UNREADABLE}") from None
    if not isinstance(payload, dict):
        raise MMDetCheckpointError(f"{path}: holds a {type(payload).__name__}, not a dict")
    state = payload.get("state_dict", payload)
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    if not isinstance(state, dict) or not any(torch.is_tensor(v) for v in state.values()):
        raise MMDetCheckpointError(f"{path}: holds no weights (no 'state_dict' of tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}
    return state, meta


def mmdet_class_count(state: dict[str, torch.Tensor]) -> int | None:
    """C of an mmdetection Mask R-CNN state dict (its mask logits' channels), else ``None``."""
    logits = state.get("roi_head.mask_head.conv_logits.weight")
    return None if logits is None else int(logits.shape[0])


def _relayout(key: str, value: torch.Tensor, seesaw: bool) -> torch.Tensor:
    """``value`` of the kit's ``key`` laid out as the kit holds it (background first)."""
    if key.startswith("roi_heads.box_predictor.cls_score."):
        if seesaw:  # [classes, object, background] -> [background, classes, object]
            return torch.cat([value[-1:], value[:-2], value[-2:-1]])
        return torch.cat([value[-1:], value[:-1]])
    if key.startswith("roi_heads.box_predictor.bbox_pred."):
        return torch.cat([value.new_zeros((4, *value.shape[1:])), value])
    if key.startswith("roi_heads.mask_predictor.mask_fcn_logits."):
        return torch.cat([value.new_zeros((1, *value.shape[1:])), value])
    if key == "roi_heads.cls_loss.cum_samples":
        return torch.cat([value[-1:], value[:-1]])
    return value


def convert_mmdet_state_dict(
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    preset: Preset,
    source: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """mmdetection's Mask R-CNN weights ``state`` as the kit's state dict for ``preset``.

    ``expected``: the kit model's own ``state_dict()`` (names and shapes to fill). Keys of
    ``expected`` that mmdetection's file may lack and that are not weights (Seesaw's
    ``cum_samples``, BatchNorm's ``num_batches_tracked``) keep the model's values. Raises
    :class:`MMDetCheckpointError` naming ``source`` and what differs: the class count, keys
    missing from the file, keys the kit has no place for, shapes, and weights that are not
    finite (named as the file names them).
    """
    count = mmdet_class_count(state)
    if count is not None and count != preset.num_classes:
        raise MMDetCheckpointError(
            f"{source}: an mmdetection model of {count} classes, preset {preset.name!r} has "
            f"{preset.num_classes} (LVIS {_dataset_of(count)})"
        )
    seesaw = preset.cls_loss == "seesaw"
    converted, unplaced = {}, []
    for key, value in state.items():
        kit = _kit_key(key)
        if kit is None or kit not in expected:
            if not key.endswith("num_batches_tracked"):  # FrozenBatchNorm2d has none
                unplaced.append(key)
            continue
        converted[kit] = _relayout(kit, value, seesaw)
    optional = {"roi_heads.cls_loss.cum_samples"}
    optional |= {k for k in expected if k.endswith("num_batches_tracked")}
    absent = sorted(set(expected) - set(converted) - optional, key=_natural)
    missing = [_file_key(k) for k in absent]
    shapes = [
        f"{key}: file {tuple(value.shape)}, preset {_file_shape(kit, tuple(expected[kit].shape))}"
        for key, value in state.items()
        if (kit := _kit_key(key)) in converted
        and tuple(converted[kit].shape) != tuple(expected[kit].shape)
    ]
    problems = _listed("missing from the file", missing) + _listed("not in the kit", unplaced)
    problems += _listed("of another shape", shapes)
    problems += _listed("not finite (NaN or infinite values)", _non_finite(state))
    if problems:
        raise MMDetCheckpointError(
            f"{source}: not an mmdetection Mask R-CNN of preset {preset.name!r}: "
            + "; ".join(problems)
        )
    return {**{k: expected[k] for k in optional & set(expected) - set(converted)}, **converted}


def _non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """The file's floating-point weights that hold a NaN or an infinity."""
    return [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]


def _natural(key: str) -> list:
    """Sort key reading the numbers in a weight's name as numbers (``layer3.6`` < ``layer3.10``)."""
    return [int(part) if part.isdigit() else part for part in key.split(".")]


def _listed(what: str, items: list[str], shown: int = 5) -> list[str]:
    if not items:
        return []
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    noun = "weight" if len(items) == 1 else "weights"
    return [f"{len(items)} {noun} {what} ({', '.join(items[:shown])}{more})"]


def _dataset_of(count: int) -> str:
    names = [version for version, classes in DATASETS.items() if classes == count]
    return names[0] if names else "of neither version"


def infer_preset_name(
    path: str | os.PathLike,
    state: dict[str, torch.Tensor],
    meta: dict,
    dataset: str | None = None,
) -> str:
    """The kit preset of an mmdetection checkpoint.

    The preset whose name, or whose published file's name, is the file's name without its hash
    (mmdetection's ``NAME-HASH.pth``); else the seed row of the file's class count and backbone
    (block count of ``layer3``, width of ``layer1``'s grouped convolution), of the LVIS version
    ``dataset`` when given (a model of some of its categories) else of that class count's
    (either version for a count of neither); where the weights leave a choice (the Seesaw
    rows, whose weights do not tell their mask logits' normalisation; the versions), the one
    whose name begins the file's name (``NAME_finetuned.pth``, the longest such). ``meta``
    is not read. Raises :class:`MMDetCheckpointError` naming the file when the weights are not
    those of a kit backbone's Mask R-CNN, or when a choice is left (naming the candidates).
    """
    stem = re.sub(r"-[0-9a-f]{8,}$", "", Path(path).name.split(".pth")[0])
    published = {row.file_name.rsplit("-", 1)[0]: name for name, row in PUBLISHED.items()}
    named = {**published, **{name: name for name in PUBLISHED}}
    if stem in named:
        return named[stem]
    count, backbone, seesaw = _architecture(state)
    if count is None or backbone is None:
        raise MMDetCheckpointError(
            f"{path}: not an mmdetection Mask R-CNN of a kit backbone ("
            + "; ".join(_unrecognised(state, count, backbone))
            + "); name the preset with --preset to see what differs"
        )
    full = [version for version, classes in DATASETS.items() if classes == count]
    datasets = [dataset] if dataset else full or list(DATASETS)  # some categories: either
    fitting = [
        name
        for name, preset in PRESETS.items()
        if name != "toy"
        and preset.dataset in datasets
        and preset.backbone == backbone
        and (preset.cls_loss == "seesaw") == seesaw
    ]
    prefixed = sorted((name for name in fitting if stem.startswith(name)), key=len)
    if prefixed:
        return prefixed[-1]
    candidates = [name for name in fitting if not seesaw or "random" not in name]
    if len(candidates) == 1:  # the random-sampling Seesaw rows hold the same model
        return candidates[0]
    described = f"{count} classes, backbone {backbone}, {'Seesaw' if seesaw else 'softmax'}"
    raise MMDetCheckpointError(
        f"{path}: cannot tell the preset from the file ({described}); name it with --preset "
        f"(candidates: {', '.join(candidates) or 'none of the kit presets'})"
    )


_BACKBONES = {  # (layer3 blocks, layer1.0.conv2 (out, in / groups)) -> kit backbone
    (6, (64, 64)): "resnet50",
    (23, (64, 64)): "resnet101",
    (23, (128, 4)): "resnext101_32x4d",
    (23, (256, 4)): "resnext101_64x4d",
}


def _architecture(state: dict[str, torch.Tensor]) -> tuple[int | None, str | None, bool]:
    """``(class count, kit backbone, Seesaw classifier)`` of an mmdetection state dict; ``None``
    for what its weights do not show."""
    count = mmdet_class_count(state)
    cls = state.get("roi_head.bbox_head.fc_cls.weight")
    seesaw = cls is not None and count is not None and cls.shape[0] == count + 2
    return count, _BACKBONES.get(_backbone_shape(state)), seesaw


def _backbone_shape(state: dict[str, torch.Tensor]) -> tuple[int, tuple[int, int] | None]:
    """``(blocks of layer3, layer1.0.conv2's (out, in / groups) channels or None)``."""
    blocks = 1 + max(
        (int(k.split(".")[2]) for k in state if re.match(r"backbone\.layer3\.\d+\.", k)),
        default=-1,
    )
    conv = state.get("backbone.layer1.0.conv2.weight")
    return blocks, None if conv is None or conv.dim() < 2 else tuple(conv.shape[:2])


def _unrecognised(state: dict[str, torch.Tensor], count: int | None, backbone: str | None):
    """What the weights lack of a kit preset's Mask R-CNN, as phrases for an error message."""
    problems = []
    if count is None:
        problems.append("no roi_head.mask_head.conv_logits.weight, which gives the class count")
    if backbone is None:
        blocks, conv = _backbone_shape(state)
        problems.append(
            f"backbone.layer3 of {blocks} blocks and backbone.layer1.0.conv2 of channels "
            f"{conv}, which is neither ResNet-50/101 nor ResNeXt-101 32x4d/64x4d"
        )
    return problems


def mmdet_class_names(meta: dict) -> tuple[str, ...] | None:
    """The class names of an mmdetection checkpoint in label order, where its ``meta`` holds
    them (3.x: ``meta["dataset_meta"]["classes"]``; 2.x: ``meta["CLASSES"]``), else ``None``."""
    dataset_meta = meta.get("dataset_meta")
    names = dataset_meta.get("classes") if isinstance(dataset_meta, dict) else None
    names = names if names is not None else meta.get("CLASSES")
    if isinstance(names, list | tuple) and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None
