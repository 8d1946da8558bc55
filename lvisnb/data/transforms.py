"""Training and test transforms (`torchvision.transforms.v2`: boxes and masks move together).

mmdetection's LVIS ``mstrain`` setting: shorter side drawn from (640, 672, 704, 736, 768, 800),
longer side at most 1333, horizontal flip with probability 0.5; test: shorter side 800, longer
at most 1333.

Training resizes here, in the data loader workers. Test-time resizing is left to the model's
own ``GeneralizedRCNNTransform`` (``min_size=test_scale``) because its ``postprocess`` maps
boxes and masks back to the *original* image pixels, which LVIS results need; the kit's model
therefore skips its internal resize in training mode only (see :mod:`lvisnb.model.builder`).
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
    """Multi-scale resize (shorter side from ``scales``, longer <= ``max_size``), flip, to float,
    then clamp the boxes to the image and drop the degenerate ones.

    Boxes are ``tv_tensors.BoundingBoxes`` in **XYXY pixels**, as
    :class:`~lvisnb.data.dataset.LVISDetection` converts them from the file's XYWH (not clamped
    there: its targets are the file's boxes; LVIS evaluation reads the file, not the targets).
    COCO and LVIS boxes often end a fraction of a pixel past the border, so after the resize
    and the flip each box is clamped to the image (``x`` to ``[0, W]``, ``y`` to ``[0, H]``;
    ``v2.ClampBoundingBoxes``, see :func:`_clamp_boxes`), as torchvision's detection
    references, DETR and detectron2 clamp or clip training boxes. Only then does
    ``v2.SanitizeBoundingBoxes(min_size=1.0)`` run, which (torchvision 0.29.1:
    ``_get_sanitize_bounding_boxes_mask`` in ``torchvision/transforms/v2/functional/_misc.py``)
    removes a box when its width or height is below ``min_size`` (1 px), its area below
    ``min_area`` (default 1 px^2), *or any coordinate is outside the canvas* (below 0, or
    beyond ``W`` / ``H``). Without the clamp, a box ending at ``x = 640.3`` in a 640-wide
    image, or starting at ``x = -0.3`` after the flip, was dropped and its object trained as
    background. Now only degenerate boxes go: those entirely outside the image (clamped to
    zero width or height) and those under 1 px wide or high after clamping and resizing. A
    dropped box's label and mask go with it.
    """
    return v2.Compose(
        [
            v2.RandomShortestSize(min_size=list(scales), max_size=max_size, antialias=True),
            v2.RandomHorizontalFlip(p=flip_prob),
            v2.ToDtype(torch.float32, scale=True),
            # after every geometric step, so rounding in the resize cannot push a box out again
            _clamp_boxes(),
            v2.SanitizeBoundingBoxes(min_size=1.0),
        ]
    )


def _clamp_boxes() -> v2.Transform:
    """``v2.ClampBoundingBoxes`` that always clamps. torchvision >= 0.23 gives boxes a
    ``clamping_mode`` (``"soft"`` by default, ``None`` turns clamping off) that the transform's
    default ``"auto"`` follows, so ask for ``"hard"``; older versions always clamp and take no
    argument."""
    try:
        return v2.ClampBoundingBoxes(clamping_mode="hard")
    except TypeError:  # torchvision < 0.23
        return v2.ClampBoundingBoxes()


def eval_transforms() -> v2.Compose:
    """Image to float32 in [0, 1]; resizing to the test scale happens inside the model."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True)])
