"""Efficient graph-based segmentation (Felzenszwalb & Huttenlocher 2004, IJCV 59(2)) of an image
into segments that follow its colour edges, and the pooling of per-pixel soft assignments over
those segments (nst_ops.automask uses it to keep a sky that runs from light to dark in one
region).

The method: the pixels of a GRID px grid are the nodes, each joined to its 8 neighbours by an
edge weighted by their colour difference (opponent colour, after a Gaussian blur of SIGMA grid
px); edges are visited from the lightest, and an edge joins its two segments when its weight is
at most both segments' internal difference (the heaviest edge of their minimum spanning tree)
plus SCALE / size. A gradual change, such as a sky that darkens towards one side, is a chain of
light edges and stays one segment; a skyline is a heavy edge and stays a border. Segments
smaller than MIN_SHARE of the grid are then joined to a neighbour (the paper's post-processing).
Runs on the CPU in numpy (a sort and a union-find over ~40 000 edges: ~0.05 s) whatever the
device of the image: a departure from "on the compute device" that costs little at any image
size, since the grid's size is fixed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

GRID = 128  # long side (px) of the grid segmented
SCALE = 0.5  # the paper's k: larger gives fewer, larger segments (opponent colour in [0, 1])
SIGMA = 0.8  # Gaussian blur (grid px) before the edge weights, as in the paper
MIN_SHARE = 0.002  # segments under this share of the grid's pixels join a neighbour


def segment(image: Tensor, scale: float = SCALE) -> Tensor:
    """image (1, C, H, W) in [0,1] (C = 3, or 1 for grey) → segment ids (h, w) int64 on the CPU,
    in [0, n), on a grid of long side GRID (the image's aspect ratio)."""
    h, w = image.shape[-2:]
    ratio = GRID / max(h, w)
    grid = (max(2, round(h * ratio)), max(2, round(w * ratio)))
    small = F.interpolate(
        image.detach().float().cpu().expand(-1, 3, -1, -1), size=grid, mode="area"
    )
    r, g, b = small[0]
    opponent = torch.stack([(r + g + b) / 3, (r - g) / 2, (r + g - 2 * b) / 4])
    x = _blur(opponent, SIGMA).double().numpy()
    a, b_, weight = _grid_edges(x)
    min_size = max(1, int(MIN_SHARE * grid[0] * grid[1]))
    roots = _merge(grid[0] * grid[1], a, b_, weight, scale, min_size)
    ids = np.unique(roots, return_inverse=True)[1]
    return torch.from_numpy(ids.reshape(grid)).long()


def pool(soft: Tensor, segments: Tensor) -> Tensor:
    """soft (1, K, H, W) and segment ids (h, w) → (1, K, H, W): each segment's mean of soft
    (soft taken to the segments' grid by area), bilinearly back to (H, W)."""
    grid = segments.shape
    small = F.interpolate(soft, size=grid, mode="area")[0].flatten(1)  # (K, P)
    ids = segments.to(soft.device).flatten()
    one_hot = F.one_hot(ids, int(ids.max()) + 1).to(soft.dtype)  # (P, n)
    mean = small @ one_hot / one_hot.sum(0).clamp_min(1)  # (K, n)
    pooled = mean[:, ids].reshape(1, -1, *grid)
    return F.interpolate(pooled, size=soft.shape[-2:], mode="bilinear")


def _blur(x: Tensor, sigma: float) -> Tensor:
    """(C, h, w) → Gaussian-blurred (separable, edges replicated)."""
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[0]
    y = F.pad(x[None], (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(y, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)[0]


def _grid_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (C, h, w) → the 8-neighbour edges (a, b, weight) of the h·w grid (row-major ids),
    weight the Euclidean distance of x at the two ends."""
    _, h, w = x.shape
    ids = np.arange(h * w).reshape(h, w)
    ends: list[tuple[np.ndarray, ...]] = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        cols = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        rows = (slice(0, h - dy), slice(dy, h))
        xa, xb = x[:, rows[0], cols[0]], x[:, rows[1], cols[1]]
        weight = np.sqrt(((xa - xb) ** 2).sum(0))
        ends.append((ids[rows[0], cols[0]].ravel(), ids[rows[1], cols[1]].ravel(), weight.ravel()))
    a, b, weight = (np.concatenate(part) for part in zip(*ends, strict=True))
    return a, b, weight


def _merge(
    n: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray, scale: float, min_size: int
) -> np.ndarray:
    """Felzenszwalb–Huttenlocher merging of n nodes over edges (a, b, weight), then segments
    under min_size joined along the lightest edges → each node's root (n,)."""
    order = np.argsort(weight, kind="stable")
    a_list, b_list, w_list = a[order].tolist(), b[order].tolist(), weight[order].tolist()
    parent, size, threshold = list(range(n)), [1] * n, [scale] * n

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> int:
        if size[i] < size[j]:
            i, j = j, i
        parent[j] = i
        size[i] += size[j]
        return i

    for i, j, e in zip(a_list, b_list, w_list, strict=True):
        ri, rj = find(i), find(j)
        if ri != rj and e <= threshold[ri] and e <= threshold[rj]:
            root = join(ri, rj)
            threshold[root] = e + scale / size[root]
    for i, j in zip(a_list, b_list, strict=True):
        ri, rj = find(i), find(j)
        if ri != rj and min(size[ri], size[rj]) < min_size:
            join(ri, rj)
    return np.array([find(i) for i in range(n)])
