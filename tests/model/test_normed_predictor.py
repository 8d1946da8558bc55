"""lvisnb.model.normed_predictor: the cosine classifier and the cosine mask-logit convolution
compute ``temperature * cosine + bias`` (mmdetection's NormedLinear and NormedConv2d)."""

import numpy as np
import pytest
import torch

from lvisnb.model.normed_predictor import NormedConv2d, NormedLinear


def test_normed_linear_is_scaled_cosine_plus_bias():
    torch.manual_seed(0)
    layer = NormedLinear(5, 3)
    assert layer.temperature == 20.0 and layer.bias.abs().sum() == 0
    assert layer.weight.std().item() == pytest.approx(0.01, rel=0.5)  # N(0, 0.01) init
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(4, 5)
    xn, wn = x.numpy(), layer.weight.detach().numpy()
    unit_x = xn / (np.linalg.norm(xn, axis=1, keepdims=True) + 1e-6)
    unit_w = wn / (np.linalg.norm(wn, axis=1, keepdims=True) + 1e-6)  # eps matters: |w| ~ 0.02
    expected = 20 * unit_x @ unit_w.T + [0.5, -1.0, 2.0]
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(3 * x), layer(x))  # invariant to the feature's norm


def test_normed_conv2d_is_a_scaled_cosine_per_pixel_plus_bias():
    torch.manual_seed(0)
    conv = NormedConv2d(4, 3, 1, temperature=20.0)
    assert conv.bias.abs().sum() == 0
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.5, -1.0, 0.0]))
    x = torch.randn(2, 4, 5, 6)
    out = conv(x)
    w = conv.weight[:, :, 0, 0]
    pixels = x.permute(0, 2, 3, 1)  # (B, H, W, C_in)
    cosine = torch.nn.functional.cosine_similarity(pixels[..., None, :], w, dim=-1, eps=0)
    expected = 20.0 * cosine + conv.bias
    torch.testing.assert_close(out.permute(0, 2, 3, 1), expected, rtol=1e-4, atol=1e-4)
    assert out.abs().max() <= 20.0 + 1.0 + 1e-4
