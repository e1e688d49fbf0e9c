"""Seconds per iteration vs the FLOP floor (issue: per-iteration speed).

One iteration = one forward + one backward (w.r.t. the pixels only: weights are frozen), about
2x the forward conv FLOPs up to the deepest layer used. Floor = that FLOP count divided by the
measured fp32 matmul rate of the machine. Target on CPU: ratio <= 1.15.

    python benchmarks/iteration_speed.py [--device cpu|cuda] [--sizes 256 512] [--iterations 5]
"""

from __future__ import annotations

import argparse
import time

import torch

import nst_ops.drivers as drivers
from benchmarks.common import machine, matmul_flops_per_s, sync, weights_spec
from nst_ops.optimize import stylize
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures, layer_names
from workflows.pair import ExtractorCache
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


def measure(
    model: str, size: int, device: torch.device, iterations: int, precision: str, repeats: int
) -> dict:
    """s/it and pair seconds: the best of `repeats` runs (shared machines vary by ±10%)."""
    params = StyleParams(image_size=size, iterations=iterations, optimizer="adam")
    cache = ExtractorCache(resolve_weights(model, weights_spec(model)), device, precision)
    extractor = cache.get(params)
    content = torch.rand(3, size * 3 // 4, size)
    style = torch.rand(3, size * 3 // 4, size)
    stylize(content, style, params.replace(iterations=2), extractor)  # warm-up
    per_iteration, wall = float("inf"), float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = stylize(content, style, params, extractor)
        sync(device)
        wall = min(wall, time.perf_counter() - start)
        # rows 0..N-1 are full iterations (step + forward + backward); the time between row 0
        # and row N-1 excludes the per-pair setup (target features) and the last forward-only row.
        elapsed = result.losses.elapsed_s
        per_iteration = min(per_iteration, (elapsed[-2] - elapsed[0]) / (iterations - 1))
    assert layer_names(model)[len(extractor.layers) - 1] == "relu5_1"
    flops = 2 * conv_flops(extractor, size * 3 // 4, size)
    return {"flops": flops, "s": per_iteration, "pair_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--models", nargs="+", default=["vgg16", "vgg19"])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    parser.add_argument(
        "--rows-per-flush",
        type=int,
        default=None,
        help="Adam's loss rows per host transfer (default: 16 on CUDA, 1 on CPU)",
    )
    args = parser.parse_args()
    if args.rows_per_flush is not None:
        every = args.rows_per_flush
        drivers.rows_per_flush = lambda device: every  # type: ignore[assignment]
    device = torch.device(args.device)
    rate = max(matmul_flops_per_s(device) for _ in range(3))  # the machine's best rate
    print(f"machine: {machine(device)}; fp32 matmul {rate / 1e9:.1f} GFLOP/s; precision "
          f"{args.precision}; 4:3 images, default layers (deepest relu5_1), Adam; rows per flush "
          f"{args.rows_per_flush or 'default'}")  # fmt: skip
    print(f"{'model':6} {'size':>5} {'GFLOP/it':>9} {'s/it':>8} {'floor s':>8} {'ratio':>6} "
          f"{'pair s':>7}")  # fmt: skip
    for model in args.models:
        for size in args.sizes:
            m = measure(model, size, device, args.iterations, args.precision, args.repeats)
            floor = m["flops"] / rate
            print(f"{model:6} {size:5d} {m['flops'] / 1e9:9.1f} {m['s']:8.3f} {floor:8.3f} "
                  f"{m['s'] / floor:6.2f} {m['pair_s']:7.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
