"""The total objective: weights combine as documented; gradient matches finite differences."""

from __future__ import annotations

from typing import Any

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


# A value other than the default for every field outside OBJECTIVE_FIELDS (with what it needs).
ADAM = {"optimizer": "adam"}
NOT_OBJECTIVE: dict[str, dict[str, Any]] = {
    "optimizer": ADAM, "learning_rate": {"learning_rate": 0.5, **ADAM}, "iterations": {"iterations": 7},
    "init": {"init": "random"}, "seed": {"seed": 3}, "target_loss": {"target_loss": 1.0},
    "photo_two_stage": {"photo_two_stage": False}, "photo_postprocess": {"photo_postprocess": "none"},
    "mask_color_match": {"mask_color_match": 0.5}, "ema_decay": {"ema_decay": 0.9, **ADAM},
    "scales": {"scales": (16, 32)},
}  # fmt: skip


def test_fields_outside_objective_fields_leave_the_final_objective_unchanged() -> None:
    """Rows that differ only outside OBJECTIVE_FIELDS minimise the same function (what time
    to target compares): the final segment's objective at an image is the same, term by term;
    every field is classified."""
    from nst_ops.params import OBJECTIVE_FIELDS, param_fields
    from nst_ops.segments import plan, segment_objective

    names = {f.name for f in param_fields()}
    assert set(NOT_OBJECTIVE) == names - set(OBJECTIVE_FIELDS) and set(OBJECTIVE_FIELDS) < names
    torch.manual_seed(2)
    extractor = VGGFeatures("vgg19", ["relu2_2"], None, "max")
    content, style, image = (
        torch.rand(1, 3, 12, 16),
        torch.rand(1, 3, 16, 10),
        torch.rand(1, 3, 12, 16),
    )
    base = StyleParams(image_size=32, photo_weight=0.01, content_layers=("relu2_2",),
                       style_layers=("relu1_1", "relu2_1"))  # fmt: skip

    def final(params: StyleParams) -> torch.Tensor:
        seg = plan(params)[-1]
        objective, _ = segment_objective(extractor, seg, params, content, style, None, {})
        return objective(image).stacked()

    expected = final(base)
    for name, changes in NOT_OBJECTIVE.items():
        assert torch.equal(final(base.replace(**changes)), expected), name
    for changes in ({"style_weight": 10.0}, {"content_layers": ("relu1_1",)}):
        assert not torch.equal(final(base.replace(**changes)), expected)
