"""Training and test transforms (`torchvision.transforms.v2`: boxes and masks move together).

mmdetection's LVIS ``mstrain`` setting: shorter side drawn from (640, 672, 704, 736, 768, 800),
longer side at most 1333, horizontal flip with probability 0.5; test: shorter side 800, longer
at most 1333.

Training resizes here, in the data loader workers. Test-time resizing is left to the model's
own ``GeneralizedRCNNTransform`` (``min_size=test_scale``) because its ``postprocess`` maps
boxes and masks back to the *original* image pixels, which LVIS results need; the kit's model
therefore skips its internal resize in training mode only (see :mod:`lvisnb.model`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2


def train_transforms(
    scales: Sequence[int] = (640, 672, 704, 736, 768, 800),
    max_size: int = 1333,
    flip_prob: float = 0.5,
) -> v2.Compose:
    """Multi-scale resize (shorter side from ``scales``, longer <= ``max_size``), flip, to float.

    Boxes that become empty (width or height < 1 px) are removed with their labels and masks.
    """
    return v2.Compose(
        [
            v2.RandomShortestSize(min_size=list(scales), max_size=max_size, antialias=True),
            v2.RandomHorizontalFlip(p=flip_prob),
            v2.ToDtype(torch.float32, scale=True),
            v2.SanitizeBoundingBoxes(min_size=1.0),
        ]
    )


def eval_transforms() -> v2.Compose:
    """Image to float32 in [0, 1]; resizing to the test scale happens inside the model."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True)])
