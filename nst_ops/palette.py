"""Keeping each mask region's colours among its style region's colours (our addition to the
`smooth` post-process for Luan et al. (2017)'s masks; not in the paper or in FastPhotoStyle).

The smoothing and the colour narrowing of nst_ops.postprocess work on a region's mean and
covariance, so a colour inside the style region's Gaussian but absent from its pixels stays:
pair 8 of ../shared/data/photo keeps a saturated blue cloud in a pink-to-purple sky
(benchmarks/RESULTS.md, issue 14). Here a region's palette is the set of its style pixels'
colours on a grid of PALETTE_BINS³ RGB cells (the mean colour of each occupied cell); an
output colour y farther than τ from its nearest palette colour c is moved to distance τ:
y + (1 − τ/‖y − c‖)·(c − y). The nearest occupied cell of every cell comes from a Euclidean
distance transform of the occupied cells (scipy.ndimage), so the lookup per pixel costs one
gather whatever the palette's size. Colours inside an occupied cell never move: the cell's
diagonal, √3/PALETTE_BINS ≈ 0.027, is below PALETTE_TOLERANCE.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch
from torch import Tensor

PALETTE_BINS = 64  # cells per RGB channel
PALETTE_TOLERANCE = 0.03  # τ: how far (RGB in [0,1], Euclidean) a colour may lie from the palette


def nearest_colors(pixels: Tensor, weights: Tensor, bins: int = PALETTE_BINS) -> Tensor:
    """For every cell of a bins³ RGB grid, the palette colour nearest to it: the mean colour of
    the nearest cell that holds a style pixel of weight ≥ half the largest weight.
    pixels (N, 3) in [0,1], weights (N,) in [0,1] → (bins, bins, bins, 3) on pixels' device."""
    keep = weights >= 0.5 * weights.max().clamp_min(1e-8)
    colors = pixels[keep].double().cpu()
    cells = _cell_index(colors, bins)
    sums = torch.zeros(bins**3, 3, dtype=torch.float64).index_add_(0, cells, colors)
    counts = torch.bincount(cells, minlength=bins**3)
    means = (sums / counts.clamp_min(1)[:, None]).reshape(bins, bins, bins, 3)
    empty = (counts == 0).reshape(bins, bins, bins).numpy()
    indices = scipy.ndimage.distance_transform_edt(
        empty, return_distances=False, return_indices=True
    )
    nearest = means[tuple(torch.from_numpy(np.asarray(indices)))]  # (bins, bins, bins, 3)
    return nearest.to(pixels)


def _cell_index(colors: Tensor, bins: int) -> Tensor:
    """The flat index (N,) of each colour's cell (N, 3) in the bins³ grid."""
    cell = (colors * bins).long().clamp(0, bins - 1)
    flat: Tensor = (cell[:, 0] * bins + cell[:, 1]) * bins + cell[:, 2]
    return flat


def palette_moves(
    y: Tensor, nearest: Tensor, match: float, tolerance: float = PALETTE_TOLERANCE
) -> Tensor:
    """Per region k, the move that brings each colour within `tolerance` of the region's
    palette: γ·max(0, 1 − τ/‖y − c_k(y)‖)·(c_k(y) − y), c_k(y) the palette colour nearest to y
    (`nearest_colors`). y (N, 3) in [0,1], nearest (K, bins, bins, bins, 3), match γ in [0,1]
    → (N, K, 3); zero where y is in region k's palette, whatever the pixel's mask."""
    bins = nearest.shape[1]
    cells = _cell_index(y, bins)
    targets = nearest.reshape(nearest.shape[0], bins**3, 3).to(y)[:, cells].transpose(0, 1)
    gap = targets - y[:, None, :]  # (N, K, 3)
    distance = gap.norm(dim=2, keepdim=True)
    factor = (1 - tolerance / distance.clamp_min(1e-12)).clamp_min(0)
    moves: Tensor = match * factor * gap
    return moves
