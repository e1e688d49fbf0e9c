"""Pixels on the bounds of [0,1] keep their gradient: the drivers clamp every trial into the
box, and a pixel clamped to exactly 0 or 1 must still be able to move back inside (issue 33:
torch's clamp passes no gradient at the bound itself, which froze a dark sky at 0 for the rest
of Luan's stage 2 and left its matting energy 10⁴× too high)."""

from __future__ import annotations

import pytest
import torch

from nst_ops.drivers import adam, lbfgs
from nst_ops.evaluation import Evaluator
from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder
from nst_ops.vgg import VGGFeatures


def content_only(content: torch.Tensor, **kw: object) -> tuple[StyleObjective, StyleParams]:
    """J = ½ Σ (F − P)² at relu1_2 of a random VGG16 (no style): its minimum is the content."""
    torch.manual_seed(0)
    params = StyleParams(image_size=content.shape[-1], style_weight=0.0,
                         content_layers=("relu1_2",), style_layers=("relu1_1",), **kw)  # type: ignore[arg-type]  # fmt: skip
    extractor = VGGFeatures("vgg16", ["relu1_2"], None, "max")
    return StyleObjective(extractor, params, content, content, None, None), params


def test_gradient_at_pixels_on_the_bounds_is_the_objectives() -> None:
    torch.manual_seed(1)
    content = torch.rand(1, 3, 16, 16) * 0.6 + 0.2
    objective, _ = content_only(content)
    x = content.clone()
    x[..., :4, :4], x[..., -4:, -4:] = 0.0, 1.0  # on the bounds, the content is inside
    _, g = Evaluator()(x, objective)
    leaf = x.clone().requires_grad_(True)
    (brute,) = torch.autograd.grad(objective(leaf).total.sum(), leaf)
    torch.testing.assert_close(g.view_as(x), brute)
    # the objective pulls the pixels at 0 up and those at 1 down
    assert float(g.view_as(x)[..., :4, :4].mean()) < 0 < float(g.view_as(x)[..., -4:, -4:].mean())


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_pixels_that_start_on_a_bound_move_back_inside(optimizer: str) -> None:
    """A patch starting at 0 where the content is mid-grey is restored by either optimizer;
    with a zero gradient on the bound it would stay at exactly 0."""
    torch.manual_seed(2)
    content = torch.rand(1, 3, 24, 24) * 0.4 + 0.3
    objective, params = content_only(content, optimizer=optimizer, iterations=40,
                                     learning_rate=0.02)  # fmt: skip
    start = content.clone()
    start[..., 8:16, 8:16] = 0.0
    rec = Recorder(params, None, params.iterations)
    driver = lbfgs if optimizer == "lbfgs" else adam
    (out,) = driver(start, objective, [params], [rec], Evaluator())
    patch = out[..., 8:16, 8:16]
    assert float((patch == 0).float().mean()) < 0.05
    assert float((patch - content[..., 8:16, 8:16]).abs().mean()) < 0.1
    assert rec.rows[-1][0] < 0.1 * rec.rows[0][0]  # the total fell by 10× or more
