"""The smooth post-process with Luan's masks (nst_ops.postprocess.mask_color_smooth): against
its constrained least-squares problem solved densely (KKT system), the covariance narrowing
against its per-pixel formula (scipy's sqrtm) and the Monge–Kantorovich property, the regions'
mean colours it sets, and stylize applying it with the params' mask_color_match."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from nst_ops.matting import matting_laplacian, to_torch_sparse
from nst_ops.optimize import stylize
from nst_ops.params import ParamError, StyleParams
from nst_ops.postprocess import MaskColors, closed_form_smooth, mask_color_smooth, narrow_spread
from nst_ops.vgg import VGGFeatures


def scene(h: int = 6, w: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """content and output (1, 3, h, w) in [0.25, 0.75] and two soft masks (2, h, w)."""
    generator = torch.Generator().manual_seed(7)
    content = torch.rand((1, 3, h, w), generator=generator, dtype=torch.float64)
    output = 0.25 + 0.5 * torch.rand((1, 3, h, w), generator=generator, dtype=torch.float64)
    left = torch.zeros((h, w), dtype=torch.float64)
    left[:, : w // 2] = 1.0
    left[:, w // 2] = 0.5  # a soft boundary column
    return content, output, torch.stack([left, 1.0 - left])


@pytest.mark.parametrize("match", [1.0, 0.4])
def test_mask_color_smooth_solves_its_constrained_problem(match: float) -> None:
    content, output, masks = scene()
    dense = matting_laplacian(content[0].permute(1, 2, 0).numpy(), eps=1e-4)
    strength, n = 2.0, 48
    targets = torch.tensor([[0.45, 0.5, 0.55], [0.5, 0.42, 0.48]])
    spreads = torch.diag_embed(torch.tensor([[0.05, 0.2, 0.1], [0.1, 0.02, 0.3]]) ** 2)
    colors = MaskColors(masks.float(), targets, spreads, match)
    got = mask_color_smooth(output.float(), to_torch_sparse(dense), colors, strength, 1e-7)
    # brute force: minimise Σ_c |R_c − Y_c|² + μ R_cᵀ L R_c s.t. M̂ᵀR = M̂ᵀR⁰ + γ(T − M̂ᵀR⁰)
    a = np.eye(n) + strength * dense.toarray()
    flat = masks.reshape(2, -1).T.float()
    y = narrow_spread(output[0].reshape(3, -1).T.float(), flat, spreads, match).double().numpy()
    mean = masks.reshape(2, -1).numpy().T / masks.reshape(2, -1).numpy().sum(1)
    plain = np.linalg.solve(a, y)
    want = mean.T @ plain + match * (targets.double().numpy() - mean.T @ plain)
    kkt = np.block([[a, mean], [mean.T, np.zeros((2, 2))]])
    expected = np.linalg.solve(kkt, np.vstack([y, want]))[:n]
    assert 0 < expected.min() and expected.max() < 1  # no clamping in this scene
    assert np.allclose(got[0].reshape(3, -1).numpy().T, expected, atol=1e-4)


def test_full_match_gives_each_region_the_style_mean_and_zero_is_plain() -> None:
    content, output, masks = scene(10, 12)
    content = 0.1 * content + 0.6 * masks[:1]  # regions that differ in the content, as in photos
    laplacian = to_torch_sparse(matting_laplacian(content[0].permute(1, 2, 0).numpy()))
    targets = torch.tensor([[0.6, 0.3, 0.3], [0.2, 0.3, 0.6]])
    spreads = torch.diag_embed(torch.full((2, 3), 1e-4))
    full = MaskColors(masks.float(), targets, spreads, 1.0)
    matched = mask_color_smooth(output.float(), laplacian, full)
    weights = masks.float().reshape(2, -1)
    means = (weights @ matched[0].reshape(3, -1).T) / weights.sum(1, keepdim=True)
    assert torch.allclose(means, targets, atol=2e-3), means
    zero = mask_color_smooth(output.float(), laplacian, MaskColors(masks.float(), targets,
                                                                   spreads, 0.0))  # fmt: skip
    assert torch.allclose(zero, closed_form_smooth(output.float(), laplacian), atol=1e-5)


def monge_kantorovich(sigma_o: np.ndarray, sigma_s: np.ndarray, match: float) -> np.ndarray:
    """F = V·diag(min(1, λ)^γ)·Vᵀ of T = Σ_o^-½ (Σ_o^½ Σ_s Σ_o^½)^½ Σ_o^-½, by scipy's sqrtm."""
    root = np.real(scipy.linalg.sqrtm(sigma_o))
    inverse = np.linalg.inv(root)
    t = inverse @ np.real(scipy.linalg.sqrtm(root @ sigma_s @ root)) @ inverse
    values, vectors = np.linalg.eigh((t + t.T) / 2)
    return np.asarray(vectors @ np.diag(np.minimum(values, 1.0) ** match) @ vectors.T)


