"""Cosine predictors: mmdetection's ``mmdet/models/layers/normed_predictor.py``.

:class:`NormedLinear` is the box classifier of mmdetection's Seesaw configs
(:func:`lvisnb.model.roi_heads.box_predictor`), :class:`NormedConv2d` the mask logits of its
``*_normed_mask_*`` configs (:func:`lvisnb.model.roi_heads.mask_predictor`). Both scale the
cosine of input and weight by a temperature: ``temperature * <x / |x|, w / |w|> + b``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NormedConv2d", "NormedLinear"]


class NormedLinear(nn.Linear):
    """Cosine classifier: ``temperature * <x / |x|, w_c / |w_c|> + b_c``.

    ``x`` ``(N, in_features)`` -> ``(N, out_features)``. mmdetection ``NormedLinear``
    (``tempearture=20, power=1.0, eps=1e-6``; weights ``N(0, 0.01)``, bias 0), the classifier
    of its Seesaw LVIS configs (``cls_predictor_cfg=dict(type='NormedLinear', tempearture=20)``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        temperature: float = 20.0,  # mmdetection's tempearture
        power: float = 1.0,  # exponent of the norms
        eps: float = 1e-6,  # added to the norms
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.temperature, self.power, self.eps = temperature, power, eps
        nn.init.normal_(self.weight, mean=0.0, std=0.01)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight / (self.weight.norm(dim=1, keepdim=True).pow(self.power) + self.eps)
        x = x / (x.norm(dim=1, keepdim=True).pow(self.power) + self.eps)
        return F.linear(x * self.temperature, weight, self.bias)


class NormedConv2d(nn.Conv2d):
    """Cosine convolution: ``temperature * <x / |x|, w_o / |w_o|> + b_o`` at every pixel.

    ``x`` ``(B, C_in, H, W)`` -> ``(B, C_out, H', W')``; norms over the input channels (of the
    input pixel and of each output channel's weight, per kernel position). mmdetection
    ``NormedConv2d`` (``tempearture=20, power=1.0, eps=1e-6, norm_over_kernel=False``), the
    mask logits of its ``*_normed_mask_*`` Seesaw configs. Initialised as mmdetection's
    ``FCNMaskHead.conv_logits``: Kaiming normal (``fan_out``, ReLU), bias 0.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        temperature: float = 20.0,  # mmdetection's tempearture
        power: float = 1.0,  # exponent of the norms
        eps: float = 1e-6,  # added to the norms
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size)
        self.temperature, self.power, self.eps = temperature, power, eps
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight / (self.weight.norm(dim=1, keepdim=True).pow(self.power) + self.eps)
        x = x / (x.norm(dim=1, keepdim=True).pow(self.power) + self.eps)
        return self._conv_forward(x * self.temperature, weight, self.bias)
