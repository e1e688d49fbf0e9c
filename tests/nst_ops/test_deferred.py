"""Adam's rows recorded in blocks (as on a GPU) give exactly the loss tables and images of
recording every row: plain runs, target_loss stops between flushes, divergence, batches; the
GPU clock (CUDA events) checked with fake events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from test_divergence import Blows

import nst_ops.drivers as drivers
from nst_ops import deferred
from nst_ops.compiling import Compiler
from nst_ops.evaluation import Evaluator
from nst_ops.optimize import Pair, StyleResult, stylize, stylize_batch
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder
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
    (out,) = drivers.adam(torch.full((1, 3, 4, 4), 0.9), Blows(at=6), [params], [rec], Evaluator())  # type: ignore[arg-type]
    assert rec.diverged_at == 6 and len(rec.rows) == 7
    best = min(float(r[0]) for r in rec.rows[:6])
    assert float((out - 0.25).pow(2).sum()) == pytest.approx(best, rel=1e-6)


def test_blocks_in_a_batch_where_one_pair_stops(setup, monkeypatch) -> None:
    content, style, extractor = setup
    params = StyleParams(image_size=SIZE, iterations=10, optimizer="adam")
    losses = stylize(content, style, params, extractor).losses.total_loss
    # halfway between rows 2 and 3: a batch's float rounding (~1e-6) cannot move the stop row
    target = (losses[3] + min(losses[:3])) / 2
    assert min(losses[:3]) > target > losses[3]
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


class _FakeEvent:
    """torch.cuda.Event's timing contract on the CPU: record() stamps the time,
    a.elapsed_time(b) is the milliseconds from a to b."""

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at: float | None = None

    def record(self, stream: object = None) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, end: _FakeEvent) -> float:
        assert self.at is not None and end.at is not None
        return (end.at - self.at) * 1000.0


def fake_cuda_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DeferredRows clock takes its GPU branch, with fake events (no CUDA needed)."""
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: None)
    cuda_clock = deferred._Clock

    class Clock(cuda_clock):  # type: ignore[misc,valid-type]
        def __init__(self, device: torch.device) -> None:
            super().__init__(torch.device("cuda"))

    monkeypatch.setattr(deferred, "_Clock", Clock)


def test_cuda_clock_turns_events_into_perf_counter_seconds(monkeypatch) -> None:
    """The GPU branch of the clock (CUDA events read at the flush) with fake events: marks
    come back as perf_counter seconds, in order, equal to the wall time of each mark."""
    fake_cuda_clock(monkeypatch)
    clock = deferred._Clock(torch.device("cpu"))
    assert clock.cuda
    marks, wall = [], []
    for _ in range(3):
        time.sleep(0.02)
        marks.append(clock.mark())
        wall.append(time.perf_counter())
    seconds = clock.seconds(marks)
    assert all(isinstance(m, _FakeEvent) for m in marks)
    assert seconds == sorted(seconds) and seconds[2] - seconds[0] >= 0.04
    assert seconds == pytest.approx(wall, abs=5e-3)


def test_blocks_timed_by_events_give_the_same_table(setup, monkeypatch) -> None:
    """Adam in blocks with the event clock (the GPU path): same losses as row by row, and
    elapsed_s increasing from > 0 like the CPU clock's."""
    content, style, extractor = setup
    params = StyleParams(image_size=SIZE, iterations=12, optimizer="adam")
    each = stylize(content, style, params, extractor)
    fake_cuda_clock(monkeypatch)
    blocks(monkeypatch, 5)
    block = stylize(content, style, params, extractor)
    same(block, each)
    times = block.losses.elapsed_s
    assert times[0] > 0 and times == sorted(times)
    assert times[-1] == pytest.approx(each.losses.elapsed_s[-1], rel=1.0)


class Compiling(Compiler):
    """Eager evaluation that "compiles" for PAUSE seconds at its objective calls 1 and 6: it
    moves the clock (time.perf_counter, patched) forward and counts them in compile_s, as
    nst_ops.compiling.Inductor counts a call that compiled a graph."""

    PAUSE = 1000.0

    def __init__(self, clock: list[float]) -> None:
        self.calls, self.compile_s, self.clock = 0, 0.0, clock

    def objective(self, fn):
        inner = super().objective(fn)

        def call(x, objective):
            self.calls += 1
            if self.calls in (1, 6):
                self.clock[0] += self.PAUSE
                self.compile_s += self.PAUSE
            return inner(x, objective)

        return call


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_elapsed_leaves_out_compiling(setup, monkeypatch, optimizer) -> None:
    """The loss table's elapsed_s leaves out the seconds spent compiling and compile_s holds
    them (so far in the pair's run), also with rows recorded in blocks: rows up to 4 have
    compiled once, rows from 5 on twice, and no row's elapsed_s includes a pause."""
    content, style, extractor = setup
    offset, real = [0.0], time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real() + offset[0])
    params = StyleParams(image_size=32, iterations=10, optimizer=optimizer)
    blocks(monkeypatch, 4)
    start = time.perf_counter()
    log = stylize(content, style, params, extractor, evaluator=Evaluator(Compiling(offset))).losses
    wall = time.perf_counter() - start
    pause = Compiling.PAUSE
    assert log.compile_s == pytest.approx([pause] * 5 + [2 * pause] * (len(log) - 5))
    assert log.elapsed_s == sorted(log.elapsed_s) and 0 < log.elapsed_s[-1] < 100
    assert wall > 2 * pause and log.elapsed_s[-1] + log.compile_s[-1] <= wall


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_snapshots_are_the_best_image_so_far(setup, monkeypatch, optimizer) -> None:
    """With snapshot_every 3, rows 3, 6 and 9 have a snapshot: the image of the lowest total
    among the rows up to there (its objective value is that minimum), also in blocks of 4 and
    for each pair of a batch."""
    from nst_ops.objective import StyleObjective

    content, style, extractor = setup
    params = StyleParams(image_size=SIZE, iterations=10, optimizer=optimizer)
    blocks(monkeypatch, 4)
    pairs = [Pair(content, style, params, snapshot_every=3),
             Pair(content, style, params.replace(style_weight=10.0), snapshot_every=3)]  # fmt: skip
    results = stylize_batch(pairs, extractor)
    for pair, out in zip(pairs, results, strict=True):
        assert sorted(out.snapshots) == [3, 6, 9]
        objective = StyleObjective(extractor, pair.params, content[None], style[None])
        for i, image in out.snapshots.items():
            assert image.shape == out.image.shape
            total = float(Evaluator.forward(image[None], objective)[0, 0])
            assert total == pytest.approx(min(out.losses.total_loss[: i + 1]), rel=1e-4)
    assert stylize(content, style, params, extractor).snapshots == {}
