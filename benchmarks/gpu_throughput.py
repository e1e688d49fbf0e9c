"""Pairs per GPU-hour at a given size and iteration count, per precision and pairs-per-gpu.

    python -m benchmarks.gpu_throughput --size 512 --iterations 500 --pairs-per-gpu 1 4 8

Each configuration stylizes one batch of N pairs (tubingen × the bundled styles in turn, so the
pairs differ) with `stylize_batch`, as a worker with `--pairs-per-gpu N` does, after a short
warm-up. pairs/GPU-h = 3600 · N / (wall seconds of the batch). The yardstick (fp32, 256 px,
nst_ops.yardstick) of the results shows the quality impact of the precision.
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
    args = parser.parse_args()
    device = torch.device(args.device)
    weights = resolve_weights(args.model, weights_spec(args.model))
    ruler = ExtractorCache(weights, device, "fp32")
    params = StyleParams(image_size=args.size, iterations=args.iterations, optimizer=args.optimizer)
    print(f"machine: {machine(device)}; {args.model}, {args.size} px, {args.iterations} "
          f"{args.optimizer} iterations")  # fmt: skip
    print(f"{'precision':9} {'ppg':>3} {'batch s':>8} {'s/it':>7} {'pairs/GPU-h':>12} "
          f"{'yardstick':>10} {'peak GiB':>8}")  # fmt: skip
    for precision in args.precisions:
        extractor = ExtractorCache(weights, device, precision).get(params)
        for n in args.pairs_per_gpu:
            batch = pairs(args.size, n, params)
            warm = [Pair(p.content, p.style, params.replace(iterations=3)) for p in batch]
            stylize_batch(warm, extractor)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            start = time.perf_counter()
            results = stylize_batch(batch, extractor)
            sync(device)
            wall = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0
            score = quality(batch, [r.image for r in results], ruler)
            print(f"{precision:9} {n:3d} {wall:8.2f} {wall / args.iterations:7.4f} "
                  f"{3600 * n / wall:12.0f} {score:10.4g} {peak:8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
