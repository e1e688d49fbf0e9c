"""A photorealistic pair's default style and photo terms are k = PHOTO_SCALE times Luan et al.'s
(2017) at any size, and with α = 1.25·k/(H·W) the content term too; its default α keeps the
content term's ratio to his the same at every size: brute-force transcriptions of his formulas
(neuralstyle_seg.lua, deepmatting_seg.lua; issue 14) against nst_ops' objective."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from nst_ops.matting import PHOTO_SCALE, content_laplacian, matting_energy
from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures

LUAN_LAMBDA = 1e4  # his photo weight


def luan_terms(
    extractor: VGGFeatures, params: StyleParams, x: Tensor, content: Tensor, style: Tensor
) -> dict[str, Tensor]:
    """Luan's content 5·mean((F−P)²), style 100·Σ_l mean((G/(N·M) − A/(N·M_s))²) (Grams of the
    (N, M) feature matrices, one style layer weight each, no masks) and photo λ·Φ."""
    layers = [*params.content_layers, *params.style_layers]
    f, p, s = (extractor(t, layers) for t in (x, content, style))
    content_term = 5.0 * ((f["relu4_2"] - p["relu4_2"]) ** 2).mean()
    style_term = torch.zeros(())
    for name in params.style_layers:
        a, b = f[name][0].flatten(1), s[name][0].flatten(1)  # (N, M), (N, M_s)
        g, t = a @ a.T / a.numel(), b @ b.T / b.numel()
        style_term = style_term + 100.0 * ((g - t) ** 2).mean()
    photo = LUAN_LAMBDA * matting_energy(x, content_laplacian(content))[0]
    return {"content": content_term, "style": style_term, "photo": photo}


@pytest.mark.parametrize(("height", "width"), [(16, 24), (32, 48)])
def test_photo_defaults_are_k_times_luans_objective(height: int, width: int) -> None:
    torch.manual_seed(0)
    alpha = 1.25 * PHOTO_SCALE / (height * width)  # Luan's content balance (not the default)
    params = StyleParams(image_size=width, photo_weight=LUAN_LAMBDA, content_weight=alpha)
    extractor = VGGFeatures("vgg16", ["relu5_1"], None, "max")
    content, x = torch.rand(1, 3, height, width), torch.rand(1, 3, height, width)
    style = torch.rand(1, 3, 24, 24)
    laplacian = content_laplacian(content)
    objective = StyleObjective(extractor, params, content, style, None, laplacian)
    ours = objective(x).values
    luan = luan_terms(extractor, params, x, content, style)
    k = PHOTO_SCALE
    assert params.content_weight is not None
    assert params.content_weight * ours["content"].item() == pytest.approx(
        k * luan["content"].item(), rel=1e-4
    )
    assert params.style_weight * ours["style"].item() == pytest.approx(
        k * luan["style"].item(), rel=1e-4
    )
    assert params.photo_weight * ours["photo"].item() == pytest.approx(
        k * luan["photo"].item(), rel=1e-4
    )
    assert k == pytest.approx(1000 / (400 * sum(1 / n**2 for n in (64, 128, 256, 512, 512))), 1e-4)


def test_default_alpha_keeps_the_content_balance_at_every_size() -> None:
    """α = (256/image_size)² for photo pairs (1 for artistic ones): α·J_content over Luan's
    5·mean((F−P)²) is N₄M₄·α/10 = 0.8·256²·(H/W) — the same at 24×16 and 48×32 — where α = 1
    would double it with each doubling of the side."""
    assert StyleParams().content_weight == 1.0  # artistic: Gatys' α
    assert StyleParams(image_size=256, photo_weight=LUAN_LAMBDA).content_weight == 1.0
    assert StyleParams(image_size=512, photo_weight=LUAN_LAMBDA).content_weight == 0.25
    explicit = StyleParams(image_size=512, photo_weight=LUAN_LAMBDA, content_weight=1.0)
    assert explicit.content_weight == 1.0  # a given α is kept
    extractor = VGGFeatures("vgg16", ["relu5_1"], None, "max")
    ratios = []
    for height, width in ((16, 24), (32, 48)):
        torch.manual_seed(1)
        params = StyleParams(image_size=width, photo_weight=LUAN_LAMBDA)
        content, x = torch.rand(1, 3, height, width), torch.rand(1, 3, height, width)
        style = torch.rand(1, 3, 24, 24)
        objective = StyleObjective(extractor, params, content, style, None, None)
        assert params.content_weight is not None
        ours = params.content_weight * objective(x).values["content"].item()
        luan = luan_terms(extractor, params, x, content, style)["content"].item()
        ratios.append(ours / luan)
    assert ratios[0] == pytest.approx(ratios[1], rel=1e-5)
    assert ratios[0] == pytest.approx(0.8 * 256**2 * 16 / 24, rel=1e-5)
