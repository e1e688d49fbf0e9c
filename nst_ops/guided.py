"""Guided filter with a colour guide (He, Sun, Tang 2010, "Guided Image Filtering"), used as an
edge-aware refinement of a stylized photo guided by the content image (in the spirit of Luan et
al. 2017's posterisation refinement): each output channel is locally an affine function of the
content's colours, so the content's edges come back while the stylized colours stay.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _box(x: Tensor, radius: int) -> Tensor:
    """Mean over (2r+1)² windows, shrinking at the borders. x: (..., H, W)."""
    size = 2 * radius + 1
    flat = x.reshape(-1, 1, *x.shape[-2:])
    mean = F.avg_pool2d(flat, size, stride=1, padding=radius, count_include_pad=False)
    return mean.reshape(x.shape)


def guided_filter(guide: Tensor, src: Tensor, radius: int = 4, eps: float = 1e-3) -> Tensor:
    """guide (B, 3, H, W) and src (B, C, H, W) in [0,1] → filtered src (B, C, H, W) in [0,1].

    q = mean(a)·I + mean(b), a = (Σ_I + eps·I₃)⁻¹ cov(I, p), b = mean(p) − aᵀ mean(I).
    """
    b, c, h, w = src.shape
    guide = guide.to(src)
    mean_i = _box(guide, radius)  # (B, 3, H, W)
    mean_p = _box(src, radius)  # (B, C, H, W)
    ii = _box(guide[:, :, None] * guide[:, None], radius) - mean_i[:, :, None] * mean_i[:, None]
    ip = _box(guide[:, :, None] * src[:, None], radius) - mean_i[:, :, None] * mean_p[:, None]
    sigma = ii.permute(0, 3, 4, 1, 2) + eps * torch.eye(3, dtype=src.dtype, device=src.device)
    cov = ip.permute(0, 3, 4, 1, 2)  # (B, H, W, 3, C)
    a = torch.linalg.solve(sigma, cov)  # (B, H, W, 3, C)
    bias = mean_p - torch.einsum("bhwic,bihw->bchw", a, mean_i)
    mean_a = _box(a.permute(0, 3, 4, 1, 2).reshape(b, 3 * c, h, w), radius).reshape(b, 3, c, h, w)
    out = torch.einsum("bichw,bihw->bchw", mean_a, guide) + _box(bias, radius)
    return out.clamp(0, 1)
