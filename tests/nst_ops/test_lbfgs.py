"""L-BFGS on the device: the batched compact-form direction against the inverse-Hessian
recursion written out densely, the history's bookkeeping, and the whole driver against the
former host-side L-BFGS (tests/reference_lbfgs.py): same loss rows, same stops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from reference_lbfgs import lbfgs_host

from nst_ops import compiling
from nst_ops.compiling import Compiler
from nst_ops.drivers import lbfgs
from nst_ops.evaluation import Evaluator
from nst_ops.lbfgs import FIRST_STEP, LBFGSHistory, armijo
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder
from nst_ops.segments import Segment, segment_objective
from nst_ops.state import select_images
from nst_ops.vgg import VGGFeatures
from workflows.images import load_image

ALL = torch.tensor([True, True])


def update(history: LBFGSHistory, s: torch.Tensor, y: torch.Tensor, accept: torch.Tensor) -> None:
    """Store (s, y) for the images where `accept` and sᵀy > 0, as the driver's three steps do."""
    history.write(*history.new_rows(s, y, *history.record(s, y, accept)))


def dense_direction(
    pairs: list[tuple[torch.Tensor, torch.Tensor]], g: torch.Tensor
) -> torch.Tensor:
    """−H g with H_0 = γI (γ = sᵀy/yᵀy of the newest pair) and, oldest pair first,
    H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ (Nocedal & Wright eq. 7.19)."""
    s_new, y_new = pairs[-1]
    n = g.numel()
    h = torch.eye(n, dtype=torch.float64) * float(s_new @ y_new / (y_new @ y_new))
    for s, y in pairs:
        rho = 1.0 / float(s @ y)
        left = torch.eye(n, dtype=torch.float64) - rho * torch.outer(s, y)
        h = left @ h @ left.T + rho * torch.outer(s, s)
    return -(h @ g)


@pytest.mark.parametrize("m", [3, 8])
def test_batched_direction_equals_the_dense_bfgs_recursion(m: int) -> None:
    torch.manual_seed(0)
    n = 12
    hessians = []
    for _ in range(2):  # two images, each with its own curvature
        a = torch.randn(n, n, dtype=torch.float64)
        hessians.append(a @ a.T + n * torch.eye(n, dtype=torch.float64))  # SPD: pairs kept
    history = LBFGSHistory.empty(2, n, m, torch.zeros(1, dtype=torch.float64))
    pairs: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[], []]
    for _ in range(6):  # with m = 3 the ring wraps: only the newest 3 pairs count
        s = torch.randn(2, n, dtype=torch.float64)
        y = torch.stack([h @ s[b] for b, h in enumerate(hessians)])
        update(history, s, y, ALL)
        for b in range(2):
            pairs[b].append((s[b], y[b]))
        g = torch.randn(2, n, dtype=torch.float64)
        d, step = history.direction(g, ALL)
        assert step.tolist() == [1.0, 1.0]
        for b in range(2):
            expected = dense_direction(pairs[b][-m:], g[b])
            assert torch.allclose(d[b], expected, rtol=1e-9, atol=1e-9)
            assert float(g[b] @ d[b]) < 0
    assert history.count.tolist() == [min(6, m)] * 2


def test_pairs_without_curvature_or_not_accepted_are_skipped() -> None:
    history = LBFGSHistory.empty(2, 3, 4, torch.zeros(1, dtype=torch.float64))
    g = torch.tensor([[0.5, -2.0, 1.0], [1.0, 0.0, 0.25]], dtype=torch.float64)
    d, step = history.direction(g, ALL)
    assert torch.equal(d, -g)  # no pairs: steepest descent, bounded first step
    assert step.tolist() == pytest.approx([FIRST_STEP / 2.0, FIRST_STEP / 1.0])
    s = torch.tensor([[1.0, 0.0, 0.0]] * 2, dtype=torch.float64)
    update(history, s, -s, ALL)  # sᵀy < 0 would make H indefinite
    assert history.count.tolist() == [0, 0]
    update(history, s, 2 * s, torch.tensor([True, False]))  # image 1's step was rejected
    assert history.count.tolist() == [1, 0]
    assert history.buffer[1].abs().sum() == 0 and history.sy[1].abs().sum() == 0


