"""The parts of Mask R-CNN where torchvision and mmdetection compute differently, both ways.

Each part takes the preset field that chooses between them (:mod:`lvisnb.model.presets`); the
mmdetection rows default to mmdetection 3.3.0's computation (measured against its own code in
``tests/model/test_mmdet_parity.py``), ``toy`` keeps torchvision's:

- :class:`PresetAnchorGenerator`: base anchors ``(-w/2, -h/2, w/2, h/2)`` rounded to whole
  pixels (torchvision) or not (mmdetection ``AnchorGenerator(center_offset=0)``), and the
  stride of each level inferred as ``padded image size // feature size`` (torchvision: 61, not
  64, for P6 of a padded 800-px side, whose P5 has an odd size) or fixed (mmdetection
  ``strides=[4, 8, 16, 32, 64]``). Fields ``anchor_round``, ``anchor_strides``.
- :class:`AlignedMultiScaleRoIAlign`: torchvision's ``MultiScaleRoIAlign`` (the same level
  mapping, ``floor(4 + log2(sqrt(area) / 224))`` clamped to P2-P5, which is mmdetection's
  ``floor(log2(sqrt(area) / 56))``) with the ``aligned`` half-pixel shift and the sampling ratio
  as parameters (torchvision ``False, 2``; mmdetection ``RoIAlign(sampling_ratio=0,
  aligned=True)``). Fields ``roi_align_aligned``, ``roi_align_sampling_ratio``.
- :func:`eval_resize_size`: the test-time image size, the shorter side scaled to
  ``test_scale`` unless the longer would pass ``max_size``, rounded down (torchvision) or to
  the nearest pixel (mmdetection / mmcv ``imrescale``: ``int(w * scale + 0.5)``). Field
  ``test_resize_rounding``.
- :func:`paste_masks_grid_sample`: a ``28 x 28`` mask probability map pasted into the image by
  bilinear sampling at each pixel centre inside the box (mmdetection ``_do_paste_mask``,
  detectron2 ``paste_masks_in_image``), where torchvision resizes the map, padded by one cell,
  to the box rounded to whole pixels. Field ``mask_paste``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

__all__ = [
    "RESIZE_ROUNDINGS",
    "MASK_PASTES",
    "PresetAnchorGenerator",
    "AlignedMultiScaleRoIAlign",
    "eval_resize_size",
    "paste_masks_grid_sample",
]

RESIZE_ROUNDINGS = ("floor", "round")  # torchvision, mmdetection
MASK_PASTES = ("torchvision", "grid_sample")  # torchvision, mmdetection / detectron2


class PresetAnchorGenerator(AnchorGenerator):
    """torchvision's ``AnchorGenerator`` with rounding and strides as parameters.

    ``sizes``, ``aspect_ratios`` as torchvision's (one tuple per level; ratio = height /
    width). ``round_base``: round the base anchors to whole pixels (torchvision) or keep them
    exact (mmdetection). ``strides``: pixels per feature cell of each level, or ``None`` to infer
    them from the padded image size (torchvision). Output: one ``(sum_l H_l W_l A, 4)`` XYXY
    tensor per image, level-major, then location (row-major), then anchor (ratio order), as
    both libraries lay them out.
    """

    def __init__(self, sizes, aspect_ratios, round_base: bool = True, strides=None) -> None:
        super().__init__(sizes, aspect_ratios)
        self.round_base = round_base
        self.strides = None if strides is None else tuple(int(s) for s in strides)
        if self.strides is not None and len(self.strides) != len(self.sizes):
            raise ValueError(f"{len(self.strides)} anchor strides for {len(self.sizes)} levels")
        self.cell_anchors = [
            self.generate_anchors(size, ratio)
            for size, ratio in zip(sizes, aspect_ratios, strict=True)
        ]

    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32, device=None) -> Tensor:
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        aspect_ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(aspect_ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        base_anchors = torch.stack([-ws, -hs, ws, hs], dim=1) / 2
        return base_anchors.round() if getattr(self, "round_base", True) else base_anchors

    def forward(self, image_list: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:
        if self.strides is None:
            return super().forward(image_list, feature_maps)
        grid_sizes = [feature_map.shape[-2:] for feature_map in feature_maps]
        if len(grid_sizes) != len(self.strides):
            raise ValueError(f"{len(grid_sizes)} feature maps for {len(self.strides)} strides")
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        strides = [
            [torch.tensor(s, device=device), torch.tensor(s, device=device)] for s in self.strides
        ]
        self.set_cell_anchors(dtype, device)
        per_level = self.grid_anchors(grid_sizes, strides)
        return [torch.cat(per_level) for _ in image_list.image_sizes]


class AlignedMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` with ``aligned`` as a parameter.

    ``aligned=True`` shifts box coordinates by -0.5 px before sampling, so that a pixel's
    value sits at its centre (Detectron2 ``ROIAlign(aligned=True)``, mmcv ``RoIAlign``'s
    default); ``sampling_ratio`` points per bin side (0: ``ceil(bin size)``, adaptive). Input
    and output as torchvision's: features ``{name: (B, C, H, W)}``, boxes a list of ``(N_i, 4)``
    XYXY in the padded image's pixels -> ``(sum N_i, C, *output_size)``.
    """

    def __init__(self, featmap_names, output_size, sampling_ratio: int, aligned: bool) -> None:
        super().__init__(featmap_names, output_size, sampling_ratio)
        self.aligned = aligned

    def forward(self, x, boxes, image_shapes) -> Tensor:
        features = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level
            )
        rois = _convert_to_roi_format(boxes)
        levels = self.map_levels(boxes)
        result = features[0].new_zeros((len(rois), features[0].shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, self.scales, strict=True)):
            index = torch.where(levels == level)[0]
            pooled = roi_align(
                feature,
                rois[index],
                output_size=self.output_size,
                spatial_scale=scale,
                sampling_ratio=self.sampling_ratio,
                aligned=self.aligned,
            )
            result.index_put_((index,), pooled.to(result.dtype))
        return result


