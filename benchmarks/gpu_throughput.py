"""Pairs per GPU-hour at a given size and iteration count, per precision, compile setting and
pairs-per-gpu.

    python -m benchmarks.gpu_throughput --size 512 --iterations 500 --pairs-per-gpu 1 4 8 \
        [--compile on off]

Each configuration stylizes one batch of N pairs (tubingen × the bundled styles in turn, so the
pairs differ) with `stylize_batch`, as a worker with `--pairs-per-gpu N` does, after a short
warm-up (which compiles the graphs when compile is on: `compile s`, paid once per worker and
shape, not counted in the rate; `late s`, compiling inside the timed batch, must be 0: else the
warm-up missed a graph and the rate counts a compile). pairs/GPU-h = 3600 · N / (wall seconds
of the batch). The yardstick (fp32, 256 px, nst_ops.yardstick) of the results shows the quality
impact of the precision.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import example_image, machine, sync, weights_spec
from nst_ops.optimize import Pair, stylize_batch
from nst_ops.params import StyleParams
from nst_ops.yardstick import DEFAULTS as YARDSTICK_PARAMS
from nst_ops.yardstick import yardstick
from workflows.extractors import ExtractorCache
from workflows.weights import resolve_weights

STYLES = ["starry_night", "wave", "the_scream"]


def pairs(size: int, n: int, params: StyleParams) -> list[Pair]:
    content = example_image("content", "tubingen", size)
    styles = [example_image("style", s, size) for s in STYLES]
    return [Pair(content, styles[i % len(styles)], params) for i in range(n)]


def quality(batch: list[Pair], images: list[torch.Tensor], ruler: ExtractorCache) -> float:
    """Mean yardstick total of the results (lower is better)."""
    extractor = ruler.get(YARDSTICK_PARAMS)
    values = [
        yardstick(extractor, image, pair.content, pair.style, 256).total
        for pair, image in zip(batch, images, strict=True)
    ]
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--pairs-per-gpu", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--optimizer", default="lbfgs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16"])
    parser.add_argument("--compile", nargs="+", default=["auto"], choices=["auto", "on", "off"])
    args = parser.parse_args()
    device = torch.device(args.device)
    weights = resolve_weights(args.model, weights_spec(args.model))
    ruler = ExtractorCache(weights, device, "fp32")
    params = StyleParams(image_size=args.size, iterations=args.iterations, optimizer=args.optimizer)
    print(f"machine: {machine(device)}; {args.model}, {args.size} px, {args.iterations} "
          f"{args.optimizer} iterations")  # fmt: skip
    print(f"{'precision':9} {'compile':7} {'ppg':>3} {'batch s':>8} {'ms/it':>7} "
          f"{'pairs/GPU-h':>12} {'compile s':>9} {'late s':>6} {'yardstick':>10} "
          f"{'peak GiB':>8}")  # fmt: skip
    for precision in args.precisions:
        for compile in args.compile:
            cache = ExtractorCache(weights, device, precision, compile)
            for n in args.pairs_per_gpu:
                row(args, cache, params, n, ruler, f"{precision:9} {compile:7} {n:3d}")


def row(args: argparse.Namespace, cache: ExtractorCache, params: StyleParams, n: int,
        ruler: ExtractorCache, label: str) -> None:  # fmt: skip
    """Time one batch of n pairs after a warm-up of the same shape; print its table row."""
    device, extractor, evaluate = cache.device, cache.get(params), cache.evaluator
    batch = pairs(args.size, n, params)
    warm = [Pair(p.content, p.style, params.replace(iterations=4)) for p in batch]
    compiled = stylize_batch(warm, extractor, evaluate)[0].compile_s
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    results = stylize_batch(batch, extractor, evaluate)
    sync(device)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0
    score = quality(batch, [r.image for r in results], ruler)
    late = results[0].compile_s  # the batch's, shared by its results
    print(f"{label} {wall:8.2f} {1000 * wall / args.iterations:7.2f} {3600 * n / wall:12.0f} "
          f"{compiled:9.1f} {late:6.1f} {score:10.4g} {peak:8.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
