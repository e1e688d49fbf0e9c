"""Adam's rows recorded in blocks (as on a GPU) give exactly the loss tables and images of
recording every row: plain runs, target_loss stops between flushes, divergence, batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_divergence import Blows

import nst_ops.drivers as drivers
from nst_ops.drivers import Recorder
from nst_ops.optimize import Pair, StyleResult, stylize, stylize_batch
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures
from workflows.images import load_image

SIZE = 48


@pytest.fixture(scope="module")
def setup(artistic: Path, vgg16_state: dict[str, torch.Tensor]):
    content = load_image(str(artistic / "content/tubingen.jpg"), SIZE)
    style = load_image(str(artistic / "style/starry_night.jpg"), SIZE)
    return content, style, VGGFeatures("vgg16", ["relu5_1"], vgg16_state)


def blocks(monkeypatch: pytest.MonkeyPatch, every: int) -> None:
    monkeypatch.setattr(drivers, "rows_per_flush", lambda device: every)


def same(a: StyleResult, b: StyleResult) -> None:
    assert a.losses.total_loss == b.losses.total_loss
    assert a.losses.style_layer_losses == b.losses.style_layer_losses
    assert a.losses.scale == b.losses.scale and a.reached_target == b.reached_target
    assert torch.equal(a.image, b.image)


@pytest.mark.parametrize("changes", [{}, {"scales": (32, SIZE), "ema_decay": 0.5}, "target"])
def test_blocks_equal_row_by_row(setup, monkeypatch, changes) -> None:
    content, style, extractor = setup
    params = StyleParams(image_size=SIZE, iterations=12, optimizer="adam")
    if changes == "target":  # reached at row 7, inside the second block of 5
        losses = stylize(content, style, params, extractor).losses.total_loss
        params = params.replace(target_loss=losses[7])
    else:
        params = params.replace(**changes)
    each = stylize(content, style, params, extractor)
    blocks(monkeypatch, 5)
    block = stylize(content, style, params, extractor)
    same(block, each)
    if changes == "target":
        assert block.reached_target and block.iterations_run == 7


def test_blocks_keep_the_best_image_on_divergence(monkeypatch) -> None:
    blocks(monkeypatch, 4)
    params = StyleParams(iterations=20, optimizer="adam", learning_rate=0.05)
    rec = Recorder(params, None, 20)
    (out,) = drivers.adam(torch.full((1, 3, 4, 4), 0.9), Blows(at=6), [params], [rec])  # type: ignore[arg-type]
    assert rec.diverged_at == 6 and len(rec.rows) == 7
    best = min(float(r[0]) for r in rec.rows[:6])
    assert float((out - 0.25).pow(2).sum()) == pytest.approx(best, rel=1e-6)


def test_blocks_in_a_batch_where_one_pair_stops(setup, monkeypatch) -> None:
    content, style, extractor = setup
    params = StyleParams(image_size=SIZE, iterations=10, optimizer="adam")
    target = stylize(content, style, params, extractor).losses.total_loss[3]
    pairs = [
        Pair(content, style, params.replace(target_loss=target)),
        Pair(content, style, params.replace(style_weight=1e4)),
    ]
    each = stylize_batch(pairs, extractor)
    blocks(monkeypatch, 4)
    block = stylize_batch(pairs, extractor)
    assert block[0].iterations_run == each[0].iterations_run == 3
    for a, b in zip(block, each, strict=True):
        assert a.losses.total_loss == pytest.approx(b.losses.total_loss, rel=1e-5)
        assert float((a.image - b.image).abs().max()) < 1e-4
