"""Per-region colour distribution transfer (our addition to the photo post-process, issue 33):
each content mask region's colours take the whole distribution of its style region's colours —
tonal range, shadows, highlights, saturation — not only their mean.

In the style region's principal colour axes (the eigenvectors of its RGB covariance: a
decorrelated space for that region, as in Pitié, Kokaram & Dahyot's per-axis transfer, 2005),
each coordinate of the output's region is mapped by per-axis quantile matching,
T(u) = Q_style(F_output(u)) with mask-weighted empirical distributions at QUANTILES levels and
linear interpolation between them. The change T(y) − y of every region is weighted by the
region's soft mask; nst_ops.postprocess smooths it along the content's edges before adding it,
so the output's own detail is kept and the change follows the content's edges.
"""

from __future__ import annotations

import torch
from torch import Tensor

QUANTILES = 64  # levels per axis: the map is piecewise linear between them


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x, per column: x (N, C), xp and fp (Q, C)
    with xp increasing; constant beyond the ends."""
    q = xp.shape[0]
    index = torch.searchsorted(xp.T.contiguous(), x.T.contiguous()).T.clamp(1, q - 1)  # (N, C)
    lo, hi = xp.gather(0, index - 1), xp.gather(0, index)
    f_lo, f_hi = fp.gather(0, index - 1), fp.gather(0, index)
    t = ((x - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    return f_lo + t * (f_hi - f_lo)


def weighted_quantiles(values: Tensor, weights: Tensor, levels: Tensor) -> Tensor:
    """Quantiles (Q, C) at `levels` (Q,) in (0, 1) of each column of values (N, C) under
    weights (N,) ≥ 0 (the mid-point rule: a sample's level is the weight below it plus half its
    own); increasing in Q (ties broken by a 1e-9 ramp)."""
    keep = weights > 0  # a zero-weight sample must not sit between two others' levels
    values, weights = values[keep], weights[keep]
    order = values.argsort(0)
    ordered = values.gather(0, order)
    w = weights[order]  # (N, C)
    total = w.sum(0, keepdim=True).clamp_min(1e-12)
    cdf = (w.cumsum(0) - 0.5 * w) / total
    cdf = cdf + torch.arange(cdf.shape[0], device=cdf.device, dtype=cdf.dtype)[:, None] * 1e-12
    grid = levels[:, None].expand(-1, values.shape[1]).contiguous()
    out = _interp(grid, cdf, ordered)
    ramp = torch.arange(out.shape[0], device=out.device, dtype=out.dtype)[:, None] * 1e-9
    return out + ramp


def principal_axes(pixels: Tensor, weights: Tensor) -> Tensor:
    """(3, 3) orthonormal columns: the eigenvectors of the weighted RGB covariance of pixels
    (N, 3) under weights (N,)."""
    w = weights / weights.sum().clamp_min(1e-12)
    mean = w @ pixels
    centred = pixels - mean
    covariance = (centred * w[:, None]).T @ centred
    vectors: Tensor = torch.linalg.eigh(covariance.double()).eigenvectors
    return vectors.to(pixels.dtype)


def region_transfer(
    y: Tensor, masks: Tensor, style: Tensor, style_masks: Tensor, match: float,
    quantiles: int = QUANTILES,
) -> Tensor:  # fmt: skip
    """The colour change (N, 3) that gives each region of y (N, 3) in [0,1] its style region's
    distribution, scaled by `match` γ in [0,1]: Σ_k m_k ⊙ γ (T_k(y) − y), masks (N, K) in [0,1]
    (their sum ≤ 1 per pixel), style pixels (M, 3) and their masks (M, K)."""
    levels = (torch.arange(quantiles, device=y.device, dtype=y.dtype) + 0.5) / quantiles
    change = torch.zeros_like(y)
    for k in range(masks.shape[1]):
        if float(masks[:, k].sum()) <= 0 or float(style_masks[:, k].sum()) <= 0:
            continue
        axes = principal_axes(style, style_masks[:, k])
        u, t = y @ axes, style @ axes
        source = weighted_quantiles(u, masks[:, k], levels)
        target = weighted_quantiles(t, style_masks[:, k], levels)
        moved = _interp(u, source, target)
        change += masks[:, k : k + 1] * match * ((moved - u) @ axes.T)
    return change
