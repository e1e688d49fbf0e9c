"""The total objective: weights combine as documented; gradient matches finite differences."""

from __future__ import annotations

import torch

from nst_ops.objective import TERM_NAMES, StyleObjective
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures

PARAMS = StyleParams(
    content_layers=("relu2_2",),
    style_layers=("relu1_1", "conv2_1", "relu2_1"),
    style_layer_weights=(0.5, 1.0, 2.0),
    content_weight=2.0,
    style_weight=30.0,
    tv_weight=0.7,
)


def _objective(dtype: torch.dtype = torch.float64) -> tuple[StyleObjective, torch.Tensor]:
    torch.manual_seed(1)
    extractor = VGGFeatures("vgg19", ["relu2_2"], None, "max").to(dtype)
    content = torch.rand(1, 3, 8, 10, dtype=dtype)
    style = torch.rand(1, 3, 12, 6, dtype=dtype)
    return StyleObjective(extractor, PARAMS, content, style), torch.rand(1, 3, 8, 10, dtype=dtype)


def test_total_is_weighted_sum_of_terms() -> None:
    objective, image = _objective()
    t = objective(image)
    v = t.values
    assert list(v) == list(TERM_NAMES) and v["photo"].item() == 0.0  # no Laplacian: no term
    assert torch.allclose(t.total, 2.0 * v["content"] + 30.0 * v["style"] + 0.7 * v["tv"])
    assert torch.allclose(v["style"], t.style_layers @ torch.tensor([0.5, 1.0, 2.0]).double())
    row = t.stacked()
    assert row.shape == (1, len(TERM_NAMES) + 3)
    assert row[0, : len(TERM_NAMES)].tolist() == [v[n].item() for n in TERM_NAMES]


def test_gradient_matches_finite_differences() -> None:
    objective, image = _objective()
    image.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: objective(x).total, (image,), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True
    )


def test_equal_default_layer_weights() -> None:
    assert StyleParams().layer_weights == (0.2,) * 5
