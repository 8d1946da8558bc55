"""Pretrained ResNet / ResNeXt weights for a Mask R-CNN's backbone, fetched only when asked.

Pretrained backbones are only fetched when asked (:func:`lvisnb.model.builder.build_model` with
``weights=True``, or :func:`load_backbone_weights`): ``"imagenet"`` is torchvision's weights API
(mmdetection's ``torchvision://resnet50`` is ``ResNet50_Weights.IMAGENET1K_V1``),
``"open-mmlab://NAME"`` is mmdetection's own ImageNet checkpoint (the ResNeXt rows); both need
network access once and are then cached by ``torch.hub`` (``~/.cache/torch/hub/checkpoints``). A
local path to a ``state_dict`` works offline. :func:`backbone_name` tells which
:data:`lvisnb.model.presets.BACKBONES` architecture a trunk has.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import get_weight
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.resnet import Bottleneck, ResNet

from lvisnb.model.checkpoint import describe_load_error, load_weights_only
from lvisnb.model.presets import BACKBONES

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
    """The :data:`~lvisnb.model.presets.BACKBONES` name whose architecture ``model``'s ResNet
    trunk has."""
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
        return load_weights_only(path)


def _hub_file(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` caches ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


@contextlib.contextmanager
def _unsafe_named(path: Path):
    """Turn ``torch.load(..., weights_only=True)``'s refusal of a file into a ``ValueError``
    naming ``path`` (torch's own message advises ``weights_only=False``, which would run
    whatever the file's pickle asks)."""
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

    ``model_or_backbone``: a MaskRCNN from :func:`lvisnb.model.builder.build_model`, its
    ``BackboneWithFPN``, or a ResNet from :func:`lvisnb.model.builder.build_resnet`. ``spec``:

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
