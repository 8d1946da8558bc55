"""Classification losses for the box head, and the scores each one's classifier is read with.

Four losses, selectable by name through :func:`build_cls_loss` (:data:`CLS_LOSSES`):

* ``"ce"``: softmax cross-entropy, torchvision's ``fastrcnn_loss``
  (``torchvision/models/detection/roi_heads.py``: ``F.cross_entropy(class_logits, labels)``).
* ``"seesaw"``: Seesaw loss (Wang et al., "Seesaw Loss for Long-Tailed Instance Segmentation",
  CVPR 2021; mmdetection ``mmdet/models/losses/seesaw_loss.py``), usually with the cosine
  classifier :class:`lvisnb.model.normed_predictor.NormedLinear`.
* ``"eqlv2"``: Equalization Loss v2 (Tan et al., "Equalization Loss v2: A New Gradient Balance
  Approach for Long-tailed Object Detection", CVPR 2021; tztztztztz/eqlv2
  ``mmdet/models/losses/eqlv2.py``).
* ``"federated"``: Federated loss (Zhou, Koltun & Krahenbuhl, "Probabilistic two-stage
  detection", 2021; detectron2 ``detectron2/modeling/roi_heads/fast_rcnn.py``, ``use_fed_loss``).

Layout. A loss module takes ``logits`` of shape ``(N, K + 1)`` (float; ``N`` sampled RoIs, ``K``
foreground classes) whose column 0 is the background and columns ``1..K`` the contiguous labels
``1..K``, and ``labels`` of shape ``(N,)``, int64, in ``0..K`` with ``0`` the background:
torchvision's convention. Seesaw needs ``K + 2`` outputs (an objectness pair besides the ``K``
class logits); the kit orders them so that columns ``1..K`` still hold labels ``1..K``::

    column 0        background logit of the objectness pair
    columns 1..K    class logits (softmax over these K only)
    column K + 1    foreground ("object") logit of the objectness pair

``module.num_outputs`` is the classifier width a loss needs (``K + 1``, Seesaw ``K + 2``).
``module(logits, labels)`` is a scalar; ``module.scores(logits)`` is ``(N, K + 1)`` in
torchvision's layout (column 0 background, every entry in ``[0, 1]``), the per-class scores
that ``RoIHeads.postprocess_detections`` thresholds after dropping column 0.

Normalisation. Every loss sums over the sampled RoIs and divides by ``N``, as each source does:
torchvision (``F.cross_entropy`` mean), mmdetection's ``BBoxHead.loss`` (``avg_factor`` = the
number of sampled RoIs, also for Seesaw's positives-only class term), eqlv2 (``/ self.n_i``) and
detectron2 (``/ N``). An empty batch gives a zero that still depends on ``logits``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CLS_LOSSES",
    "ClsLoss",
    "EQLv2Loss",
    "FederatedLoss",
    "SeesawLoss",
    "SoftmaxCELoss",
    "build_cls_loss",
    "eqlv2_weights",
    "federated_classes",
    "federated_class_weights",
    "seesaw_compensation",
    "seesaw_mitigation",
]


class ClsLoss(nn.Module):
    """Base of the box-classification losses: the contract every one of them keeps.

    ``num_classes`` is ``K``, the number of foreground classes. Subclasses implement
    :meth:`forward` (``logits (N, num_outputs)`` float, ``labels (N,)`` int64 in ``0..K`` ->
    scalar) and :meth:`scores` (``logits (N, num_outputs)`` -> ``(N, K + 1)`` in ``[0, 1]``,
    column 0 background).
    """

    name = ""
    extra_outputs = 1  # classifier outputs beyond the K classes

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes

    @property
    def num_outputs(self) -> int:
        """The classifier's output width this loss reads: ``K + 1`` (Seesaw: ``K + 2``)."""
        return self.num_classes + self.extra_outputs

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, num_outputs={self.num_outputs}"

    def check_logits(self, logits: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``logits`` is ``(N, num_outputs)`` floating point."""
        if logits.ndim != 2 or logits.shape[1] != self.num_outputs:
            raise ValueError(
                f"{self.name}: logits must be (N, {self.num_outputs}) for {self.num_classes} "
                f"classes, got {tuple(logits.shape)}"
            )
        if not logits.is_floating_point():
            raise ValueError(f"{self.name}: logits must be floating point, got {logits.dtype}")

    def check(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """:meth:`check_logits`, and ``labels`` must be ``(N,)`` int64 (values are not read)."""
        self.check_logits(logits)
        if labels.dtype != torch.int64 or labels.shape != logits.shape[:1]:
            raise ValueError(
                f"{self.name}: labels must be int64 of shape ({logits.shape[0]},), "
                f"got {labels.dtype} {tuple(labels.shape)}"
            )

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _empty_loss(logits: torch.Tensor) -> torch.Tensor:
    """A zero loss for a batch without RoIs, still connected to ``logits``' graph."""
    return logits.sum() * 0.0


# --------------------------------------------------------------------------------------------
# Softmax cross-entropy (torchvision)


class SoftmaxCELoss(ClsLoss):
    """Softmax cross-entropy over ``K + 1`` logits, as torchvision's ``fastrcnn_loss``.

    ``forward(logits (N, K+1) float, labels (N,) int64) -> F.cross_entropy(logits, labels)``
    (mean over the ``N`` RoIs); :meth:`scores` is ``softmax(logits)``, whose rows sum to 1.
    """

    name = "ce"

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check(logits, labels)
        if logits.shape[0] == 0:
            return _empty_loss(logits)
        return F.cross_entropy(logits, labels)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, K + 1)`` softmax probabilities; column 0 is the background's."""
        self.check_logits(logits)
        return F.softmax(logits, dim=-1)


