"""Training-time choices where torchvision and mmdetection compute differently, both ways.

Each is a preset field (:mod:`lvisnb.model.presets`); the mmdetection rows default to mmdetection
3.3.0's computation (measured against its own code in ``tests/model/test_mmdet_training.py``),
``toy`` keeps torchvision's:

- :class:`MaxIoUMatcher`: mmdetection's ``MaxIoUAssigner`` with ``match_low_quality=True``:
  after the thresholds, every ground truth whose best IoU is at least ``min_pos_iou`` takes the
  anchors (proposals) of that best IoU, a later ground truth winning a tie. torchvision's
  ``Matcher(allow_low_quality_matches=True)`` gives those anchors to their own best ground
  truth, with no minimum. Fields ``rpn_min_pos_iou`` (mmdetection 0.3) and ``box_min_pos_iou``
  (0.5); ``None`` keeps torchvision's matcher (the RPN's with low-quality matches, the RoI
  heads' without).
- :func:`box_regression_loss`: L1 (mmdetection ``L1Loss``, the LVIS configs' RPN and RoI box
  losses) or smooth L1 with beta 1/9 (torchvision), summed over the positives and divided by
  the number sampled, as both do. Field ``box_loss``.
- :func:`mask_targets`: each positive RoI's ground-truth mask cut out by RoIAlign, with the
  half-pixel shift and binarised at 0.5 (mmdetection ``BitmapMasks.crop_and_resize``) or
  without either, soft (torchvision ``project_masks_on_boxes``). Field ``mask_targets``.
- :class:`EvalBatchNorm2d`: BatchNorm whose statistics never update but whose affine weight and
  bias train (mmdetection ``norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True``);
  ``norm="bn_eval"``, where torchvision's ``FrozenBatchNorm2d`` (``"frozen_bn"``) fixes both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import roi_align

__all__ = [
    "BOX_LOSSES",
    "MASK_TARGETS",
    "MaxIoUMatcher",
    "PresetRPN",
    "EvalBatchNorm2d",
    "box_regression_loss",
    "mask_targets",
]

BOX_LOSSES = ("l1", "smooth_l1")  # mmdetection, torchvision
MASK_TARGETS = ("mmdetection", "torchvision")


class MaxIoUMatcher(Matcher):
    """torchvision's ``Matcher`` interface with mmdetection's ``MaxIoUAssigner`` rule.

    ``match_quality_matrix`` ``(G, N)`` IoU of G ground truths with N anchors -> ``(N,)`` int64:
    the matched ground truth, ``BELOW_LOW_THRESHOLD`` (-1, background) or
    ``BETWEEN_THRESHOLDS`` (-2, ignored). Positive at IoU >= ``high_threshold``, negative below
    ``low_threshold``; then each ground truth ``i`` whose best IoU is >= ``min_pos_iou`` takes
    every anchor with exactly that IoU (``gt_max_assign_all=True``), in order of ``i``.
    """

    def __init__(
        self,
        high_threshold: float,
        low_threshold: float,
        min_pos_iou: float,
        gt_appended: bool = False,
    ) -> None:
        super().__init__(high_threshold, low_threshold, allow_low_quality_matches=False)
        self.min_pos_iou = min_pos_iou
        self.gt_appended = gt_appended

    def __call__(self, match_quality_matrix: Tensor) -> Tensor:
        """``gt_appended``: the last G columns are the ground truths themselves, which
        torchvision's RoI heads append to the proposals before matching and mmdetection's
        sampler adds after it (``add_gt_as_proposals``): the low-quality step then looks at
        the proposals only, and each appended box is matched to its own ground truth."""
        matches = super().__call__(match_quality_matrix)
        if match_quality_matrix.numel() == 0:
            return matches
        count = match_quality_matrix.shape[0]
        proposals = match_quality_matrix[:, :-count] if self.gt_appended else match_quality_matrix
        if proposals.shape[1] > 0:
            best_of_gt = proposals.max(dim=1).values
            for index in range(count):  # later ground truths win ties
                if best_of_gt[index] >= self.min_pos_iou:
                    matches[: proposals.shape[1]][proposals[index] == best_of_gt[index]] = index
        if self.gt_appended:
            matches[-count:] = torch.arange(count, device=matches.device)
        return matches


def box_regression_loss(deltas: Tensor, targets: Tensor, kind: str, sampled: int) -> Tensor:
    """Box loss of the positives' ``deltas`` ``(P, 4)`` against ``targets`` ``(P, 4)``, summed
    and divided by ``sampled`` (positives + negatives sampled): ``"l1"`` or ``"smooth_l1"``
    (beta 1/9, torchvision's ``fastrcnn_loss`` and RPN)."""
    if kind == "l1":
        total = F.l1_loss(deltas, targets, reduction="sum")
    elif kind == "smooth_l1":
        total = F.smooth_l1_loss(deltas, targets, beta=1 / 9, reduction="sum")
    else:
        raise ValueError(f"box_loss {kind!r} is not one of {BOX_LOSSES}")
    return total / max(sampled, 1)


class PresetRPN(RegionProposalNetwork):
    """torchvision's ``RegionProposalNetwork`` with its box loss chosen by ``box_loss``; built
    from the RPN torchvision's ``MaskRCNN`` made (:meth:`from_rpn`), every setting kept."""

    box_loss: str = "smooth_l1"

    @classmethod
    def from_rpn(cls, rpn: RegionProposalNetwork, box_loss: str) -> PresetRPN:
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss {box_loss!r} is not one of {BOX_LOSSES}")
        rpn.__class__ = cls  # the same module, its loss method replaced
        rpn.box_loss = box_loss
        return rpn

    def compute_loss(self, objectness, pred_bbox_deltas, labels, regression_targets):
        sampled_pos, sampled_neg = self.fg_bg_sampler(labels)
        sampled_pos = torch.where(torch.cat(sampled_pos, dim=0))[0]
        sampled_neg = torch.where(torch.cat(sampled_neg, dim=0))[0]
        sampled = torch.cat([sampled_pos, sampled_neg], dim=0)
        labels = torch.cat(labels, dim=0)
        regression_targets = torch.cat(regression_targets, dim=0)
        box_loss = box_regression_loss(
            pred_bbox_deltas[sampled_pos],
            regression_targets[sampled_pos],
            self.box_loss,
            sampled.numel(),
        )
        objectness_loss = F.binary_cross_entropy_with_logits(
            objectness.flatten()[sampled], labels[sampled]
        )
        return objectness_loss, box_loss


def mask_targets(gt_masks: Tensor, boxes: Tensor, matched: Tensor, size: int, kind: str) -> Tensor:
    """``(P, size, size)`` float targets of ``P`` positive RoIs ``boxes`` ``(P, 4)`` XYXY, each
    cut from ``gt_masks[matched]`` (``(G, H, W)``, 0/1): ``"mmdetection"`` RoIAligns with the
    half-pixel shift and adaptive sampling and binarises at 0.5, ``"torchvision"`` does neither."""
    rois = torch.cat([matched[:, None].to(boxes), boxes], dim=1)
    masks = gt_masks[:, None].to(boxes)
    if kind == "mmdetection":
        cut = roi_align(masks, rois, (size, size), 1.0, sampling_ratio=0, aligned=True)
        return (cut[:, 0] >= 0.5).to(boxes)
    if kind == "torchvision":
        return roi_align(masks, rois, (size, size), 1.0)[:, 0]
    raise ValueError(f"mask_targets {kind!r} is not one of {MASK_TARGETS}")


class EvalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` that stays in eval mode: normalised with its running statistics, which
    never update, while its affine ``weight`` and ``bias`` are parameters that train (unless
    their stage is frozen). mmdetection's ResNet with ``norm_eval=True``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.training = False

    def train(self, mode: bool = True) -> EvalBatchNorm2d:
        return super().train(False)
