"""Semantic masks of Luan, Paris, Shechtman, Bala (2017), "Deep Photo Style Transfer":
colour-coded segmentation images decoded into soft masks, and the masked style loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.losses import gram


class MaskError(ValueError):
    """Masks that cannot be used; `column` names the manifest column of the mask at fault
    (`content_mask_uri`), or is None when it is the pair of masks together."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


# Luan's 9-colour palette: name → which RGB channels are 1 (the others are 0). Grey is special.
PALETTE: dict[str, tuple[int, int, int]] = {
    "blue": (0, 0, 1),
    "green": (0, 1, 0),
    "black": (0, 0, 0),
    "white": (1, 1, 1),
    "red": (1, 0, 0),
    "yellow": (1, 1, 0),
    "grey": (-1, -1, -1),  # all channels within 0.5 ± 0.1
    "lightblue": (0, 1, 1),
    "purple": (1, 0, 1),
}
COLOURS = tuple(PALETTE)


def decode_mask(mask: Tensor) -> Tensor:
    """(3, H, W) RGB mask in [0,1] → (9, H, W) binary float masks, one per palette colour.

    A pixel is colour k when every channel that should be 0 is < 0.1 and every channel that
    should be 1 is > 0.9; grey when all three are within 0.5 ± 0.1.
    """
    out = []
    for channels in PALETTE.values():
        if channels[0] < 0:
            hit = ((mask - 0.5).abs() <= 0.1).all(dim=0)
        else:
            want = torch.tensor(channels, dtype=torch.bool, device=mask.device).view(3, 1, 1)
            hit = torch.where(want, mask > 0.9, mask < 0.1).all(dim=0)
        out.append(hit)
    return torch.stack(out).to(mask.dtype)


def resize_masks(masks: Tensor, size: tuple[int, ...]) -> Tensor:
    """(K, H, W) soft masks → (K, h, w), area-weighted (antialiased bilinear), in [0,1]."""
    if tuple(masks.shape[-2:]) == size:
        return masks
    resized = F.interpolate(masks[None], size=size, mode="bilinear", antialias=True)[0]
    return resized.clamp(0, 1)


def masked_gram_targets(style_features: Tensor, style_masks: Tensor) -> tuple[Tensor, Tensor]:
    """A_k / M^S_k for each colour: features (1, N, H, W), masks (K, H_img, W_img) →
    ((K, N, N) per-mass Grams, (K,) masses at this layer's resolution)."""
    m = resize_masks(style_masks, (style_features.shape[-2], style_features.shape[-1]))
    mass = m.flatten(1).sum(1)
    grams = gram(style_features * m[:, None]) / mass.clamp_min(1e-8).view(-1, 1, 1)
    return grams, mass


def masked_style_layer_loss(
    features: Tensor, masks: Tensor, targets: Tensor, weights: Tensor
) -> Tensor:
    """E_l = Σ_k ω_k · 1/(4 N²) Σ (G_k/M^G_k − A_k/M^S_k)², ω_k = M^G_k / M_l.

    features (B, N, H, W); masks (K, h, w) content masks at this layer's resolution;
    targets (K, N, N) = A_k / M^S_k; weights (K,) = 1 for colours present in both masks, else 0.
    Returns (B,).
    """
    b, n, h, w = features.shape
    k = masks.shape[0]
    mass = masks.flatten(1).sum(1)  # M^G_k (K,)
    weighted = (features[:, None] * masks[None, :, None]).reshape(b * k, n, h, w)
    g = gram(weighted).reshape(b, k, n, n) / mass.clamp_min(1e-8).view(1, k, 1, 1)
    per_colour = (g - targets[None]).pow(2).flatten(2).sum(2) / (4.0 * n * n)  # (B, K)
    omega = mass / (h * w) * weights
    return per_colour @ omega


def pair_masks(
    content_mask: Tensor,
    style_mask: Tensor,
    content_size: tuple[int, int],
    style_size: tuple[int, int],
) -> tuple[Tensor, Tensor, Tensor, tuple[str, ...]]:
    """Decode both RGB masks (any size), keep the colours present in the content mask and resize
    them to the images. Returns (content masks (K, H, W), style masks (K, H_s, W_s), weights (K,)
    = 1 where the colour is in the style mask too, names of colours missing from the style)."""
    content = decode_mask(content_mask)
    style = decode_mask(style_mask)
    present = content.flatten(1).sum(1) > 0
    if not bool(present.any()):
        raise MaskError("content mask has no pixel of any palette colour", "content_mask_uri")
    in_style = style.flatten(1).sum(1) > 0
    keep = present.nonzero().flatten()
    missing = tuple(COLOURS[i] for i in keep.tolist() if not bool(in_style[i]))
    weights = in_style[keep].to(content_mask.dtype)
    return (
        resize_masks(content[keep], content_size),
        resize_masks(style[keep], style_size),
        weights,
        missing,
    )
