"""The model: mmdetection's LVIS Mask R-CNN rows as presets, the torchvision Mask R-CNN they
build, backbone weights, the RoI heads and long-tail classification losses, and checkpoints.

Names are imported on first use (:mod:`lvisnb._lazy`).
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "Preset": "presets",
    "PRESETS": "presets",
    "SEED_PRESETS": "presets",
    "SEESAW_PRESETS": "presets",
    "get_preset": "presets",
    "build_model": "builder",
    "load_backbone_weights": "backbone_weights",
    "CLS_LOSSES": "losses",
    "build_cls_loss": "losses",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
