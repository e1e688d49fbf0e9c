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
- `mask_color_smooth`: the same smoothing when the pair has Luan's masks, after narrowing each
  region's colour covariance to the style region's where that is narrower (the linear
  Monge–Kantorovich colour map of Pitié & Kokaram, "The linear Monge-Kantorovitch linear
  colour mapping for example-based colour transfer", CVMP 2007, capped), and constrained so that
  each content mask region's mean colour moves to the style region's (our addition; Luan's masks
  ask for it, and his stage 2 and the smoothing both pull colours back towards the content's),
  then `keep_in_palette`: colours the style region lacks moved to within τ of the ones it
  has (nst_ops.palette; our addition too).

`refine` applies one of them (or the guided filter of nst_ops.guided) by its
`photo_postprocess` name. All images (1, 3, H, W) in [0,1] on one device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.guided import guided_filter
from nst_ops.objective import Masks
from nst_ops.palette import nearest_colors, palette_moves
from nst_ops.segments import content_laplacian

AFFINE_EPS = 1e-3  # ridge on the linear part of each window's affine fit (Luan's cuda_utils)
SMOOTH_STRENGTH = 1111.0  # μ of FastPhotoStyle's β = 0.9999 (module docstring)
# The smoothing's matting Laplacian: ε = 1e-5 where FastPhotoStyle and Luan's photorealism term
# use 1e-7 — a deliberate departure: at 1e-7 the Laplacian takes the content's JPEG blocks and
# grain in flat skies for edges, and the smoothing keeps 8×8 steps and speckle there at 512 px
# (benchmarks/RESULTS.md, issue 14 session 6).
SMOOTH_EPS = 1e-5
PALETTE_STRENGTH = 10.0  # μ_p of keep_in_palette's light smoothing of its colour move


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
class MaskColors:
    """What `mask_color_smooth` matches: the content's masks (K, H, W) in [0,1] at the output's
    size, the style region's mean RGB of each (K, 3) in [0,1] and its RGB covariance (K, 3, 3),
    and `match` γ in [0,1]; `nearest` (K, bins, bins, bins, 3), each region's
    palette.nearest_colors, for `keep_in_palette` (None: no palette step)."""

    masks: Tensor
    targets: Tensor
    covariances: Tensor
    match: float
    nearest: Tensor | None = None


def mask_colors(masks: Masks | None, style: Tensor, match: float) -> MaskColors | None:
    """The colour targets of a pair's masks: the regions whose colour is in the style mask too,
    each with the style's mean RGB and RGB covariance under its style mask; style
    (1, 3, H_s, W_s) in [0,1]. None without masks or usable regions, or for match 0."""
    if masks is None or match <= 0:
        return None
    keep = (masks.weights > 0) & (masks.content.flatten(1).sum(1) > 0)
    if not bool(keep.any()):
        return None
    weights = masks.style[keep].flatten(1).T.to(torch.float32)  # (H_s·W_s, K)
    pixels = style[0].flatten(1).T.to(torch.float32)  # (H_s·W_s, 3)
    targets, covariances = _region_moments(pixels, weights)
    nearest = torch.stack([nearest_colors(pixels, weights[:, k]) for k in range(weights.shape[1])])
    return MaskColors(masks.content[keep], targets, covariances, match, nearest)


def _region_moments(pixels: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """Mask-weighted mean (K, 3) and covariance (K, 3, 3) of pixels (N, 3) under masks (N, K)."""
    mean = masks / masks.sum(0).clamp_min(1e-8)  # M̂: each column sums to 1
    mu = mean.T @ pixels
    second = torch.einsum("nk,ni,nj->kij", mean, pixels, pixels)
    return mu, second - mu[:, :, None] * mu[:, None, :]


def _symmetric_power(matrix: Tensor, power: float, most: float = float("inf")) -> Tensor:
    """V·diag(min(max(λ, 0), most)^power)·Vᵀ of symmetric matrices V·diag(λ)·Vᵀ (..., 3, 3)."""
    values, vectors = torch.linalg.eigh(matrix)
    scaled = vectors * values.clamp(0, most).pow(power)[..., None, :]
    power_of: Tensor = scaled @ vectors.transpose(-1, -2)
    return power_of


def narrowing_maps(output: Tensor, style: Tensor, match: float) -> Tensor:
    """Per region, the colour map F (K, 3, 3) that narrows the output's covariance Σ_o (K, 3, 3)
    towards the style's Σ_s and never widens it: T = Σ_o^-½ (Σ_o^½ Σ_s Σ_o^½)^½ Σ_o^-½ is the
    linear Monge–Kantorovich map, the one that carries a Gaussian of Σ_o onto one of Σ_s
    (Pitié & Kokaram 2007); F = V·diag(min(1, λ)^γ)·Vᵀ for T = V·diag(λ)·Vᵀ."""
    eye = torch.eye(3, dtype=torch.float64, device=output.device)
    sigma_o = output.double() + 1e-6 * eye  # a flat region: T large, then clamped to I
    root = _symmetric_power(sigma_o, 0.5)
    inverse = _symmetric_power(sigma_o, -0.5)
    t = inverse @ _symmetric_power(root @ style.double() @ root, 0.5) @ inverse
    return _symmetric_power((t + t.transpose(-1, -2)) / 2, match, most=1.0).to(output.dtype)


def narrow_spread(y: Tensor, masks: Tensor, covariances: Tensor, match: float) -> Tensor:
    """Each region's colours pulled towards its own mean where the style region's spread is
    narrower: Ỹ = Y + Σ_k m_k ⊙ (Y − μ_k)(F_k − I), μ_k the region's mask-weighted mean of Y
    and F_k its `narrowing_maps` from Y's covariance in the region to the style region's.
    Deliberately never widened (F ≤ I): widening amplifies stage 2's brush texture
    (benchmarks/RESULTS.md). The full covariance, not one factor per channel, so that a hue
    the style region lacks (green on orange-lit buildings) is narrowed too.
    y (N, 3), masks (N, K) in [0,1], covariances (K, 3, 3) → (N, 3)."""
    mu, sigma = _region_moments(y, masks)
    eye = torch.eye(3, dtype=y.dtype, device=y.device)
    change = narrowing_maps(sigma, covariances.to(y), match) - eye  # F_k − I, symmetric
    shifted = torch.einsum("ni,kij->nkj", y, change) - torch.einsum("ki,kij->kj", mu, change)
    return y + (masks[:, :, None] * shifted).sum(1)


def mask_color_smooth(
    output: Tensor, laplacian: Tensor, colors: MaskColors, strength: float = SMOOTH_STRENGTH,
    tolerance: float = 1e-4,
) -> Tensor:  # fmt: skip
    """Closed-form smoothing whose mask regions take the style regions' colours (our addition
    to FastPhotoStyle's step, for Luan et al.'s masks). Y = `narrow_spread` of the output, then
    minimise Σ_c ‖R_c − Y_c‖² + μ R_cᵀ L R_c subject to m̂_kᵀ R_c = m̂_kᵀ R⁰_c + γ (t_kc −
    m̂_kᵀ R⁰_c) for each mask k, with R⁰ = A⁻¹Y the plain smoothing (A = I + μL), m̂_k = m_k /
    Σ m_k (a mean over the region) and t_k the style region's mean RGB. The Lagrange conditions
    give R = R⁰ + A⁻¹M Λ, M = [m_1 … m_K]: a smooth, edge-aware colour shift per region, with
    Λ (K, 3) from the K × K system (M̂ᵀA⁻¹M) Λ = γ (T − M̂ᵀR⁰). One conjugate-gradient solve
    for the 3 + K columns → (1, 3, H, W) in [0,1]."""
    _, c, h, w = output.shape
    y, m = _pixel_columns(output, colors.masks)
    y = narrow_spread(y, m, colors.covariances, colors.match)
    solved = _smooth_columns(torch.cat([y, m], 1), laplacian, strength, tolerance, 1000)
    plain, spread = solved[:, :c], solved[:, c:]  # R⁰, A⁻¹M
    mean = m / m.sum(0).clamp_min(1e-8)  # M̂
    now = mean.T @ plain  # (K, 3): each region's mean colour after plain smoothing
    shift = colors.match * (colors.targets.to(now) - now)
    system = mean.T @ spread  # (K, K), symmetric positive definite for independent masks
    multipliers: Tensor = torch.linalg.solve(system, shift)
    x = plain + spread @ multipliers
    return x.T.reshape(1, c, h, w).clamp(0, 1).to(output.dtype)


def _pixel_columns(output: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """An image (1, 3, H, W) and its masks (K, H, W) as float32 columns: (N, 3) and (N, K)."""
    _, c, h, w = output.shape
    m = masks.reshape(masks.shape[0], h * w).T.to(torch.float32)
    return output[0].reshape(c, h * w).T.to(m), m


def keep_in_palette(
    output: Tensor, laplacian: Tensor, colors: MaskColors, strength: float = PALETTE_STRENGTH
) -> Tensor:
    """Each region's colours brought within palette.PALETTE_TOLERANCE of its style region's
    colours: region k's move m_k ⊙ δ_k (palette.palette_moves) spread along the content's
    edges by a light smoothing, (I + μ_p L)⁻¹, μ_p = `strength` ≪ SMOOTH_STRENGTH (a raw
    per-pixel move leaves contours where it starts), and applied inside region k only:
    R = Y + Σ_k m_k ⊙ (I + μ_p L)⁻¹(m_k ⊙ δ_k), so that where the content shows no edge
    between two regions one region's move does not smear into the other. output (1, 3, H, W)
    in [0,1] → the same; unchanged where every colour is already in its region's palette."""
    if colors.nearest is None:
        return output
    _, c, h, w = output.shape
    y, m = _pixel_columns(output, colors.masks)
    moves = m[:, :, None] * palette_moves(y, colors.nearest, colors.match)  # (N, K, 3)
    if not bool(moves.any()):
        return output
    spread = _smooth_columns(moves.reshape(h * w, -1), laplacian, strength, 1e-4, 1000)
    x = y + (m[:, :, None] * spread.reshape(moves.shape)).sum(1)
    return x.T.reshape(1, c, h, w).clamp(0, 1).to(output.dtype)


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
    colors: MaskColors | None = None,
) -> Tensor:  # fmt: skip
    """The `photo_postprocess` named `kind` (none | guided | affine | smooth) of image by content,
    both (1, 3, H, W) in [0,1]; `smooth` uses `laplacian` when given (the content's, built with
    ε = SMOOTH_EPS) and matches the masks' colours (`mask_color_smooth`) when `colors` are
    given."""
    if kind == "guided":
        return guided_filter(content, image)
    if kind == "affine":
        return smooth_local_affine(content, image)
    if kind == "smooth":
        laplacian = content_laplacian(content, SMOOTH_EPS) if laplacian is None else laplacian
        if colors is not None:
            smoothed = mask_color_smooth(image, laplacian, colors)
            return keep_in_palette(smoothed, laplacian, colors)
        return closed_form_smooth(image, laplacian)
    return image