# --------------------------------------------------------------------------------------------
# Seesaw (Wang et al. 2021; mmdetection seesaw_loss.py)


def seesaw_mitigation(counts: torch.Tensor, targets: torch.Tensor, p: float) -> torch.Tensor:
    """Seesaw's mitigation factors ``M`` for each RoI, shape ``(P, K)`` float.

    ``counts`` ``(K,)``: instances of each foreground class seen so far (clamped to ``>= 1``);
    ``targets`` ``(P,)`` int64 in ``0..K-1``: each positive RoI's class index ``i``. For the
    negative class ``j``: ``M_ij = (N_j / N_i) ** p`` when ``N_j < N_i`` (``j`` rarer: its
    penalty is reduced), else ``1`` (so ``M_ii = 1``). mmdetection ``seesaw_ce_loss``.
    """
    counts = counts.float().clamp(min=1)
    ratio = counts[None, :] / counts[:, None]  # ratio[i, j] = N_j / N_i
    factors = torch.where(ratio < 1.0, ratio.pow(p), torch.ones_like(ratio))
    return factors[targets]


def seesaw_compensation(
    class_logits: torch.Tensor, targets: torch.Tensor, q: float, eps: float
) -> torch.Tensor:
    """Seesaw's compensation factors ``C`` for each RoI, shape ``(P, K)`` float, no gradient.

    ``class_logits`` ``(P, K)``, ``targets`` ``(P,)`` int64 in ``0..K-1``. With ``sigma`` the
    softmax over the ``K`` classes, ``C_ij = (sigma_j / max(sigma_i, eps)) ** q`` when that ratio
    exceeds 1 (the RoI of class ``i`` scores higher for ``j``: a false positive is penalised
    more), else ``1``. mmdetection ``seesaw_ce_loss``.
    """
    sigma = F.softmax(class_logits.detach(), dim=1)
    own = sigma.gather(1, targets[:, None]).clamp(min=eps)
    ratio = sigma / own
    return torch.where(ratio > 1.0, ratio.pow(q), torch.ones_like(ratio))