def eval_resize_size(
    height: int, width: int, test_scale: int, max_size: int, rounding: str
) -> tuple[int, int]:
    """``(new_height, new_width)`` of an image resized for testing.

    ``scale = min(test_scale / min(h, w), max_size / max(h, w))`` (Python floats), then each side
    times ``scale``, rounded down (``"floor"``, torchvision ``GeneralizedRCNNTransform``) or
    to the nearest (``"round"``, mmcv ``rescale_size``: ``int(x * scale + 0.5)``). Raises
    ``ValueError`` for an unknown ``rounding``.
    """
    if rounding not in RESIZE_ROUNDINGS:
        raise ValueError(f"test_resize_rounding {rounding!r} is not one of {RESIZE_ROUNDINGS}")
    scale = min(test_scale / min(height, width), max_size / max(height, width))
    if rounding == "floor":
        return math.floor(height * scale), math.floor(width * scale)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def paste_masks_grid_sample(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Mask probabilities ``(N, 1, M, M)`` pasted into an image of ``image_size = (H, W)``.

    ``boxes`` ``(N, 4)`` XYXY float in the image's pixels. Pixel ``(y, x)`` samples the map
    bilinearly at ``((x + 0.5 - x0) / (x1 - x0), (y + 0.5 - y0) / (y1 - y0))`` of the box, zero
    outside the map (``grid_sample(align_corners=False)``). Only the box's pixels and one
    around it are sampled: further out every value is 0, and within that pixel under half
    a cell's weight, so masks binarised at 0.5 equal mmdetection's (which samples the whole
    image on the GPU and this region on the CPU). Returns ``(N, 1, H, W)`` float32 in [0, 1].
    """
    height, width = image_size
    out = masks.new_zeros((masks.shape[0], 1, height, width), dtype=torch.float32)
    boxes = boxes.float()
    for index in range(masks.shape[0]):
        x0, y0, x1, y1 = boxes[index]
        left, top = max(math.floor(x0) - 1, 0), max(math.floor(y0) - 1, 0)
        right, bottom = min(math.ceil(x1) + 1, width), min(math.ceil(y1) + 1, height)
        if right <= left or bottom <= top:
            continue
        xs = _grid_coordinates(left, right, x0, x1)
        ys = _grid_coordinates(top, bottom, y0, y1)
        grid = torch.stack([xs[None, :].expand(len(ys), -1), ys[:, None].expand(-1, len(xs))], -1)
        sampled = F.grid_sample(masks[index : index + 1].float(), grid[None], align_corners=False)
        out[index, 0, top:bottom, left:right] = sampled[0, 0]
    return out


def _grid_coordinates(start: int, stop: int, low: Tensor, high: Tensor) -> Tensor:
    """Pixel centres ``start + 0.5 .. stop - 0.5`` in ``grid_sample``'s [-1, 1] of the box side
    ``[low, high]`` (float32, as mmdetection computes them); 0 where the side is empty."""
    centres = torch.arange(start, stop, device=low.device).to(torch.float32) + 0.5
    coordinates = (centres - low) / (high - low) * 2 - 1
    return torch.where(torch.isfinite(coordinates), coordinates, torch.zeros_like(coordinates))
