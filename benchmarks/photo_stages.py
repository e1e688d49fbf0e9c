"""Why Luan's stage 2 did or did not bring the matting energy down (issue 33): for each pair of
../shared/data/photo, from the stage-1 image that benchmarks.photo_quality cached in --out
(stage1_{pair}_photo_{size}_{iterations}.pt), stage 2 is rerun with a counting evaluator, and
printed per pair:

- at stage 2's start, each weighted term (α·J_content, β·J_style, λ·photo_loss) and the norm of
  its gradient; the share of pixels on the bounds (0 or 1) and of the gradient's squared norm
  that lies on them;
- during stage 2, L-BFGS's accepted trials and rejected ones (each rejection halves the step),
  Φ (the matting energy Σ_c V_cᵀLV_c) after 0, 10, 50 and all iterations, and the share of the
  pixels on a bound at the start that never left it ("frozen").

    python -m benchmarks.photo_stages --out runs/photo_quality [--size 256] [--iterations 200]
        [--pairs 1 ... 8]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import weights_spec
from benchmarks.photo_pairs import PHOTO, load
from benchmarks.photo_quality import config_params
from nst_ops import lbfgs as lbfgs_module
from nst_ops.compiling import Compiler
from nst_ops.drivers import lbfgs
from nst_ops.evaluation import Evaluator
from nst_ops.matting import PHOTO_SCALE
from nst_ops.recorder import Recorder
from nst_ops.segments import Segment, prepare_masks, segment_objective
from workflows.extractors import ExtractorCache
from workflows.weights import resolve_weights

TERMS = ("content", "style", "photo")


class Counting(Evaluator):
    """The eager evaluator, counting L-BFGS's accepted trials and keeping every evaluated
    image's bound pixels."""

    def __init__(self) -> None:
        super().__init__(_AcceptSpy(self))
        self.accepted: list[bool] = []
        self.left_bound: torch.Tensor | None = None  # pixels ever evaluated off a bound

    def __call__(self, x: torch.Tensor, objective: Any) -> tuple[torch.Tensor, torch.Tensor]:
        inside = (x > 0) & (x < 1)
        self.left_bound = inside if self.left_bound is None else self.left_bound | inside
        return super().__call__(x, objective)


class _AcceptSpy(Compiler):
    """Eager; appends each accept_trial's decision (image 0) to the evaluator's `accepted`."""

    def __init__(self, counting: Counting) -> None:
        self.counting = counting

    def step(self, fn: Any) -> Any:
        if fn is not lbfgs_module.accept_trial:
            return fn

        def accept(*args: Any) -> Any:
            out = fn(*args)
            self.counting.accepted.append(bool(out.accept[0]))
            return out

        return accept


def start_terms(objective: Any, x: torch.Tensor) -> dict[str, float]:
    """Each weighted term and its gradient norm at x (1, 3, H, W); the bound shares."""
    x = x.clone().requires_grad_(True)
    values = objective(x).values
    names = ("content", "style", "tv", "photo")
    weights = dict(zip(names, objective.weights[0].tolist(), strict=True))
    out: dict[str, float] = {}
    bound = (x.detach() <= 0) | (x.detach() >= 1)
    total = torch.zeros_like(x)
    for name in TERMS:
        (g,) = torch.autograd.grad(weights[name] * values[name].sum(), x, retain_graph=True)
        out[name], out[f"|∇{name}|"] = float(weights[name] * values[name]), float(g.norm())
        total += g
    out["bound px"] = float(bound.float().mean())
    out["∇² on bounds"] = float((total[bound] ** 2).sum() / (total**2).sum())
    return out


def run(number: int, args: argparse.Namespace, cache: ExtractorCache) -> dict[str, float]:
    pair = PHOTO / str(number)
    names = ("content.png", "style.png", "content_seg.png", "style_seg.png")
    content, style, cmask, smask = (load(pair, n, args.size) for n in names)
    params = config_params("photo", content, args.size, args.iterations).replace(photo_weight=1e4)
    first = torch.load(Path(args.out) / f"stage1_{number}_photo_{args.size}_{args.iterations}.pt")
    c, s = content[None], style[None]
    masks, _ = prepare_masks(cmask, smask, c, s)
    seg = Segment(2, args.size, params)
    objective, _ = segment_objective(cache.get(params), seg, params, c, s, masks, {})
    start = first[None].clamp(0, 1)
    row = start_terms(objective, start)
    rec, counting = Recorder(params, None, params.iterations), Counting()
    rec.begin(2, args.size, True)
    lbfgs(start, objective, [params], [rec], counting)
    phi = [v / PHOTO_SCALE for v in rec.log(params.style_layers).terms["photo"]]
    row |= {f"Φ@{i}": phi[min(i, len(phi) - 1)] for i in (0, 10, 50, args.iterations)}
    row["accepted"] = float(sum(counting.accepted))
    row["rejected"] = float(len(counting.accepted) - sum(counting.accepted))
    on_bound = (start <= 0) | (start >= 1)
    assert counting.left_bound is not None
    frozen = on_bound & ~counting.left_bound
    row["frozen"] = float(frozen.sum() / on_bound.sum().clamp_min(1))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/photo_quality")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--pairs", type=int, nargs="+", default=list(range(1, 9)))
    args = parser.parse_args()
    cache = ExtractorCache(resolve_weights("vgg16", weights_spec("vgg16")), torch.device("cpu"),
                           "fp32")  # fmt: skip
    rows = {}
    for number in args.pairs:
        rows[number] = run(number, args, cache)
        print(number, "  ".join(f"{k} {v:.3g}" for k, v in rows[number].items()), flush=True)
    keys = list(next(iter(rows.values())))
    print("| pair | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for number, row in rows.items():
        print(f"| {number} | " + " | ".join(f"{row[k]:.3g}" for k in keys) + " |")
    medians = [statistics.median(r[k] for r in rows.values()) for k in keys]
    print("| median | " + " | ".join(f"{m:.3g}" for m in medians) + " |")


if __name__ == "__main__":
    main()