@pytest.mark.parametrize("match", [1.0, 0.5])
def test_narrow_spread_against_its_per_pixel_formula(match: float) -> None:
    _, output, masks = scene(5, 6)
    y = output[0].reshape(3, -1).T.double()  # (30, 3)
    m = masks.reshape(2, -1).T.double()  # (30, 2), soft in column 3
    spreads = torch.tensor([[0.01, 0.5, 0.05], [0.5, 0.5, 0.02]], dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn((3, 3), generator=torch.Generator().manual_seed(1),
                                           dtype=torch.float64))[0]  # fmt: skip
    style = rotation @ torch.diag_embed(spreads**2) @ rotation.T  # full covariances (2, 3, 3)
    got = narrow_spread(y, m, style, match)
    expected = y.numpy().copy()
    for k in range(2):
        w = (m[:, k] / m[:, k].sum()).numpy()
        mu = w @ y.numpy()
        d = y.numpy() - mu
        sigma = (w[:, None] * d).T @ d + 1e-6 * np.eye(3)
        f = monge_kantorovich(sigma, style[k].numpy(), match)
        for p in range(30):
            expected[p] += m[p, k].item() * (f - np.eye(3)) @ d[p]
    assert np.allclose(got.numpy(), expected, atol=1e-6)


def region(y: torch.Tensor) -> torch.Tensor:
    """The covariance (3, 3) of pixels (N, 3)."""
    d = y - y.mean(0)
    return d.T @ d / y.shape[0]


def test_narrow_spread_gives_a_narrower_style_covariance_and_never_widens() -> None:
    generator = torch.Generator().manual_seed(5)
    y = 0.5 + 0.1 * torch.randn((400, 3), generator=generator, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.2, 0.0, 1.0]], dtype=torch.float64
    )
    whole = torch.ones((400, 1), dtype=torch.float64)
    narrow = torch.tensor([[4e-4, 1e-4, 0.0], [1e-4, 3e-4, 0.0], [0.0, 0.0, 2e-4]],
                          dtype=torch.float64)[None]  # fmt: skip
    got = narrow_spread(y, whole, narrow, 1.0)
    assert torch.allclose(region(got), narrow[0], atol=1e-6)  # T Σ_o T = Σ_s
    assert torch.allclose(got.mean(0), y.mean(0), atol=1e-9)  # the mean is the smoothing's
    wide = 4 * region(y)[None]
    assert torch.allclose(narrow_spread(y, whole, wide, 1.0), y, atol=1e-9)


def test_narrow_spread_removes_a_hue_the_style_region_lacks() -> None:
    """Style: grey levels (r = g = b, std 0.1); output: the same grey levels plus a green against
    magenta hue (std 0.05). Per channel the spreads differ by 11% only (0.112 vs 0.1), so a
    factor per channel would keep 89% of the hue; the covariance map takes it out."""
    generator = torch.Generator().manual_seed(6)
    grey = 0.5 + 0.1 * torch.randn((500, 1), generator=generator, dtype=torch.float64)
    style = region(grey.expand(500, 3))[None] + 1e-6 * torch.eye(3, dtype=torch.float64)
    hue = 0.05 * torch.randn((500, 1), generator=generator, dtype=torch.float64)
    y = 0.1 * torch.randn((500, 1), generator=generator, dtype=torch.float64) + 0.5
    y = y + torch.cat([hue, -hue, hue], 1)
    got = narrow_spread(y, torch.ones((500, 1), dtype=torch.float64), style, 1.0)
    assert float((got[:, 1] - got[:, 0]).std()) < 0.05 * float((y[:, 1] - y[:, 0]).std())
    assert float(got.mean(1).std()) > 0.9 * float(y.mean(1).std())  # the grey levels stay


def two_region_pair() -> tuple[torch.Tensor, ...]:
    """A 24×32 content whose left half is greenish, a style whose left half is red-ish and right
    half blue-ish, and masks red | blue for both."""
    generator = torch.Generator().manual_seed(3)
    content = 0.3 + 0.2 * torch.rand((3, 24, 32), generator=generator)
    content[1, :, :16] += 0.4
    style = 0.2 + 0.1 * torch.rand((3, 24, 32), generator=generator)  # away from 0 and 1
    style[0, :, :16] += 0.5
    style[2, :, 16:] += 0.4
    mask = torch.zeros((3, 24, 32))
    mask[0, :, :16] = 1.0
    mask[2, :, 16:] = 1.0
    return content, style, mask


def region_error(image: torch.Tensor, style: torch.Tensor) -> float:
    """Largest |mean RGB of the output − the style's| over the two halves."""
    halves = [(slice(None), slice(None, 16)), (slice(None), slice(16, None))]
    return max(
        float((image[:, r, c].mean((1, 2)) - style[:, r, c].mean((1, 2))).abs().max())
        for r, c in halves
    )


def test_stylize_matches_the_mask_colours(vgg16_state: dict[str, torch.Tensor]) -> None:
    extractor = VGGFeatures("vgg16", ["relu5_1"], vgg16_state)
    content, style, mask = two_region_pair()
    params = StyleParams(image_size=32, iterations=3, photo_weight=1e4)
    assert params.mask_color_match == 1.0 and params.photo_postprocess == "smooth"
    matched = stylize(content, style, params, extractor, None, mask, mask)
    plain = stylize(content, style, params.replace(mask_color_match=0.0), extractor, None,
                    mask, mask)  # fmt: skip
    assert matched.losses.total_loss == plain.losses.total_loss  # the same optimisation
    assert region_error(matched.image, style) < 0.01 < region_error(plain.image, style)
    kept = params.replace(preserve_color="luminance")  # the content's colours: nothing to match
    a = stylize(content, style, kept, extractor, None, mask, mask)
    b = stylize(content, style, kept.replace(mask_color_match=0.0), extractor, None, mask, mask)
    assert torch.equal(a.image, b.image)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_mask_color_match_is_a_fraction(value: float) -> None:
    with pytest.raises(ParamError, match="mask_color_match"):
        StyleParams(mask_color_match=value)
