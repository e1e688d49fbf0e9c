"""The matting Laplacian of Levin, Lischinski and Weiss (2008), "A Closed-Form Solution to Natural
Image Matting", used by Luan et al. (2017) as a photorealism regulariser, and its loss.

For every window w_k of (2r+1)² pixels lying inside the image, with colour mean μ_k (3,) and
covariance Σ_k (3×3):
    L_ij = Σ_{k: i,j ∈ w_k} (δ_ij − 1/|w_k| · (1 + (I_i − μ_k)ᵀ (Σ_k + ε/|w_k|·I₃)⁻¹ (I_j − μ_k)))
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import torch
from numpy.typing import NDArray
from torch import Tensor


def _window_indices(h: int, w: int, radius: int) -> NDArray[np.int64]:
    """(K, (2r+1)²) flat row-major pixel indices of every window fully inside the image."""
    size = 2 * radius + 1
    index = np.arange(h * w, dtype=np.int64).reshape(h, w)
    windows = np.lib.stride_tricks.sliding_window_view(index, (size, size))
    return windows.reshape(-1, size * size)


MATTING_EPS = 1e-7  # Levin et al.'s window regulariser, as Luan's photorealism term uses it


def matting_laplacian(
    image: NDArray[np.floating], eps: float = MATTING_EPS, radius: int = 1
) -> scipy.sparse.csr_matrix:
    """L for an H×W×3 float array in [0,1] → scipy.sparse CSR matrix N×N, N = H·W (row-major).

    Built vectorised over all windows (no Python loop over pixels): each pixel interacts only with
    the (4r+1)² offsets around it, so entries are summed per (pixel, offset) with one bincount
    and laid out as CSR directly.
    """
    h, w, _ = image.shape
    size = 2 * radius + 1
    if h < size or w < size:
        raise ValueError(f"image {w}x{h} is smaller than a {size}-px window")
    idx = _window_indices(h, w, radius)  # (K, n)
    n = idx.shape[1]
    colours = image.reshape(-1, 3).astype(np.float64)[idx]  # (K, n, 3)
    centred = colours - colours.mean(axis=1, keepdims=True)
    cov = centred.transpose(0, 2, 1) @ centred / n  # (K, 3, 3)
    inv = np.linalg.inv(cov + (eps / n) * np.eye(3))
    values = np.eye(n)[None] - (1.0 + centred @ inv @ centred.transpose(0, 2, 1)) / n  # (K, n, n)
    span = 2 * size - 1  # offsets dy, dx in [-(size-1), size-1]
    local = np.arange(n)
    dy = local[None, :] // size - local[:, None] // size  # (n, n): offset of column vs row
    dx = local[None, :] % size - local[:, None] % size
    offset_id = (dy + size - 1) * span + (dx + size - 1)
    keys = idx[:, :, None] * (span * span) + offset_id[None]
    band: NDArray[np.float64] = np.bincount(
        keys.ravel(), weights=values.ravel(), minlength=h * w * span * span
    ).astype(np.float64)
    return _band_to_csr(band.reshape(h * w, span * span), h, w, size)


def _band_to_csr(band: NDArray[np.float64], h: int, w: int, size: int) -> scipy.sparse.csr_matrix:
    """(N, span²) values per (pixel, offset) → CSR, keeping neighbours that lie in the image."""
    offsets = np.arange(-(size - 1), size)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    y, x = np.divmod(np.arange(h * w), w)
    ny, nx = y[:, None] + dy.ravel()[None], x[:, None] + dx.ravel()[None]
    valid = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    indptr = np.concatenate([[0], np.cumsum(valid.sum(1))])
    return scipy.sparse.csr_matrix(
        (band[valid], (ny * w + nx)[valid], indptr), shape=(h * w, h * w)
    )


def to_torch_sparse(matrix: scipy.sparse.spmatrix, device: torch.device | str = "cpu") -> Tensor:
    """scipy sparse → torch sparse CSR float32 on `device`."""
    csr = scipy.sparse.csr_matrix(matrix)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data.astype(np.float32)),
            size=csr.shape,
            check_invariants=False,
        ).to(device)


# photo_loss = PHOTO_SCALE · Φ, so that photo_weight = λ means Luan et al.'s λ (1e4 in their
# code). Their style loss per layer, 100·mean((G−A)²) with Grams ÷ (N_l·M_l), is 400/N_l² · E_l
# in our terms, and their Φ is a plain sum like ours. A photo pair's default style (β = 1000,
# w_l = (1/N_l²)/S with S = Σ_l 1/N_l² over relu1_1…relu5_1, nst_ops.params) is therefore
# k · Σ_l 400/N_l² · E_l with k = β/(400·S) = 7620 — Luan's style times k, at every image size —
# and photo_weight · PHOTO_SCALE · Φ with PHOTO_SCALE = k is Luan's λ·Φ times the same k.
# Deliberate departure: our content term stays Gatys' sum (α = 1); α = 10·k/N₄M₄ = 1.25·k/(H·W)
# would make it k times Luan's mean-normalised one too (tests/nst_ops/test_photo_balance.py).
PHOTO_SCALE = 7620.0


def content_laplacian(content: Tensor, eps: float = MATTING_EPS) -> Tensor:
    """Matting Laplacian of the content (1, C, H, W) as a sparse tensor on its device; `eps`
    the window regulariser (Luan's 1e-7 for the photorealism term)."""
    rgb = content.expand(-1, 3, -1, -1)[0].permute(1, 2, 0).double().cpu().numpy()
    return to_torch_sparse(matting_laplacian(np.ascontiguousarray(rgb), eps), content.device)


def matting_energy(image: Tensor, laplacian: Tensor) -> Tensor:
    """Φ = Σ_c V_cᵀ L V_c per image: image (B, 3, H, W) in [0,1], L (H·W × H·W) sparse → (B,)."""
    b, c, h, w = image.shape
    v = image.reshape(b * c, h * w).T  # (N, B·C)
    lv = laplacian @ v
    return (v * lv).sum(0).reshape(b, c).sum(1)


def photo_loss(image: Tensor, laplacian: Tensor) -> Tensor:
    """The photorealism term (B,): PHOTO_SCALE · Φ (Luan et al. 2017's Φ = Σ_c V_cᵀ L V_c, scaled
    so that photo_weight means Luan's λ; see PHOTO_SCALE)."""
    return matting_energy(image, laplacian) * PHOTO_SCALE