def test_products_once_written_equal_the_written_buffers() -> None:
    """accept_trial's fused products (nst_ops.compiling.fuse_products), computed before the
    write, are those of the buffer after it: a new pair stored (image 0, ring full so a slot
    is reused), one not (image 1)."""
    torch.manual_seed(1)
    n, m = 10, 3
    history = LBFGSHistory.empty(2, n, m, torch.zeros(1, dtype=torch.float64))
    for _ in range(m):
        s = torch.randn(2, n, dtype=torch.float64)
        update(history, s, 2 * s, ALL)
    s, y = torch.randn(2, n, dtype=torch.float64), torch.randn(2, n, dtype=torch.float64)
    y[0] = 3 * s[0]  # curvature: stored; image 1 is not accepted
    rows = history.new_rows(s, y, *history.record(s, y, torch.tensor([True, False])))
    g = torch.randn(2, n, dtype=torch.float64)
    before = history.products(g)
    ahead = history.once_written(before, g, *rows)
    history.write(*rows)
    after = history.products(g)
    torch.testing.assert_close(ahead, after, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(before[0], after[0]) and torch.equal(before[1], after[1])


def test_compiled_products_equal_the_batched_product() -> None:
    """Compiled, the products are a multiply-reduce (nst_ops.compiling.row_products), not bmm."""
    torch.manual_seed(2)
    history = LBFGSHistory.empty(2, 500, 4, torch.zeros(1))
    history.buffer.normal_()
    v = torch.randn(2, 500)
    compiled = torch.compile(lambda h, v: h.products(v), dynamic=False)(history, v)
    torch.testing.assert_close(compiled, history.products(v), rtol=1e-5, atol=1e-4)
    assert compiled.dtype == torch.float64 and compiled.shape == (2, 8)


def test_select_keeps_the_chosen_images() -> None:
    history = LBFGSHistory.empty(3, 2, 2, torch.zeros(1))
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    update(history, s, 2 * s, torch.tensor([True, False, True]))
    kept = select_images(history, torch.tensor([2, 1]))
    assert kept.count.tolist() == [1, 0] and torch.equal(kept.buffer[0, 0], s[2])
    assert kept.m == 2 and kept.sy.shape == (2, 2, 2)


def test_armijo() -> None:
    f = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    f_new = torch.tensor([0.9, 1.0, float("nan"), 0.9], dtype=torch.float64)
    slope = torch.tensor([-1.0, -1.0, -1.0, 0.0], dtype=torch.float64)
    assert armijo(f_new, f, slope).tolist() == [True, False, False, False]


SIZE = 64


@pytest.fixture(scope="module")
def setup(artistic: Path, vgg16_state: dict[str, torch.Tensor]):
    content = load_image(str(artistic / "content/tubingen.jpg"), SIZE)[None]
    styles = [load_image(str(artistic / f"style/{s}.jpg"), SIZE)[None]
              for s in ("starry_night", "wave")]  # fmt: skip
    return content, styles, VGGFeatures("vgg16", ["relu5_1"], vgg16_state)


def run(setup, driver, params_list: list[StyleParams]):
    """One L-BFGS segment of a batch (as stylize_batch runs it) → (images, recorders)."""
    from nst_ops.objective import StyleObjective

    content, styles, extractor = setup
    objectives, recs = [], []
    for params, style in zip(params_list, styles, strict=False):
        seg = Segment(1, SIZE, params)
        objective, _ = segment_objective(extractor, seg, params, content, style, None, None)
        objectives.append(objective)
        recs.append(Recorder(params, None, params.iterations))
    x = content.repeat(len(params_list), 1, 1, 1)
    stacked = StyleObjective.stack(objectives)
    if driver is lbfgs:
        return lbfgs(x, stacked, params_list, recs, Evaluator()), recs
    return lbfgs_host(x, stacked, params_list, recs), recs


def totals(rec: Recorder) -> list[float]:
    return [float(row[0]) for row in rec.rows]


@pytest.mark.parametrize("style_weight", [1e3, 1e4])
def test_device_lbfgs_gives_the_host_lbfgs_rows(setup, style_weight: float) -> None:
    """Same loss rows to 1e-5 relative over 30 iterations at 64 px, fp32 (in fact the same
    arithmetic: L-BFGS would amplify any 1e-7 difference to 1e-2 by row 30)."""
    params = StyleParams(image_size=SIZE, iterations=30, style_weight=style_weight)
    (device,), (device_rec,) = run(setup, lbfgs, [params])
    (host,), (host_rec,) = run(setup, lbfgs_host, [params])
    assert len(device_rec.rows) == len(host_rec.rows) == 30
    assert totals(device_rec) == pytest.approx(totals(host_rec), rel=1e-5)
    rows_a, rows_b = torch.stack(device_rec.rows), torch.stack(host_rec.rows)
    assert torch.allclose(rows_a, rows_b, rtol=1e-5, atol=0)
    assert float((device - host).abs().max()) < 1e-4


def test_a_batch_runs_each_image_as_alone(setup) -> None:
    """In a batch the convolutions round differently; the rows still agree closely."""
    params = StyleParams(image_size=SIZE, iterations=12)
    batch = [params, params.replace(style_weight=1e4)]
    _, together = run(setup, lbfgs, batch)
    for b, params_b in enumerate(batch):
        content, styles, extractor = setup
        _, (alone,) = run((content, [styles[b]], extractor), lbfgs_host, [params_b])
        assert totals(together[b]) == pytest.approx(totals(alone), rel=1e-3)


def test_target_and_divergence_stop_at_the_same_row(setup) -> None:
    params = StyleParams(image_size=SIZE, iterations=20)
    _, (reference,) = run(setup, lbfgs_host, [params])
    losses = totals(reference)
    target = (losses[9] + min(losses[:9])) / 2  # reached first at row 9 (or earlier, tied)
    stop_at = next(i for i, v in enumerate(losses) if v <= target)
    with_target = params.replace(target_loss=target)
    (dev_image,), (dev,) = run(setup, lbfgs, [with_target])
    (host_image,), (host,) = run(setup, lbfgs_host, [with_target])
    assert dev.reached and host.reached and len(dev.rows) == len(host.rows) == stop_at + 1
    assert float((dev_image - host_image).abs().max()) < 1e-4
    # β·J_style overflows to inf from the first row: both stop there with the start image
    blown = params.replace(style_weight=1e308)
    (dev_image,), (dev,) = run(setup, lbfgs, [blown])
    (host_image,), (host,) = run(setup, lbfgs_host, [blown])
    assert dev.diverged_at == host.diverged_at == 0 and len(dev.rows) == len(host.rows) == 1
    assert torch.equal(dev_image, host_image)


def one_objective(setup, params: StyleParams):
    """The stacked objective of one pair (content × the first style), as `run` builds it."""
    from nst_ops.objective import StyleObjective

    content, styles, extractor = setup
    seg = Segment(1, SIZE, params)
    objective, _ = segment_objective(extractor, seg, params, content, styles[0], None, None)
    return StyleObjective.stack([objective])


class FlagSpy(Compiler):
    """Records the process's CUDA TF32 matmul setting at each call: objective, L-BFGS steps."""

    def __init__(self) -> None:
        self.seen: dict[str, set[bool]] = {"objective": set(), "steps": set()}

    def _flag(self, kind: str) -> None:
        self.seen[kind].add(bool(torch.backends.cuda.matmul.allow_tf32))

    def objective(self, fn):
        inner = super().objective(fn)

        def flagged(x, objective):
            self._flag("objective")
            return inner(x, objective)

        return flagged

    def step(self, fn):
        if fn.__module__ != "nst_ops.lbfgs":  # the row tracker's step has no products
            return fn

        def flagged(*args):
            self._flag("steps")
            return fn(*args)

        return flagged


def test_tf32_is_for_the_objective_not_the_curvature_products(setup) -> None:
    """--precision tf32 sets TF32 process-wide; L-BFGS's products with its pairs run in IEEE
    fp32 all the same (nst_ops.lbfgs.ieee_products), and the setting is restored after."""
    content = setup[0]
    params = StyleParams(image_size=SIZE, iterations=5)
    stacked = one_objective(setup, params)
    spy = FlagSpy()
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        rec = Recorder(params, None, params.iterations)
        lbfgs(content.clone(), stacked, [params], [rec], Evaluator(spy))
        assert torch.backends.cuda.matmul.allow_tf32  # restored
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    assert spy.seen == {"objective": {True}, "steps": {False}}
    assert len(rec.rows) == 5


def test_fused_products_give_the_same_descent(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """accept_trial's fused products (what a compiled step computes) against the eager
    default: only the rounding of the products differs, which L-BFGS amplifies slowly."""
    content = setup[0]
    params = StyleParams(image_size=SIZE, iterations=30)
    stacked = one_objective(setup, params)
    recs = [Recorder(params, None, params.iterations) for _ in range(2)]
    lbfgs(content.clone(), stacked, [params], [recs[0]], Evaluator())
    monkeypatch.setattr(compiling, "fuse_products", lambda: True)
    lbfgs(content.clone(), stacked, [params], [recs[1]], Evaluator())
    plain, ahead = totals(recs[0]), totals(recs[1])
    assert ahead[:10] == pytest.approx(plain[:10], rel=1e-5)
    assert ahead[-1] == pytest.approx(plain[-1], rel=2e-2)
