"""Photorealistic refinement of a stylized photo, guided by its content image; no trained network.

- `smooth_local_affine`: Luan et al. (2017)'s own refinement (deepmatting_seg.lua,
  cuda_utils.cu, `SmoothLocalAffine`): fit, per pixel p, the affine map A_p (3×4) from the
  content's colours to the output's over p's 3×3 window, A_p = S_p·M_p⁻¹ with
  M_p = Σ [I;1][I;1]ᵀ + 1e-3·diag(1,1,1,0) and S_p = Σ O·[I;1]ᵀ; average the 12 coefficients
  over a (2·radius+1)² window with joint-bilateral weights
  exp(−|Δp|²/(2σ_s²))·exp(−(‖ΔI‖²/3)/(2·edge²)), σ_s = radius/3; output Ā_p·[I_p;1].
- `closed_form_smooth`: the smoothing step of FastPhotoStyle (Li et al. 2018, photo_smooth.py),
  R = (1−β)(I − βS)⁻¹ Y with S = D^-½ W D^-½ from the content's matting affinity; for β → 1 this
  is, away from the image border, R = (I + μ·L)⁻¹ Y with L our matting Laplacian and
  μ = β/(1−β)/9 (9 windows per pixel): β = 0.9999 gives μ ≈ 1111. Solved by conjugate gradients
  (Jacobi-preconditioned) on the images' device.
- `distribution_match`: each region's colours (Luan's masks; without masks the whole image)
  given its style region's whole colour distribution (nst_ops.histogram), the change smoothed
  along the content's edges with the same solver and added to the output, whose own detail is
  kept (our addition; the default post-process of photorealistic pairs).

`refine` applies one of them (or the guided filter of nst_ops.guided) by its
`photo_postprocess` name. All images (1, 3, H, W) in [0,1] on one device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.guided import guided_filter
from nst_ops.histogram import region_transfer
from nst_ops.matting import content_laplacian
from nst_ops.objective import Masks

AFFINE_EPS = 1e-3  # ridge on the linear part of each window's affine fit (Luan's cuda_utils)
SMOOTH_STRENGTH = 1111.0  # μ of FastPhotoStyle's β = 0.9999 (module docstring)
# The smoothing's matting Laplacian: ε = 1e-5 where FastPhotoStyle and Luan's photorealism term
# use 1e-7 — a deliberate departure: at 1e-7 the Laplacian takes the content's JPEG blocks and
# grain in flat skies for edges, and the smoothing keeps 8×8 steps and speckle there at 512 px
# (benchmarks/RESULTS.md, issue 14 session 6).
SMOOTH_EPS = 1e-5


def _window_sums(x: Tensor, radius: int = 1) -> Tensor:
    """Sums over the (2r+1)² window of every pixel, windows clipped at the border. x: (C, H, W)."""
    size = 2 * radius + 1
    kernel = torch.ones((x.shape[0], 1, size, size), dtype=x.dtype, device=x.device)
    return F.conv2d(x[None], kernel, padding=radius, groups=x.shape[0])[0]


def local_affine(content: Tensor, output: Tensor) -> Tensor:
    """Per pixel, the ridge-regularised affine map (H, W, 3, 4) from the content's colours over
    its 3×3 window to the output's."""
    _, _, h, w = content.shape
    i4 = torch.cat([content[0], torch.ones_like(content[0, :1])])  # (4, H, W): [I; 1]
    outer = _window_sums((i4[:, None] * i4[None]).reshape(16, h, w)).reshape(4, 4, h, w)
    cross = _window_sums((output[0][:, None] * i4[None]).reshape(12, h, w)).reshape(3, 4, h, w)
    ridge = torch.diag(torch.tensor([AFFINE_EPS] * 3 + [0.0], dtype=content.dtype))
    m = outer.permute(2, 3, 0, 1) + ridge.to(content.device)  # (H, W, 4, 4), symmetric
    s = cross.permute(2, 3, 0, 1)  # (H, W, 3, 4)
    coefficients: Tensor = torch.linalg.solve(m, s.transpose(-1, -2))  # M⁻¹Sᵀ (M symmetric)
    return coefficients.transpose(-1, -2)  # S·M⁻¹


