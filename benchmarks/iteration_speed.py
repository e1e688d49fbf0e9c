"""Seconds per iteration vs the FLOP floor (issue: per-iteration speed).

One iteration = one forward + one backward (w.r.t. the pixels only: weights are frozen), about
2x the forward conv FLOPs up to the deepest layer used. Floor = that FLOP count divided by the
measured fp32 matmul rate of the machine. Target on CPU: ratio <= 1.15. `compile s`: the
warm-up's compiling (compile on); `late s`: compiling inside the reported timed run, which must
be 0 (else the warm-up missed a graph and s/it counts a compile).

    python benchmarks/iteration_speed.py [--device cpu|cuda] [--sizes 256 512] [--iterations 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import nst_ops.drivers as drivers
from benchmarks.common import machine, matmul_flops_per_s, sync, weights_spec
from nst_ops.optimize import StyleResult, stylize
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures, layer_names
from workflows.extractors import ExtractorCache
from workflows.weights import resolve_weights


def conv_flops(extractor: VGGFeatures, height: int, width: int) -> float:
    """Forward FLOPs (2 per multiply-add) of every convolution in the truncated trunk."""
    flops, h, w = 0.0, height, width
    for module in extractor.layers:
        if isinstance(module, torch.nn.Conv2d):
            flops += 2.0 * module.in_channels * module.out_channels * 9 * h * w
        elif isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            h, w = h // 2, w // 2
    return flops


def timed_run(
    run: Callable[[], StyleResult], device: torch.device, flops: float
) -> dict[str, float]:
    """One pair's s/it (its rows' clock), its floor at the matmul rate measured around it, and
    their ratio."""
    before = matmul_flops_per_s(device)
    sync(device)
    start = time.perf_counter()
    result = run()
    sync(device)
    wall = time.perf_counter() - start
    # rows 0..N-1 are full iterations (step + forward + backward); the time between row 0 and
    # row N-1 excludes the per-pair setup (target features) and the last forward-only row.
    elapsed = result.losses.elapsed_s
    per_iteration = (elapsed[-2] - elapsed[0]) / (len(elapsed) - 2)
    rate = (before + matmul_flops_per_s(device)) / 2
    return {"s": per_iteration, "floor": flops / rate, "rate": rate, "pair_s": wall,
            "late_s": result.compile_s, "ratio": per_iteration * rate / flops}  # fmt: skip


def measure(
    model: str, size: int, device: torch.device, iterations: int, precision: str, repeats: int,
    optimizer: str = "adam", compile: str = "auto",
) -> dict[str, float]:  # fmt: skip
    """s/it, the floor and pair seconds of `repeats` runs. This shared machine's speed drifts
    by ±10–15% over minutes, so each run's floor uses the mean of matmul rates measured just
    before and just after it, and each run gets its own ratio; the run with the median ratio is
    reported, with the range."""
    params = StyleParams(image_size=size, iterations=iterations, optimizer=optimizer)  # type: ignore[arg-type]
    weights = resolve_weights(model, weights_spec(model))
    cache = ExtractorCache(weights, device, precision, compile)
    extractor, evaluate = cache.get(params), cache.evaluator
    content = torch.rand(3, size * 3 // 4, size)
    style = torch.rand(3, size * 3 // 4, size)
    warm = stylize(content, style, params.replace(iterations=4), extractor, evaluator=evaluate)
    assert layer_names(model)[len(extractor.layers) - 1] == "relu5_1"
    flops = 2 * conv_flops(extractor, size * 3 // 4, size)
    runs = [timed_run(lambda: stylize(content, style, params, extractor, evaluator=evaluate),
                      device, flops) for _ in range(repeats)]  # fmt: skip
    runs.sort(key=lambda run: run["ratio"])
    ratios = [run["ratio"] for run in runs]
    median = runs[len(runs) // 2]
    return {
        "flops": flops,
        **median,
        "low": ratios[0],
        "high": ratios[-1],
        "compile_s": warm.compile_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--models", nargs="+", default=["vgg16", "vgg19"])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="captured iterations (auto: CUDA on, CPU off)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median counts")
    parser.add_argument(
        "--rows-per-flush",
        type=int,
        default=None,
        help="Adam's loss rows per host transfer (default: 16 on CUDA, 1 on CPU)",
    )
    args = parser.parse_args()
    if args.rows_per_flush is not None:
        every = args.rows_per_flush
        drivers.rows_per_flush = lambda device: every  # type: ignore[attr-defined]
    device = torch.device(args.device)
    print(f"machine: {machine(device)}; precision {args.precision}; compile {args.compile}; "
          f"4:3 images, default layers (deepest relu5_1), {args.optimizer}; rows per flush "
          f"{args.rows_per_flush or 'default'}; median of {args.repeats} runs, each between "
          "two fp32 matmul rates; s/it inside the optimisation loop")  # fmt: skip
    print(f"{'model':6} {'size':>5} {'GFLOP/it':>9} {'GFLOP/s':>8} {'s/it':>8} {'floor s':>8} "
          f"{'ratio':>6} {'range':>11} {'pair s':>7} {'compile s':>9} {'late s':>6}")  # fmt: skip
    for model in args.models:
        for size in args.sizes:
            m = measure(model, size, device, args.iterations, args.precision, args.repeats,
                        args.optimizer, args.compile)  # fmt: skip
            spread = f"{m['low']:.2f}-{m['high']:.2f}"
            print(f"{model:6} {size:5d} {m['flops'] / 1e9:9.1f} {m['rate'] / 1e9:8.1f} "
                  f"{m['s']:8.4f} {m['floor']:8.4f} {m['ratio']:6.2f} {spread:>11} "
                  f"{m['pair_s']:7.1f} {m['compile_s']:9.1f} {m['late_s']:6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
