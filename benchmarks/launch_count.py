"""How much work Python dispatches per iteration (issue: GPU throughput).

On a GPU each eager operation costs Python ~5-25 µs to launch, so an iteration whose optimizer
runs ~180 small operations leaves the GPU waiting even when the objective is one captured
graph. For each optimizer and `--compile` setting this runs one pair of `--iterations` and
counts, per iteration (per objective evaluation):

- `python ops`: operations dispatched eagerly outside the objective (views excluded): the
  optimizer's bookkeeping, the deferred loss rows, the flushes. Machine-independent, so the CPU
  count is the GPU's, except that the CPU flushes every row and a GPU every 16;
- `compiled calls`: calls of the optimizer's compiled bookkeeping (each one call from Python);
- on CUDA, `kernels` and `graphs`: kernel and CUDA-graph launches the profiler sees, all work
  of the iteration included; `gpu kernels run`: kernels the GPU ran, those of graphs too.

    python -m benchmarks.launch_count [--device cuda] [--size 64] [--iterations 40]
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.common import example_pair, machine, weights_spec
from nst_ops.compiling import Compiler
from nst_ops.evaluation import Evaluator
from nst_ops.optimize import stylize
from nst_ops.params import StyleParams
from workflows.extractors import ExtractorCache
from workflows.weights import resolve_weights

LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC")


class _Counting(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts the non-view operations dispatched while `on`."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.on, self.ops = False, 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.on and not func.is_view:
            self.ops += 1
        return func(*args, **(kwargs or {}))


class _Observed(Compiler):
    """The evaluator's compiler, with counting paused inside the objective and the compiled
    steps, and their calls counted."""

    def __init__(self, inner: Compiler, mode: _Counting, compiled: bool) -> None:
        self.inner, self.mode, self.compiled = inner, mode, compiled
        self.calls = Counter[str]()

    @property
    def compile_s(self) -> float:  # type: ignore[override]
        return self.inner.compile_s

    def objective(self, fn: Any) -> Any:
        return self._paused(self.inner.objective(fn), "objective")

    def step(self, fn: Any) -> Any:
        compiled = self.inner.step(fn)
        return self._paused(compiled, "step") if self.compiled else compiled

    def constants(self, fn: Any, device: torch.device) -> Any:
        return self.inner.constants(fn, device)

    def _paused(self, fn: Any, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.mode.on = False
            try:
                return fn(*args, **kwargs)
            finally:
                self.mode.on = True

        return call


def count(args: argparse.Namespace, optimizer: str, compile: str) -> dict[str, float]:
    device = torch.device(args.device)
    weights = resolve_weights(args.model, weights_spec(args.model))
    cache = ExtractorCache(weights, device, "tf32", compile)
    params = StyleParams(image_size=args.size, iterations=args.iterations, optimizer=optimizer)  # type: ignore[arg-type]
    content, style = example_pair(args.size, "starry_night")
    extractor = cache.get(params)
    warm = params.replace(iterations=4)
    stylize(content, style, warm, extractor, evaluator=cache.evaluator)  # compiles, if on
    mode = _Counting()
    observed = _Observed(cache.evaluator.compiler, mode, compiled=compile == "on")
    evaluator = Evaluator(observed)
    setattr(evaluator, "forward", observed._paused(Evaluator.forward, "forward"))  # noqa: B010
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":  # the CUDA runtime and driver calls come through CUPTI
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile, mode:
        mode.on = True
        stylize(content, style, params, extractor, evaluator=evaluator)
        mode.on = False
    n = observed.calls["objective"]
    names = Counter(event.name for event in profile.events())
    out = {
        "python ops": mode.ops / n,
        "compiled calls": observed.calls["step"] / n,
    }
    if device.type == "cuda":
        out["kernels"] = sum(names[k] for k in LAUNCHES) / n
        out["graphs"] = names["cudaGraphLaunch"] / n
        ran = [e for e in profile.events() if e.device_type == torch.autograd.DeviceType.CUDA]  # type: ignore[attr-defined]
        out["gpu kernels run"] = len(ran) / n  # those inside graphs too
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
    parser.add_argument("--compile", nargs="+", default=["off", "on"], choices=["on", "off"])
    args = parser.parse_args()
    print(f"machine: {machine(torch.device(args.device))}; {args.model}, {args.size} px, "
          f"{args.iterations} iterations; per iteration (per objective evaluation)")  # fmt: skip
    rows = [(o, c, count(args, o, c)) for o in args.optimizers for c in args.compile]
    columns = list(rows[0][2])
    print(f"{'optimizer':10}{'compile':8}" + "".join(f"{c:>16}" for c in columns))
    for optimizer, compile, values in rows:
        cells = "".join(f"{values.get(c, float('nan')):>16.1f}" for c in columns)
        print(f"{optimizer:10}{compile:8}{cells}")


if __name__ == "__main__":
    main()
