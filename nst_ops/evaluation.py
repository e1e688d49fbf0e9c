"""One iteration's work: the objective's loss rows and its gradient at a batch of images. The
`Evaluator` runs them through its `compiler` (nst_ops.compiling: eager, or torch.compile with
CUDA graphs on a GPU), which also runs the optimizers' steps (nst_ops.drivers hands it to
them). The drivers never read a loss on the host between iterations (nst_ops.deferred), so on
a GPU captured replays queue up.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from nst_ops.compiling import Compiler, Inductor, rows_and_gradient
from nst_ops.objective import StyleObjective

Compile = Literal["auto", "on", "off"]
COMPILE_CHOICES: tuple[str, ...] = get_args(Compile)
DEFAULT_COMPILE: Compile = "auto"


def loss_rows(x: Tensor, objective: StyleObjective) -> Tensor:
    """Loss rows (B, T + L) (LossTerms.stacked; the total in column 0) at x (B, C, H, W) in
    [0,1], C = 1 (luminance) or 3. The drivers keep every evaluated image in [0,1], so there
    is no clamp here, deliberately: torch's clamp passes no gradient at the bound itself, so a
    pixel at exactly 0 or 1 (a trial step clamps there) would get a zero gradient and stay
    frozen for the rest of the run — a dark sky at 0 stalled Luan's stage 2 with the matting
    energy 10⁴× too high and left its pixels as speckle (benchmarks/RESULTS.md, issue 33)."""
    return objective(x.expand(-1, 3, -1, -1)).stacked()


class Evaluator:
    """The objective's rows and gradient through `compiler` (default eager). One per process,
    reused across pairs, so that compiled graphs are reused. `compile_s`: seconds the compiler
    has spent compiling. Objectives with the matting Laplacian (a sparse matrix, which a CUDA
    graph cannot capture) always run eagerly."""

    def __init__(self, compiler: Compiler | None = None) -> None:
        self.compiler = compiler or Compiler()
        self._rows_and_gradient = self.compiler.objective(loss_rows)

    @property
    def compile_s(self) -> float:
        return self.compiler.compile_s

    def __call__(self, x: Tensor, objective: StyleObjective) -> tuple[Tensor, Tensor]:
        """(loss rows (B, T + L), gradient of each image's total (B, C·H·W)), both detached,
        at x in [0,1] (as the drivers keep it): the full gradient of the objective at x, also
        at pixels on the bounds; image b's gradient depends on image b alone."""
        if objective.laplacian is not None:
            return rows_and_gradient(loss_rows, x, objective)
        return self._rows_and_gradient(x, objective)

    @staticmethod
    def forward(x: Tensor, objective: StyleObjective) -> Tensor:
        """Loss rows only (no gradient): the forward-only row of a returned image."""
        with torch.no_grad():
            return loss_rows(x, objective)


def make_evaluator(compile: str, device: torch.device) -> Evaluator:
    """The evaluator of the `compile` run setting: on | off | auto (on for CUDA; off for the
    CPU, where compiling does not pay: benchmarks.overhead_probe)."""
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile: must be one of {', '.join(COMPILE_CHOICES)}; got {compile!r}")
    if compile == "on" or (compile == "auto" and device.type == "cuda"):
        return Evaluator(Inductor(device))
    return Evaluator()
