"""The smooth post-process with Luan's masks (nst_ops.postprocess.mask_color_smooth): against
its constrained least-squares problem solved densely (KKT system), the spread narrowing against
its per-pixel formula, the regions' mean colours it sets, and stylize applying it with the
params' mask_color_match."""

from __future__ import annotations

import numpy as np
import pytest
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
    spreads = torch.tensor([[0.05, 0.2, 0.1], [0.1, 0.02, 0.3]])
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
    spreads = torch.full((2, 3), 0.01)
    full = MaskColors(masks.float(), targets, spreads, 1.0)
    matched = mask_color_smooth(output.float(), laplacian, full)
    weights = masks.float().reshape(2, -1)
    means = (weights @ matched[0].reshape(3, -1).T) / weights.sum(1, keepdim=True)
    assert torch.allclose(means, targets, atol=2e-3), means
    zero = mask_color_smooth(output.float(), laplacian, MaskColors(masks.float(), targets,
                                                                   spreads, 0.0))  # fmt: skip
    assert torch.allclose(zero, closed_form_smooth(output.float(), laplacian), atol=1e-5)


@pytest.mark.parametrize("match", [1.0, 0.5])
def test_narrow_spread_scales_each_regions_deviations(match: float) -> None:
    _, output, masks = scene(5, 6)
    y = output[0].reshape(3, -1).T.float()  # (30, 3)
    m = masks.reshape(2, -1).T.float()  # (30, 2), soft in column 3
    spreads = torch.tensor([[0.01, 0.5, 0.05], [0.5, 0.5, 0.02]])  # 0.5: wider than the output
    got = narrow_spread(y, m, spreads, match)
    expected = y.clone()
    for k in range(2):
        w = m[:, k] / m[:, k].sum()
        mu = (w[:, None] * y).sum(0)
        sigma = ((w[:, None] * (y - mu) ** 2).sum(0)).sqrt()
        factor = torch.minimum(spreads[k] / sigma, torch.ones(3)) ** match  # never widened
        for p in range(30):
            expected[p] += m[p, k] * (factor - 1) * (y[p] - mu)
    assert torch.allclose(got, expected, atol=1e-6)
    inside = m[:, 0] == 1  # fully in region 0, whose style green is wider: green kept as is
    assert torch.allclose(got[inside][:, 1], y[inside][:, 1], atol=1e-6)
    assert float(got[inside][:, 0].std()) < 0.5 * float(y[inside][:, 0].std())  # red narrowed


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
