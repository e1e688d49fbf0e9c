"""pairs-per-gpu: B pairs optimised as one batch give each pair the loss table and image of
running it alone (real VGG16 features, tiny images, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nst_ops.optimize import Pair, StyleResult, batch_groups, stylize, stylize_batch
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures
from workflows.images import load_image

SIZE = 48


@pytest.fixture(scope="module")
def images(artistic: Path) -> dict[str, torch.Tensor]:
    def load(name: str, size: int = SIZE) -> torch.Tensor:
        return load_image(str(artistic / name), size)

    return {
        "tubingen": load("content/tubingen.jpg"),
        "starry": load("style/starry_night.jpg"),
        "scream": load("style/the_scream.jpg", 40),  # another style size: fine in one batch
    }


@pytest.fixture(scope="module")
def extractor(vgg16_state: dict[str, torch.Tensor]) -> VGGFeatures:
    return VGGFeatures("vgg16", ["relu5_1"], vgg16_state)


def sweep(images: dict[str, torch.Tensor], **common: Any) -> list[Pair]:
    """Four pairs that differ in everything a batch may differ in."""
    base = StyleParams(image_size=SIZE, iterations=12, **common)
    variants: list[tuple[str, dict[str, Any]]] = [
        ("starry", {}),
        ("scream", {"style_weight": 1e4, "learning_rate": 0.05, "init": "random", "seed": 3}),
        ("starry", {"content_weight": 5.0, "tv_weight": 1.0, "ema_decay": 0.5}),
        ("scream", {"style_layer_weights": (0.1, 0.2, 0.3, 0.2, 0.2), "init": "style"}),
    ]
    pairs = []
    for style, changes in variants:
        if base.optimizer == "lbfgs":
            changes.pop("ema_decay", None)
        pairs.append(Pair(images["tubingen"], images[style], base.replace(**changes)))
    return pairs


def assert_same(batched: StyleResult, alone: StyleResult, rel: float, params: StyleParams) -> None:
    """Equal rows up to rounding: the total within `rel`, and each weighted term within `rel`
    of the total (rounding moves the trajectory at the scale of the objective the optimizer
    sees; a small term, such as the content's next to the style's, may then differ by more
    than `rel` of itself)."""
    a, b = batched.losses, alone.losses
    assert a.iteration == b.iteration and a.stage == b.stage and a.scale == b.scale
    assert a.total_loss == pytest.approx(b.total_loss, rel=rel, abs=1e-6)
    for name, column in a.terms.items():
        weight = 1.0 if name == "total" else getattr(params, f"{name}_weight")
        for x, y, total in zip(column, b.terms[name], b.total_loss, strict=True):
            assert weight * abs(x - y) <= rel * abs(total) + 1e-6, name
    assert batched.reached_target == alone.reached_target
    # both optimizers turn rounding-level gradient differences into small pixel steps; a mean
    # of 5e-4 is an eighth of one 8-bit level of the written PNG
    assert float((batched.image - alone.image).abs().mean()) < 5e-4


@pytest.mark.parametrize(
    ("optimizer", "scales"), [("adam", None), ("lbfgs", None), ("adam", (32, 48))]
)
def test_batch_equals_pairs_run_alone(images, extractor, optimizer, scales) -> None:
    pairs = sweep(images, optimizer=optimizer, scales=scales)
    assert batch_groups(pairs) == [[0, 1, 2, 3]]
    batched = stylize_batch(pairs, extractor)
    for pair, result in zip(pairs, batched, strict=True):
        alone = stylize(pair.content, pair.style, pair.params, extractor)
        assert_same(result, alone, 1e-3, pair.params)
        log = result.losses  # the loss falls within the final scale
        final = [t for t, s in zip(log.total_loss, log.scale, strict=True) if s == SIZE]
        assert final[-1] < final[0]


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_pair_that_stops_leaves_the_batch(images, extractor, optimizer) -> None:
    pairs = sweep(images, optimizer=optimizer)[:2]
    alone = [stylize(p.content, p.style, p.params, extractor) for p in pairs]
    # the first pair stops at the loss of its 4th row; the second runs all 12 iterations
    target = alone[0].losses.total_loss[4] * 1.0001
    pairs[0] = Pair(pairs[0].content, pairs[0].style, pairs[0].params.replace(target_loss=target))
    first = stylize(pairs[0].content, pairs[0].style, pairs[0].params, extractor)
    batched = stylize_batch(pairs, extractor)
    assert first.reached_target and len(batched[0].losses) == len(first.losses) <= 5
    assert_same(batched[0], first, 1e-3, pairs[0].params)
    assert_same(batched[1], alone[1], 1e-3, pairs[1].params)
    assert len(batched[1].losses) == 13  # 12 evaluations and the final forward-only row


def test_incompatible_pairs_are_grouped_apart(images, extractor) -> None:
    pairs = sweep(images, optimizer="adam")
    other_size = load_like = images["tubingen"][:, :, : SIZE // 2 + 8]
    pairs[1] = Pair(load_like, pairs[1].style, pairs[1].params)
    pairs[2] = Pair(pairs[2].content, pairs[2].style, pairs[2].params.replace(iterations=5))
    mask = torch.ones(3, 8, 8)
    pairs.append(Pair(pairs[0].content, pairs[0].style, pairs[0].params, mask, mask))
    assert batch_groups(pairs) == [[0, 3], [1], [2], [4]]
    assert other_size.shape[-1] != pairs[0].content.shape[-1]
    with pytest.raises(ValueError, match="batch"):
        stylize_batch(pairs[:2], extractor)
