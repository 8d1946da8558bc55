"""Mask R-CNN RoI heads whose box classifier is trained and read with a :mod:`lvisnb.model.losses`
loss.

torchvision's ``RoIHeads`` hard-wires softmax cross-entropy: ``fastrcnn_loss`` computes
``F.cross_entropy(class_logits, labels)`` next to the box regression term, and
``postprocess_detections`` scores with ``F.softmax(class_logits, -1)``. :class:`ClsLossRoIHeads`
keeps everything else of torchvision's heads and swaps those two for a
:class:`lvisnb.model.losses.ClsLoss`:

- training: ``loss_classifier = cls_loss(class_logits, labels)`` over the sampled RoIs
  (``labels`` in ``0..K``, 0 the background); ``loss_box_reg`` and ``loss_mask`` are
  torchvision's with ``box_loss="smooth_l1"`` and ``mask_targets="torchvision"``, else
  recomputed from the same sampled RoIs with L1 and mmdetection's mask targets
  (:mod:`lvisnb.model.train_targets`);
- eval: ``scores = cls_loss.scores(class_logits)`` (``(N, K + 1)``, column 0 background), then
  torchvision's thresholding, per-class NMS and top-k.

The loss is the submodule ``roi_heads.cls_loss``, so its buffers (Seesaw's cumulative class
counts, EQLv2's gradient statistics, the federated class weights) are in the model's
``state_dict`` and travel in every checkpoint. With ``"ce"`` the heads compute exactly what
torchvision's do (the same ``F.cross_entropy`` and ``F.softmax`` on the same logits).

Predictors (mmdetection's cosine classifiers, ``mmdet/models/layers/normed_predictor.py``):
:func:`box_predictor` gives the classifier ``cls_loss.num_outputs`` outputs (Seesaw: ``K + 2``),
optionally a :class:`lvisnb.model.normed_predictor.NormedLinear`; ``bbox_pred`` stays
``(K + 1) * 4``. :func:`mask_predictor` optionally ends in
:class:`lvisnb.model.normed_predictor.NormedConv2d` (mmdetection's ``*_normed_mask_*`` configs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops

from lvisnb.model.losses import ClsLoss
from lvisnb.model.normed_predictor import NormedConv2d, NormedLinear
from lvisnb.model.train_targets import box_regression_loss, mask_targets

__all__ = ["ClsLossRoIHeads", "box_predictor", "mask_predictor"]


def box_predictor(
    in_features: int, num_classes: int, cls_outputs: int, temperature: float | None = None
) -> FastRCNNPredictor:
    """torchvision's ``FastRCNNPredictor`` for ``num_classes`` (background included) whose
    ``cls_score`` has ``cls_outputs`` outputs (the loss's ``num_outputs``), a
    :class:`~lvisnb.model.normed_predictor.NormedLinear` with ``temperature`` when one is given.
    ``bbox_pred`` keeps ``num_classes * 4`` outputs. With ``cls_outputs == num_classes`` and
    no temperature it is torchvision's predictor, initialised in the same order."""
    predictor = FastRCNNPredictor(in_features, num_classes)
    if temperature is not None:
        predictor.cls_score = NormedLinear(in_features, cls_outputs, temperature=temperature)
    elif cls_outputs != num_classes:
        predictor.cls_score = nn.Linear(in_features, cls_outputs)
    return predictor


def mask_predictor(
    channels: int, num_classes: int, temperature: float | None = None
) -> MaskRCNNPredictor:
    """torchvision's ``MaskRCNNPredictor`` (deconv, ReLU, 1x1 logits for ``num_classes``, the
    background included); with ``temperature`` its logits are a
    :class:`~lvisnb.model.normed_predictor.NormedConv2d`."""
    predictor = MaskRCNNPredictor(channels, channels, num_classes)
    if temperature is not None:
        predictor.mask_fcn_logits = NormedConv2d(channels, num_classes, 1, temperature)
    return predictor


class ClsLossRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` with the box classifier's loss and scores from ``cls_loss``.

    Built from the ``RoIHeads`` that torchvision's ``MaskRCNN`` made (same submodules, sampler,
    matcher, box coder and test settings) and a :class:`lvisnb.model.losses.ClsLoss` whose
    ``num_outputs`` must equal the box predictor's ``cls_score`` width. Input and output are
    torchvision's: ``forward(features, proposals, image_shapes, targets)`` returns
    ``(detections, losses)``; see the module docstring for what changes.
    """

    def __init__(
        self,
        heads: RoIHeads,
        cls_loss: ClsLoss,
        box_min_size: float | None = 1e-2,
        box_loss: str = "smooth_l1",
        mask_targets: str = "torchvision",
    ) -> None:
        super().__init__(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            heads.proposal_matcher.high_threshold,
            heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image,
            heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights,
            heads.score_thresh,
            heads.nms_thresh,
            heads.detections_per_img,
            heads.mask_roi_pool,
            heads.mask_head,
            heads.mask_predictor,
        )
        width = heads.box_predictor.cls_score.out_features
        if width != cls_loss.num_outputs:
            raise ValueError(
                f"the box classifier has {width} outputs, the {cls_loss.name} loss reads "
                f"{cls_loss.num_outputs} ({cls_loss.num_classes} classes)"
            )
        self.cls_loss = cls_loss
        self.box_min_size = box_min_size
        self.box_loss, self.mask_targets = box_loss, mask_targets
        self._sampled: tuple | None = None

    def select_training_samples(self, proposals, targets):
        sampled = super().select_training_samples(proposals, targets)
        self._sampled = sampled  # proposals, matched_idxs, labels (0..K), regression_targets
        return sampled

    def forward(self, features, proposals, image_shapes, targets=None):
        if not self.training:
            return super().forward(features, proposals, image_shapes, targets)
        # torchvision's forward, keeping the predictors' outputs; its softmax cross-entropy
        # (and, as the preset says, its box and mask losses) are then replaced: computed
        # there, never backpropagated
        seen: dict[str, tuple] = {}
        hooks = [
            self.box_predictor.register_forward_hook(lambda _m, _x, out: seen.update(box=out)),
        ]
        if self.has_mask():
            hooks.append(
                self.mask_predictor.register_forward_hook(lambda _m, _x, out: seen.update(mask=out))
            )
        try:
            result, losses = super().forward(features, proposals, image_shapes, targets)
        finally:
            for hook in hooks:
                hook.remove()
        sampled, self._sampled = self._sampled, None
        proposals, matched, labels, regression_targets = sampled
        class_logits, box_regression = seen["box"]
        labels = torch.cat(labels)  # (N,) int64 in 0..K, images concatenated
        losses["loss_classifier"] = self.cls_loss(class_logits.float(), labels)
        if self.box_loss != "smooth_l1":
            losses["loss_box_reg"] = self._box_loss(box_regression, labels, regression_targets)
        if "mask" in seen and self.mask_targets != "torchvision":
            losses["loss_mask"] = self._mask_loss(seen["mask"], sampled, targets)
        return result, losses

    def _box_loss(self, box_regression, labels, regression_targets) -> torch.Tensor:
        """The preset's box loss over the positive RoIs, at their class's deltas."""
        positive = torch.where(labels > 0)[0]
        deltas = box_regression.reshape(labels.shape[0], -1, 4)[positive, labels[positive]]
        targets = torch.cat(regression_targets)[positive]
        return box_regression_loss(deltas.float(), targets, self.box_loss, labels.numel())

    def _mask_loss(self, mask_logits, sampled, targets) -> torch.Tensor:
        """Binary cross-entropy of the positive RoIs' mask logits at their class, against the
        preset's mask targets (:func:`lvisnb.model.train_targets.mask_targets`), mean over
        pixels as torchvision's ``maskrcnn_loss`` and mmdetection's ``mask_cross_entropy``."""
        proposals, matched, labels, _ = sampled
        size = mask_logits.shape[-1]
        cut, classes = [], []
        for boxes, idxs, image_labels, target in zip(
            proposals, matched, labels, targets, strict=True
        ):
            positive = torch.where(image_labels > 0)[0]
            gt = idxs[positive]
            cut.append(mask_targets(target["masks"], boxes[positive], gt, size, self.mask_targets))
            classes.append(image_labels[positive])
        classes = torch.cat(classes)
        if classes.numel() == 0:
            return mask_logits.sum() * 0
        logits = mask_logits[torch.arange(classes.numel(), device=classes.device), classes]
        return F.binary_cross_entropy_with_logits(logits.float(), torch.cat(cut))

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        """torchvision's ``RoIHeads.postprocess_detections`` with ``cls_loss.scores`` in place
        of the softmax: per image, boxes clipped, the background column dropped, scores above
        ``score_thresh`` kept, boxes under ``box_min_size`` px dropped (torchvision 0.01;
        ``None`` keeps them, as mmdetection), per-class NMS at ``nms_thresh``, the
        ``detections_per_img`` best kept. Boxes XYXY in the (resized) image's pixels."""
        device = class_logits.device
        pred_scores = self.cls_loss.scores(class_logits.float())  # (N, K + 1), column 0 bg
        num_classes = pred_scores.shape[-1]
        boxes_per_image = [boxes_in_image.shape[0] for boxes_in_image in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals)

        all_boxes, all_scores, all_labels = [], [], []
        for boxes, scores, image_shape in zip(
            pred_boxes.split(boxes_per_image, 0),
            pred_scores.split(boxes_per_image, 0),
            image_shapes,
            strict=True,
        ):
            boxes = box_ops.clip_boxes_to_image(boxes, image_shape)
            labels = torch.arange(num_classes, device=device).view(1, -1).expand_as(scores)
            # every (RoI, foreground class) pair is a candidate detection
            boxes = boxes[:, 1:].reshape(-1, 4)
            scores = scores[:, 1:].reshape(-1)
            labels = labels[:, 1:].reshape(-1)
            inds = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[inds], scores[inds], labels[inds]
            if self.box_min_size is not None:
                keep = box_ops.remove_small_boxes(boxes, min_size=self.box_min_size)
                boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)
            keep = keep[: self.detections_per_img]
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
            all_labels.append(labels[keep])
        return all_boxes, all_scores, all_labels
