"""Guided filter (He et al. 2010) used by photo_postprocess=guided."""

from __future__ import annotations

import torch

from nst_ops.guided import guided_filter


def test_guide_equal_to_source_is_nearly_identity() -> None:
    image = torch.rand(1, 3, 20, 24, dtype=torch.float64)
    out = guided_filter(image, image, radius=2, eps=1e-8)
    assert (out - image).abs().max() < 1e-3


def test_constant_source_stays_constant() -> None:
    guide = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    src = torch.full((1, 3, 16, 16), 0.3, dtype=torch.float64)
    assert torch.allclose(guided_filter(guide, src), src, atol=1e-9)


def test_restores_guide_edges_in_a_noisy_source() -> None:
    guide = torch.zeros(1, 3, 32, 32)
    guide[..., 16:] = 1.0  # a vertical edge
    src = (guide * 0.6 + 0.2) + 0.15 * torch.randn(
        1, 3, 32, 32, generator=torch.Generator().manual_seed(0)
    )
    out = guided_filter(guide, src.clamp(0, 1), radius=3, eps=1e-3)
    noise_before = src[..., 4:12].std()
    noise_after = out[..., 4:12].std()
    assert noise_after < 0.5 * noise_before
    assert (out[..., 20:].mean() - out[..., :12].mean()) > 0.5  # the edge survives
