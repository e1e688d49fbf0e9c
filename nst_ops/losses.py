"""Loss terms of Gatys et al. (2015), "A Neural Algorithm of Artistic Style", as pure functions.

Symbols as in the paper and the README: F^l (B, N_l, H_l, W_l) features of the generated image,
P^l those of the content image, N_l channels, M_l = H_l·W_l positions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class _SymmetricGram(torch.autograd.Function):
    """G = F·Fᵀ of flat features F (B, N, M). The backward uses the symmetry of the product,
    dF = (dG + dGᵀ)·F: one matmul where autograd's generic bmm backward computes two (5–10% of
    an iteration at 512 px on the CPU)."""

    @staticmethod
    def forward(ctx: Any, flat: Tensor) -> Tensor:
        ctx.save_for_backward(flat)
        return flat @ flat.transpose(1, 2)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        flat: Tensor = ctx.saved_tensors[0]
        return (grad + grad.transpose(1, 2)) @ flat


def _autocast_on(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: no device argument
        return bool(torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled())


def gram(features: Tensor) -> Tensor:
    """Gram matrix G_ij = Σ_k F_ik F_jk of features (B, N, H, W) → (B, N, N). Unnormalised."""
    b, n, h, w = features.shape
    flat = features.reshape(b, n, h * w)
    if features.dtype in (torch.float32, torch.float64) and not _autocast_on(flat.device.type):
        return _SymmetricGram.apply(flat)  # type: ignore[no-any-return]
    return flat @ flat.transpose(1, 2)  # autocast (bf16): the generic product and backward


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """J_content = ½ Σ (F − P)² per image: (B, N, H, W) × (B|1, N, H, W) → (B,)."""
    return 0.5 * (features - target).pow(2).flatten(1).sum(1)


def style_layer_loss(features: Tensor, target_gram_per_position: Tensor) -> Tensor:
    """E_l = 1/(4 N²) Σ (G/M − A/M^S)² per image → (B,).

    `features` (B, N, H, W) of the generated image; `target_gram_per_position` (B|1, N, N) is the
    style image's Gram A divided by its own position count M^S. When M^S = M this is exactly the
    paper's 1/(4 N² M²) Σ (G − A)².
    """
    _, n, h, w = features.shape
    diff = gram(features) / (h * w) - target_gram_per_position
    return diff.pow(2).flatten(1).sum(1) / (4.0 * n * n)


def tv_loss(image: Tensor) -> Tensor:
    """Total variation: sum of squared differences of vertical and horizontal neighbours → (B,).

    image: (B, C, H, W).
    """
    dy = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).flatten(1).sum(1)
    dx = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).flatten(1).sum(1)
    return dy + dx
