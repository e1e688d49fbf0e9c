"""Captured evaluation (torch.compile; CUDA graphs on a GPU, inductor on this CPU) gives the
eager loss rows and stops, compiles once per image shape and objective structure, and the
`compile` setting picks it. A small trunk (up to relu2_1) keeps compiling quick on 2 cores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nst_ops.compiling import Compiler, Inductor
from nst_ops.evaluation import Evaluator, make_evaluator
from nst_ops.optimize import Pair, StyleResult, stylize, stylize_batch
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures
from workflows.images import load_image

SIZE = 32
LAYERS: dict[str, Any] = {"content_layers": ("relu2_1",), "style_layers": ("relu1_1", "relu2_1")}


@pytest.fixture(scope="module")
def setup(artistic: Path, vgg16_state: dict[str, torch.Tensor]):
    def load(name: str, size: int = SIZE) -> torch.Tensor:
        return load_image(str(artistic / name), size)

    images = {
        "content": load("content/tubingen.jpg"),
        "starry": load("style/starry_night.jpg"),
        "wave": load("style/wave.jpg"),
        "wide": load("content/chicago.jpg"),  # 3:2, not 4:3: another shape
    }
    return images, VGGFeatures("vgg16", ["relu2_1"], vgg16_state)


@pytest.fixture(scope="module")
def captured() -> Evaluator:
    torch._dynamo.reset()  # compiled graphs are per process: start this module cold
    return Evaluator(Inductor(torch.device("cpu")))


def run(setup, evaluator, style: str = "starry", content: str = "content", **changes: Any):
    images, extractor = setup
    params = StyleParams(image_size=SIZE, iterations=8, **LAYERS).replace(**changes)
    return stylize(images[content], images[style], params, extractor, evaluator=evaluator)


def same_rows(a: StyleResult, b: StyleResult, rel: float) -> None:
    assert a.losses.iteration == b.losses.iteration
    for name, column in a.losses.terms.items():
        reference = b.losses.terms[name]  # J_content is 0 at a content init: compare in scale
        scale = max(abs(v) for v in reference)
        assert column == pytest.approx(reference, rel=rel, abs=rel * scale + 1e-12)


def test_captured_rows_equal_eager_and_later_pairs_do_not_recompile(setup, captured) -> None:
    # L-BFGS amplifies the compiled code's other rounding (~1e-7) along the iterations
    rel = {"lbfgs": 1e-3, "adam": 1e-4}
    for optimizer in rel:  # the first pair of this shape pays the compile, each optimizer its own
        first = run(setup, captured, optimizer=optimizer)
        assert first.compile_s > 0
        same_rows(first, run(setup, Evaluator(), optimizer=optimizer), rel=rel[optimizer])
    # another pair of the same shape and structure: other style, weights, iterations
    other: dict[str, Any] = {"style": "wave", "style_weight": 1e4, "iterations": 6}
    for optimizer in rel:
        later = run(setup, captured, optimizer=optimizer, **other)
        assert later.compile_s == 0.0
        expected = run(setup, Evaluator(), optimizer=optimizer, **other)
        same_rows(later, expected, rel=rel[optimizer])
    # another image shape is another graph
    assert run(setup, captured, content="wide", iterations=2, optimizer="adam").compile_s > 0


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_captured_batches_and_stops_match_eager(setup, captured, optimizer: str) -> None:
    images, extractor = setup
    base = StyleParams(image_size=SIZE, iterations=8, optimizer=optimizer, **LAYERS)  # type: ignore[arg-type]
    eager = run(setup, Evaluator(), optimizer=optimizer).losses.total_loss
    k = next(i for i in range(3, len(eager)) if eager[i] < min(eager[:i]))  # a new low
    target = (eager[k] + min(eager[:k])) / 2  # first reached at row k, with a margin
    pairs = [
        Pair(images["content"], images["starry"], base.replace(target_loss=target)),
        Pair(images["content"], images["wave"], base.replace(style_weight=1e308)),  # inf at 0
        Pair(images["content"], images["wave"], base.replace(style_weight=1e4)),  # runs on
    ]
    batched = stylize_batch(pairs, extractor, captured)
    alone = [stylize(p.content, p.style, p.params, extractor) for p in pairs]
    assert batched[0].reached_target and batched[0].iterations_run == k == alone[0].iterations_run
    assert batched[1].diverged_at == alone[1].diverged_at == 0
    assert batched[2].iterations_run == alone[2].iterations_run == 8
    for b in (0, 2):  # batches of 3, then 2 (compiled for each size), then 1
        same_rows(batched[b], alone[b], rel=1e-4 if optimizer == "adam" else 1e-3)


def test_the_compile_setting_picks_the_evaluator() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def compiler(setting: str, device: torch.device) -> type[Compiler]:
        return type(make_evaluator(setting, device).compiler)

    assert compiler("auto", cpu) is Compiler  # compiling does not pay on a CPU
    assert compiler("off", cuda) is Compiler
    assert compiler("on", cpu) is Inductor and compiler("auto", cuda) is Inductor
    with pytest.raises(ValueError, match="compile: must be one of auto, on, off"):
        make_evaluator("yes", cpu)