class SeesawLoss(ClsLoss):
    """Seesaw loss over ``K + 2`` outputs (module docstring: column order) with counts.

    Defaults are mmdetection's ``SeesawLoss`` (``p=0.8, q=2.0, eps=1e-2, loss_weight=1.0``) as
    used by ``configs/seesaw_loss/*_lvis_v1.py``. ``forward(logits (N, K+2), labels (N,))``:

    1. ``cum_samples`` (buffer, ``(K + 1,)`` int64, index = label, 0 the background) adds this
       batch's label counts, before the loss, as mmdetection does; it is per process (not
       all-reduced, as in mmdetection) and travels in the ``state_dict``.
    2. Class term, positive RoIs only: cross-entropy over the ``K`` class logits, each negative
       logit ``z_j`` replaced by ``z_j + log(M_ij * C_ij)`` (:func:`seesaw_mitigation`,
       :func:`seesaw_compensation`; ``N_j`` the cumulative counts of step 1).
    3. Objectness term, all RoIs: 2-way cross-entropy over columns ``(0, K + 1)``, target
       background (label 0) or object.
    4. ``loss_weight * (sum of 2. + sum of 3.) / N``.
    """

    name = "seesaw"
    extra_outputs = 2

    def __init__(
        self,
        num_classes: int,
        p: float = 0.8,  # mitigation exponent (mmdetection SeesawLoss p)
        q: float = 2.0,  # compensation exponent (mmdetection SeesawLoss q)
        eps: float = 1e-2,  # floor of sigma_i in the compensation ratio
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(num_classes)
        self.p, self.q, self.eps, self.loss_weight = p, q, eps, loss_weight
        self.register_buffer("cum_samples", torch.zeros(num_classes + 1, dtype=torch.int64))

    def split(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, K+2)`` -> class logits ``(N, K)``, objectness ``(N, 2)`` (background, object)."""
        self.check_logits(logits)
        objectness = torch.stack([logits[:, 0], logits[:, -1]], dim=1)
        return logits[:, 1:-1], objectness

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check(logits, labels)
        with torch.no_grad():
            self.cum_samples += torch.bincount(labels, minlength=self.num_classes + 1)
        if logits.shape[0] == 0:
            return _empty_loss(logits)
        class_logits, objectness = self.split(logits)
        positive = labels > 0
        class_logits, targets = class_logits[positive], labels[positive] - 1
        weights = seesaw_mitigation(self.cum_samples[1:], targets, self.p)
        weights = weights * seesaw_compensation(class_logits, targets, self.q, self.eps)
        negatives = 1.0 - F.one_hot(targets, self.num_classes).to(class_logits.dtype)
        adjusted = class_logits + weights.log() * negatives
        class_term = F.cross_entropy(adjusted, targets, reduction="sum")
        object_term = F.cross_entropy(objectness, positive.long(), reduction="sum")
        return self.loss_weight * (class_term + object_term) / logits.shape[0]

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, K + 1)``: column 0 ``P(background)`` from the objectness pair, columns
        ``1..K`` ``softmax(class logits) * P(object)``; rows sum to 1. mmdetection
        ``SeesawLoss.get_activation`` (its background column is last; here it is first)."""
        class_logits, objectness = self.split(logits)
        obj = F.softmax(objectness, dim=-1)
        return torch.cat([obj[:, :1], F.softmax(class_logits, dim=-1) * obj[:, 1:]], dim=1)


# --------------------------------------------------------------------------------------------
# EQLv2 (Tan et al. 2021; tztztztztz/eqlv2 eqlv2.py)


def eqlv2_weights(
    pos_neg: torch.Tensor, gamma: float, mu: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """EQLv2's per-class ``(pos_w, neg_w)``, each ``(K,)``, from the gradient ratio ``g``.

    ``neg_w = f(g) = 1 / (1 + exp(-gamma * (g - mu)))`` and ``pos_w = 1 + alpha * (1 - f(g))``
    (paper eq. 6-8; ``EQLv2.map_func`` / ``get_weight``): a class whose accumulated positive
    gradient is small against its negative one gets its negatives damped and positives raised.
    """
    neg_w = torch.sigmoid(gamma * (pos_neg - mu))
    return 1.0 + alpha * (1.0 - neg_w), neg_w


class EQLv2Loss(ClsLoss):
    """EQLv2: per-class weighted sigmoid BCE over ``K + 1`` logits (column 0: background).

    Defaults are eqlv2's (``gamma=12, mu=0.8, alpha=4.0, loss_weight=1.0``, ``test_with_obj``).
    ``forward(logits (N, K+1), labels (N,))`` is
    ``loss_weight * sum_{n,c} w_nc * BCE(z_nc, y_nc) / N`` with ``y`` the one-hot labels
    (background included) and ``w_nc = pos_w[c]`` if ``y_nc = 1`` else ``neg_w[c]``
    (:func:`eqlv2_weights` of ``pos_neg``; the background column's weights are 1).

    Statistics: buffers ``pos_grad``, ``neg_grad`` (``(K,)`` float32) and
    ``pos_neg = pos_grad / (neg_grad + 1e-10)`` (starts at 100, so the weights start at 1, as
    in eqlv2), all in the ``state_dict``. ``forward`` puts a hook on the gradient of an alias
    of the logits (so other losses on the same logits do not enter it); in the backward pass
    it adds, per foreground class ``c``, ``sum_n |dL/dz_nc| * N / loss_weight`` over the RoIs
    of class ``c`` to ``pos_grad`` and over the others to ``neg_grad``. That equals eqlv2's
    ``collect_grad`` (``sum_n w_nc * |sigmoid(z_nc) - y_nc|``), which eqlv2 computes in the
    forward pass; here the statistics move only when a backward pass runs. Differences: the
    sums are all-reduced over the ranks only when ``torch.distributed`` is initialised (eqlv2
    always calls ``all_reduce``), and a batch whose gradient is not finite on any rank (an AMP
    overflow step) leaves them unchanged. Under a ``GradScaler`` the hook sees scaled
    gradients: the per-batch ratio is unchanged, but batches then weigh by the scale. Every
    rank must run the backward pass (a collective runs inside it).
    """

    name = "eqlv2"

    def __init__(
        self,
        num_classes: int,
        gamma: float = 12.0,  # slope of the mapping f (eqlv2 gamma)
        mu: float = 0.8,  # centre of the mapping f (eqlv2 mu)
        alpha: float = 4.0,  # positive-weight gain (eqlv2 alpha)
        loss_weight: float = 1.0,
        test_with_obj: bool = True,  # scores: foreground * (1 - background), as eqlv2
    ) -> None:
        super().__init__(num_classes)
        if not loss_weight > 0:
            raise ValueError(f"eqlv2: loss_weight must be > 0, got {loss_weight!r}")
        self.gamma, self.mu, self.alpha = gamma, mu, alpha
        self.loss_weight, self.test_with_obj = loss_weight, test_with_obj
        self.register_buffer("pos_grad", torch.zeros(num_classes))
        self.register_buffer("neg_grad", torch.zeros(num_classes))
        self.register_buffer("pos_neg", torch.full((num_classes,), 100.0))

    def class_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pos_w, neg_w)`` of shape ``(K + 1,)``, column 0 (background) 1."""
        pos_w, neg_w = eqlv2_weights(self.pos_neg, self.gamma, self.mu, self.alpha)
        one = pos_w.new_ones(1)
        return torch.cat([one, pos_w]), torch.cat([one, neg_w])

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check(logits, labels)
        if logits.shape[0] == 0:
            return _empty_loss(logits)
        if logits.requires_grad:  # an alias of our own: its gradient is this loss's alone
            logits = logits.view_as(logits)
            logits.register_hook(self._gradient_hook(labels, logits.shape[0]))
        target = F.one_hot(labels, self.num_outputs).to(logits.dtype)
        pos_w, neg_w = (w.to(logits.dtype) for w in self.class_weights())
        weight = target * pos_w + (1.0 - target) * neg_w
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return self.loss_weight * (bce * weight).sum() / logits.shape[0]

    def _gradient_hook(self, labels: torch.Tensor, num_rois: int):
        def hook(grad: torch.Tensor) -> None:
            self.collect(grad.detach().float().abs() * (num_rois / self.loss_weight), labels)

        return hook

    @torch.no_grad()
    def collect(self, grad: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one batch's ``|gradient|`` ``(N, K + 1)`` float to the statistics.

        ``labels`` ``(N,)`` int64 split each column into positive and negative RoIs. Column 0
        (background) is not collected, as eqlv2 skips its objectness column.
        """
        target = F.one_hot(labels, self.num_outputs).float()
        stats = torch.stack([(grad * target).sum(0), (grad * (1.0 - target)).sum(0)])
        stats = stats[:, 1:].contiguous()  # a view would be reduced from its storage's start
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        finite = torch.isfinite(stats).all()
        stats = torch.where(finite, stats, torch.zeros_like(stats))
        self.pos_grad += stats[0]
        self.neg_grad += stats[1]
        ratio = self.pos_grad / (self.neg_grad + 1e-10)
        self.pos_neg.copy_(torch.where(finite, ratio, self.pos_neg))

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, K + 1)`` sigmoids: column 0 ``sigmoid(z_0)``, columns ``1..K``
        ``sigmoid(z_c) * (1 - sigmoid(z_0))`` (``test_with_obj``; else ``sigmoid(z_c)``).
        eqlv2 ``EQLv2.get_activation``."""
        self.check_logits(logits)
        probs = torch.sigmoid(logits)
        background = probs[:, :1]
        foreground = probs[:, 1:] * (1.0 - background) if self.test_with_obj else probs[:, 1:]
        return torch.cat([background, foreground], dim=1)


# --------------------------------------------------------------------------------------------
# Federated loss (Zhou et al. 2021; detectron2 fast_rcnn.py use_fed_loss)


def federated_class_weights(
    class_image_counts: Sequence[float] | np.ndarray | torch.Tensor, power: float = 0.5
) -> torch.Tensor:
    """Sampling weights ``image_count ** power``, ``(K,)`` float32, index ``c - 1`` for label ``c``.

    ``class_image_counts``: the number of training images annotated with each class, in label
    order ``1..K`` (LVIS ``image_count`` of the train file). detectron2
    ``get_fed_loss_cls_weights`` (``freq_weight_power``, 0.5 in its LVIS configs). A class
    with count 0 gets weight 0 and is never sampled as a negative.
    """
    counts = torch.as_tensor(np.asarray(class_image_counts, dtype=np.float64))
    if counts.ndim != 1 or not torch.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("class_image_counts must be a 1-D sequence of finite counts >= 0")
    return counts.pow(power).float()


def federated_classes(
    labels: torch.Tensor,
    class_weights: torch.Tensor,
    num_fed_classes: int = 50,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The foreground labels the federated loss trains on for one batch, sorted, int64.

    ``labels`` ``(N,)`` int64 in ``0..K``; ``class_weights`` ``(K,)`` (label ``c`` at index
    ``c - 1``). As detectron2 ``get_fed_loss_classes``: every class present in ``labels`` is
    kept; while fewer than ``num_fed_classes`` are, further classes are drawn without
    replacement with probability proportional to ``class_weights``, until
    ``num_fed_classes`` are kept. The background, when present, counts toward the number (as in
    detectron2, whose background is a gt class with weight 0) and is not returned. Never more
    than the classes with weight > 0 are drawn (detectron2 would raise). The draw uses
    ``generator`` (the global RNG when ``None``) on the generator's device.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    present = torch.unique(labels).to(device)
    prob = torch.cat([class_weights.new_zeros(1), class_weights]).to(device, torch.float32)
    prob[present] = 0.0
    wanted = min(num_fed_classes - len(present), int((prob > 0).sum()))
    if wanted > 0:
        drawn = torch.multinomial(prob, wanted, replacement=False, generator=generator)
        present = torch.cat([present, drawn])
    return present[present > 0].sort().values.to(labels.device)


class FederatedLoss(ClsLoss):
    """Federated loss: sigmoid BCE on the batch's classes plus sampled negatives.

    detectron2 ``FastRCNNOutputLayers`` with ``use_sigmoid_ce`` and ``use_fed_loss``
    (``fed_loss_num_classes=50``, ``fed_loss_freq_weight_power=0.5``: LVIS configs).
    ``forward(logits (N, K+1), labels (N,))`` is
    ``loss_weight * sum_n sum_{c in S} BCE(z_nc, [labels_n == c]) / N`` with ``S`` =
    :func:`federated_classes` of the batch; column 0 (background) is not trained, as in
    detectron2, whose background logit is unused by the sigmoid loss. ``class_image_counts``
    ``(K,)``: train image counts in label order (:func:`federated_class_weights`).
    ``generator`` makes the draw reproducible (``torch.Generator().manual_seed(s)``).
    """

    name = "federated"

    def __init__(
        self,
        num_classes: int,
        class_image_counts: Sequence[float] | np.ndarray | torch.Tensor,
        fed_loss_num_classes: int = 50,  # classes kept per batch (detectron2, LVIS)
        freq_weight_power: float = 0.5,  # weights image_count ** power (detectron2, LVIS)
        loss_weight: float = 1.0,
        generator: torch.Generator | None = None,  # the draw's RNG; None: torch's global one
    ) -> None:
        super().__init__(num_classes)
        weights = federated_class_weights(class_image_counts, freq_weight_power)
        if weights.shape != (num_classes,):
            raise ValueError(
                f"federated: class_image_counts has {weights.shape[0]} entries for "
                f"{num_classes} classes"
            )
        self.fed_loss_num_classes, self.loss_weight = fed_loss_num_classes, loss_weight
        self.generator = generator
        self.register_buffer("class_weights", weights)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check(logits, labels)
        if logits.shape[0] == 0:
            return _empty_loss(logits)
        kept = federated_classes(
            labels, self.class_weights, self.fed_loss_num_classes, self.generator
        )
        mask = logits.new_zeros(self.num_outputs)
        mask[kept] = 1.0
        target = F.one_hot(labels, self.num_outputs).to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return self.loss_weight * (bce * mask)[:, 1:].sum() / logits.shape[0]

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, K + 1)`` independent sigmoids (detectron2 ``predict_probs``). Column 0 is the
        sigmoid of the untrained background logit: not a background probability, and dropped
        by ``postprocess_detections`` like every column 0."""
        self.check_logits(logits)
        return torch.sigmoid(logits)


# --------------------------------------------------------------------------------------------
# Registry

CLS_LOSSES: dict[str, type[ClsLoss]] = {
    cls.name: cls for cls in (SoftmaxCELoss, SeesawLoss, EQLv2Loss, FederatedLoss)
}


def build_cls_loss(
    name: str,
    num_classes: int,
    class_image_counts: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    **params,
) -> ClsLoss:
    """The classification loss ``name`` (:data:`CLS_LOSSES`) for ``num_classes`` classes.

    ``class_image_counts`` ``(K,)`` (train image counts in label order ``1..K``) is required
    by ``"federated"`` and not read by the others. ``params`` override the loss's keyword
    defaults (e.g. ``p=0.5`` for Seesaw, ``generator=...`` for federated); an unknown one
    raises ``TypeError``.
    """
    if name not in CLS_LOSSES:
        raise ValueError(f"unknown classification loss {name!r}; choose from {sorted(CLS_LOSSES)}")
    if name == FederatedLoss.name:
        if class_image_counts is None:
            raise ValueError("the federated loss needs class_image_counts (train image counts)")
        return FederatedLoss(num_classes, class_image_counts, **params)
    return CLS_LOSSES[name](num_classes, **params)
