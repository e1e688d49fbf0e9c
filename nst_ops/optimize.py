"""The optimisation loop: pixels of the generated image optimised directly (Gatys et al. 2015).

One **iteration** is one objective-and-gradient evaluation (one forward + backward) for both
optimizers, so loss tables compare optimizers at equal compute. Row i of the loss log is the loss
of the image after i updates: rows 0..N for N iterations (row N is a forward-only evaluation of
the returned image), fewer when `target_loss` stops early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.color import combine_luminance, luminance, match_luminance
from nst_ops.lbfgs import LBFGSState, armijo_ok
from nst_ops.objective import LossTerms, StyleObjective
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures


@dataclass(frozen=True)
class Progress:
    """Reported to the callback: iteration i of `iterations`, the loss of the image after i
    updates, seconds since the loop started."""

    iteration: int
    iterations: int
    total_loss: float
    elapsed_s: float


ProgressCallback = Callable[[Progress], None]


@dataclass
class LossLog:
    """Columns of the loss table (one entry per row). Unweighted terms; total is weighted."""

    iteration: list[int] = field(default_factory=list)
    total_loss: list[float] = field(default_factory=list)
    content_loss: list[float] = field(default_factory=list)
    style_loss: list[float] = field(default_factory=list)
    tv_loss: list[float] = field(default_factory=list)
    style_layer_losses: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.iteration)


@dataclass(frozen=True)
class StyleResult:
    """image: (3, H, W) float32 on the CPU, RGB in [0,1]."""

    image: Tensor
    losses: LossLog
    iterations_run: int
    reached_target: bool


def initial_image(params: StyleParams, content: Tensor, style: Tensor) -> Tensor:
    """The starting point (1, C, H, W) in [0,1] for init = content | random | style."""
    if params.init == "content":
        return content.clone(memory_format=torch.contiguous_format)
    if params.init == "style":
        size = content.shape[-2:]
        resized = F.interpolate(style, size=size, mode="bilinear", antialias=True)
        return resized.clamp(0, 1).contiguous()
    generator = torch.Generator(device="cpu").manual_seed(params.seed)
    noise = torch.rand(content.shape, generator=generator, dtype=content.dtype)
    return noise.to(content.device)


def stylize(
    content: Tensor,
    style: Tensor,
    params: StyleParams,
    extractor: VGGFeatures,
    callback: ProgressCallback | None = None,
) -> StyleResult:
    """Stylize `content` (3, H, W) with `style` (3, H_s, W_s), both RGB in [0,1] and already at
    working size; runs on the extractor's device. Returns the image and its loss log."""
    device = extractor.mean.device
    content = content.to(device, torch.float32).unsqueeze(0)
    style = style.to(device, torch.float32).unsqueeze(0)
    if params.preserve_color == "luminance":
        # Gatys et al. 2016: transfer on luminance only, keep the content's chrominance.
        content_in = luminance(content)
        style_in = match_luminance(luminance(style), content_in)
    else:
        content_in, style_in = content, style
    channels = content_in.shape[1]
    objective = StyleObjective(
        extractor, params, content_in.expand(-1, 3, -1, -1), style_in.expand(-1, 3, -1, -1)
    )
    x = initial_image(params, content_in, style_in[:, :channels])
    image, log, reached = _optimize(x, objective, params, callback)
    if channels == 1:
        image = combine_luminance(image, content)
    else:
        image = image.expand(-1, 3, -1, -1)
    return StyleResult(image[0].cpu(), log, log.iteration[-1], reached)


class _Recorder:
    """Collects one loss row per evaluation; tells the drivers when to stop."""

    def __init__(self, params: StyleParams, callback: ProgressCallback | None) -> None:
        self.params = params
        self.callback = callback
        self.rows: list[Tensor] = []
        self.times: list[float] = []
        self.start = time.perf_counter()
        self.reached = False

    def record(self, terms: LossTerms) -> bool:
        """Log a row; True when target_loss is reached (the caller stops there)."""
        self.rows.append(terms.stacked()[0].detach())
        self.times.append(time.perf_counter() - self.start)
        i, target = len(self.rows) - 1, self.params.target_loss
        if self.callback is not None:
            total = float(self.rows[-1][0])
            self.callback(Progress(i, self.params.iterations, total, self.times[-1]))
        self.reached = target is not None and float(self.rows[-1][0]) <= target
        return self.reached

    @property
    def evaluations(self) -> int:
        return len(self.rows)


def _evaluate(x: Tensor, objective: StyleObjective, grad: bool) -> tuple[LossTerms, Tensor]:
    """Loss terms at clamp(x, 0, 1) and, when `grad`, the gradient w.r.t. x (flat, detached)."""
    if not grad:
        with torch.no_grad():
            return objective(x.clamp(0, 1).expand(-1, 3, -1, -1)), x.new_empty(0)
    x = x.detach().requires_grad_(True)
    terms = objective(x.clamp(0, 1).expand(-1, 3, -1, -1))
    (g,) = torch.autograd.grad(terms.total.sum(), x)
    return terms, g.reshape(-1)


def _adam(x: Tensor, objective: StyleObjective, p: StyleParams, rec: _Recorder) -> Tensor:
    """Projected Adam: a step, then clamp to [0,1]."""
    x = x.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=p.learning_rate)
    for _ in range(p.iterations):
        terms, g = _evaluate(x, objective, grad=True)
        if rec.record(terms):
            return x.detach()
        x.grad = g.view_as(x)
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


def _lbfgs(x: Tensor, objective: StyleObjective, p: StyleParams, rec: _Recorder) -> Tensor:
    """L-BFGS on f(clamp(x)); returns the last accepted point (always an evaluated one)."""
    state = LBFGSState()
    shape = x.shape
    x = x.detach().reshape(-1).clone()
    terms, g = _evaluate(x.view(shape), objective, grad=True)
    if rec.record(terms):
        return x.view(shape)
    f = float(terms.total[0].detach())
    d, step = state.direction(g)
    while rec.evaluations < p.iterations:
        x_new = x + step * d
        terms, g_new = _evaluate(x_new.view(shape), objective, grad=True)
        if rec.record(terms):
            return x_new.view(shape)
        f_new = float(terms.total[0].detach())
        if armijo_ok(f_new, f, step, float(g.dot(d))):
            state.update(x_new - x, g_new - g)
            x, g, f = x_new, g_new, f_new
            d, step = state.direction(g)
        else:
            step *= 0.5
    return x.view(shape)


def _optimize(
    x: Tensor,
    objective: StyleObjective,
    params: StyleParams,
    callback: ProgressCallback | None,
) -> tuple[Tensor, LossLog, bool]:
    rec = _Recorder(params, callback)
    driver = _adam if params.optimizer == "adam" else _lbfgs
    x = driver(x, objective, params, rec)
    if not rec.reached:
        terms, _ = _evaluate(x, objective, grad=False)  # row N: the returned image
        rec.record(terms)
    log = _to_log(torch.stack(rec.rows).cpu(), rec.times, params.style_layers)
    return x.clamp(0, 1), log, rec.reached


def _to_log(rows: Tensor, times: list[float], style_layers: tuple[str, ...]) -> LossLog:
    log = LossLog()
    for i, (row, elapsed) in enumerate(zip(rows.double().tolist(), times, strict=True)):
        log.iteration.append(i)
        log.total_loss.append(row[0])
        log.content_loss.append(row[1])
        log.style_loss.append(row[2])
        log.tv_loss.append(row[3])
        log.style_layer_losses.append(dict(zip(style_layers, row[4:], strict=True)))
        log.elapsed_s.append(elapsed)
    return log
