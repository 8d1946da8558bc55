"""torch data: an LVIS file as a ``Dataset`` of (image, target {boxes XYXY, labels 1..K,
masks}), ``torchvision.transforms.v2`` transforms, and repeat-factor sampling (LVIS's RFS).

Names are imported on first use (:mod:`lvisnb._lazy`).
"""

from lvisnb._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "LVISDetection": "dataset",
    "CategoryMapping": "dataset",
    "collate": "dataset",
    "train_transforms": "transforms",
    "eval_transforms": "transforms",
    "repeat_factors": "sampler",
    "repeat_factor_table": "sampler",
    "rfs_composition": "sampler",
    "build_sampler": "sampler",
    "RepeatFactorSampler": "sampler",
    "UniformSampler": "sampler",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