def smooth_local_affine(
    content: Tensor, output: Tensor, radius: int = 15, edge: float = 0.01
) -> Tensor:
    """Luan's smooth local affine refinement (module docstring) → (1, 3, H, W) in [0,1]."""
    _, _, h, w = content.shape
    coeff = local_affine(content, output).reshape(h, w, 12).permute(2, 0, 1)  # (12, H, W)
    guide = content[0]
    num = torch.zeros_like(coeff)
    den = torch.zeros((h, w), dtype=content.dtype, device=content.device)
    sigma_s = radius / 3
    pad = (radius, radius, radius, radius)
    coeff_pad = F.pad(coeff[None], pad)[0]
    guide_pad = F.pad(guide[None], pad)[0]
    inside = F.pad(torch.ones((1, 1, h, w), dtype=content.dtype, device=content.device), pad)[0, 0]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            rows, cols = slice(radius + dy, radius + dy + h), slice(radius + dx, radius + dx + w)
            colour = (guide_pad[:, rows, cols] - guide).pow(2).sum(0) / 3
            weight = inside[rows, cols] * torch.exp(
                -colour / (2 * edge**2) - (dy * dy + dx * dx) / (2 * sigma_s**2)
            )
            num += weight * coeff_pad[:, rows, cols]
            den += weight
    mean = (num / den).reshape(3, 4, h, w)
    i4 = torch.cat([guide, torch.ones_like(guide[:1])])
    return (mean * i4[None]).sum(1)[None].clamp(0, 1)


def closed_form_smooth(
    output: Tensor, laplacian: Tensor, strength: float = SMOOTH_STRENGTH, tolerance: float = 1e-4,
    max_iterations: int = 1000,
) -> Tensor:  # fmt: skip
    """FastPhotoStyle's closed-form smoothing (module docstring): solve (I + μL) R = Y for the
    three channels at once by Jacobi-preconditioned conjugate gradients, L the content's
    matting Laplacian (sparse, H·W × H·W, on the images' device) → (1, 3, H, W) in [0,1]."""
    _, c, h, w = output.shape
    y = output[0].reshape(c, h * w).T.to(torch.float32)  # (N, 3)
    x = _smooth_columns(y, laplacian, strength, tolerance, max_iterations)
    return x.T.reshape(1, c, h, w).clamp(0, 1).to(output.dtype)


@dataclass(frozen=True)
class ColorTargets:
    """What `distribution_match` matches: the content's regions (K, H, W) in [0,1] at the
    output's size (their sum ≤ 1 per pixel), the style's pixels (M, 3) in [0,1] and its regions
    (M, K), and `match` γ in [0,1]. Without masks one region: the whole image and the whole
    style."""

    masks: Tensor
    style: Tensor
    style_masks: Tensor
    match: float


def color_targets(
    masks: Masks | None, style: Tensor, size: tuple[int, int], match: float
) -> ColorTargets | None:
    """The colour targets of a pair: the regions whose colour is in the style mask too (Luan's
    masks), or the whole image and style without masks; style (1, 3, H_s, W_s) in [0,1], size
    (H, W) the output's. None for match 0 or when no region is in both masks."""
    if match <= 0:
        return None
    pixels = style[0].flatten(1).T.to(torch.float32)  # (M, 3)
    if masks is None:
        whole = torch.ones((1, *size), dtype=torch.float32, device=style.device)
        return ColorTargets(whole, pixels, torch.ones_like(pixels[:, :1]), match)
    keep = (masks.weights > 0) & (masks.content.flatten(1).sum(1) > 0)
    if not bool(keep.any()):
        return None
    style_masks = masks.style[keep].flatten(1).T.to(torch.float32)  # (M, K)
    return ColorTargets(masks.content[keep].to(torch.float32), pixels, style_masks, match)


