"""Loss terms of Gatys et al. (2015), "A Neural Algorithm of Artistic Style", as pure functions.

Symbols as in the paper and the README: F^l (B, N_l, H_l, W_l) features of the generated image,
P^l those of the content image, N_l channels, M_l = H_l·W_l positions.
"""

from __future__ import annotations

from torch import Tensor


def gram(features: Tensor) -> Tensor:
    """Gram matrix G_ij = Σ_k F_ik F_jk of features (B, N, H, W) → (B, N, N). Unnormalised."""
    b, n, h, w = features.shape
    flat = features.reshape(b, n, h * w)
    return flat @ flat.transpose(1, 2)


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
