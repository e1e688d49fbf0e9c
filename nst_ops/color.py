"""Colour preservation by luminance-only transfer (Gatys, Bethge, Hertzmann, Shechtman 2016,
"Preserving Color in Neural Artistic Style Transfer"), in the YIQ colour space.
"""

from __future__ import annotations

import torch
from torch import Tensor

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def rgb_to_yiq(image: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0,1] → YIQ (Y in [0,1], I and Q roughly in [-0.6, 0.6])."""
    m = _RGB_TO_YIQ.to(image)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    """Inverse of `rgb_to_yiq`; not clamped."""
    m = torch.linalg.inv(_RGB_TO_YIQ.double()).to(image)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def luminance(image: Tensor) -> Tensor:
    """(..., 3, H, W) RGB → (..., 1, H, W) luminance Y in [0,1]."""
    return rgb_to_yiq(image)[..., :1, :, :]


def match_luminance(style_y: Tensor, content_y: Tensor) -> Tensor:
    """Paper eq. (1): L_S' = σ_C/σ_S (L_S − μ_S) + μ_C, clamped to [0,1]."""
    sigma_s = style_y.std().clamp_min(1e-6)
    matched = content_y.std() / sigma_s * (style_y - style_y.mean()) + content_y.mean()
    return matched.clamp(0, 1)


def combine_luminance(y: Tensor, content_rgb: Tensor) -> Tensor:
    """Output luminance `y` (..., 1, H, W) with the content's I and Q → RGB clamped to [0,1]."""
    iq = rgb_to_yiq(content_rgb)[..., 1:, :, :]
    return yiq_to_rgb(torch.cat([y, iq], dim=-3)).clamp(0, 1)