def distribution_match(
    output: Tensor, laplacian: Tensor, targets: ColorTargets, strength: float = SMOOTH_STRENGTH,
    tolerance: float = 1e-4,
) -> Tensor:  # fmt: skip
    """Each region's colours moved to its style region's whole distribution (per-axis quantile
    matching in the style region's principal colour axes, nst_ops.histogram), with the change
    smoothed along the content's edges before it is added: R = Y + (I + μL)⁻¹ Δ, Δ = Σ_k m_k ⊙
    γ (T_k(Y) − Y). Our addition, deliberately not a smoothing of Y itself: Y's own detail and
    contrast are kept (FastPhotoStyle's (I + μL)⁻¹Y removes what is not locally affine in the
    content, and with it the optimisation's detail), while smoothing Δ keeps a steep part of
    T_k from amplifying grain in flat skies and makes the change follow the content's edges
    where soft masks meet (benchmarks/RESULTS.md, issue 33). output (1, 3, H, W) in [0,1],
    L the content's matting Laplacian → (1, 3, H, W) in [0,1]."""
    _, c, h, w = output.shape
    y = output[0].reshape(c, h * w).T.to(torch.float32)
    m = targets.masks.reshape(targets.masks.shape[0], h * w).T.to(y)
    change = region_transfer(y, m, targets.style.to(y), targets.style_masks.to(y), targets.match)
    change = _smooth_columns(change, laplacian, strength, tolerance, 1000)
    return (y + change).T.reshape(1, c, h, w).clamp(0, 1).to(output.dtype)


def _smooth_columns(
    y: Tensor, laplacian: Tensor, strength: float, tolerance: float, max_iterations: int
) -> Tensor:
    """X (N, C) with (I + μL) X = Y, every column at once by Jacobi-preconditioned conjugate
    gradients, to a relative residual `tolerance` per column."""
    diagonal = 1.0 + strength * _diagonal(laplacian, y.shape[0]).to(y)

    def apply(v: Tensor) -> Tensor:
        return v + strength * (laplacian @ v)

    x = y.clone()
    r = y - apply(x)
    z = r / diagonal[:, None]
    p = z.clone()
    rz = (r * z).sum(0)
    scale = y.norm(dim=0).clamp_min(1e-12)
    for _ in range(max_iterations):
        ap = apply(p)
        alpha = rz / (p * ap).sum(0).clamp_min(1e-30)
        x += alpha * p
        r -= alpha * ap
        if bool((r.norm(dim=0) / scale).max() < tolerance):  # a host read per step: fine here
            break
        z = r / diagonal[:, None]
        rz_new = (r * z).sum(0)
        p = z + (rz_new / rz.clamp_min(1e-30)) * p
        rz = rz_new
    return x


def _diagonal(matrix: Tensor, n: int) -> Tensor:
    """The diagonal of a sparse CSR or COO matrix (n,)."""
    coo = matrix if matrix.layout == torch.sparse_coo else matrix.to_sparse_coo()  # type: ignore[no-untyped-call]
    coo = coo.coalesce()
    rows, cols = coo.indices()
    on = rows == cols
    out = torch.zeros(n, dtype=coo.values().dtype, device=coo.device)
    out.index_add_(0, rows[on], coo.values()[on])
    return out


def refine(
    kind: str, content: Tensor, image: Tensor, laplacian: Tensor | None = None,
    targets: ColorTargets | None = None,
) -> Tensor:  # fmt: skip
    """The `photo_postprocess` named `kind` (none | guided | affine | smooth | match) of image
    by content, both (1, 3, H, W) in [0,1]; `smooth` and `match` use `laplacian` when given
    (the content's, built with ε = SMOOTH_EPS); `match` with no `targets` (γ = 0) is none."""
    if kind == "guided":
        return guided_filter(content, image)
    if kind == "affine":
        return smooth_local_affine(content, image)
    if kind not in ("smooth", "match") or (kind == "match" and targets is None):
        return image
    laplacian = content_laplacian(content, SMOOTH_EPS) if laplacian is None else laplacian
    if kind == "match":
        assert targets is not None
        return distribution_match(image, laplacian, targets)
    return closed_form_smooth(image, laplacian)
