"""Pairs per GPU-hour at a given size and iteration count, per precision (one pair at a time).

    python benchmarks/gpu_throughput.py --size 512 --iterations 500 --pairs 3

(`--pairs-per-gpu` batching is not implemented yet: every number here is one pair per GPU.)
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import REPO, machine, sync, weights_spec
from nst_ops.optimize import stylize
from nst_ops.params import StyleParams
from workflows.images import load_image
from workflows.pair import ExtractorCache
from workflows.weights import resolve_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--model", default="vgg19")
    parser.add_argument("--optimizer", default="lbfgs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16"])
    args = parser.parse_args()
    device = torch.device(args.device)
    weights = resolve_weights(args.model, weights_spec(args.model))
    ex = REPO / "examples"
    content = load_image(str(ex / "content/tubingen.jpg"), args.size)
    style = load_image(str(ex / "style/starry_night.jpg"), args.size)
    params = StyleParams(image_size=args.size, iterations=args.iterations, optimizer=args.optimizer)
    print(f"machine: {machine(device)}; {args.model}, {args.size} px, {args.iterations} "
          f"{args.optimizer} iterations, pairs-per-gpu 1")  # fmt: skip
    print(f"{'precision':9} {'s/pair':>7} {'s/it':>7} {'pairs/GPU-h':>12} {'final loss':>11}")
    for precision in args.precisions:
        cache = ExtractorCache(weights, device, precision)
        extractor = cache.get(params)
        stylize(content, style, params.replace(iterations=3), extractor)  # warm-up
        sync(device)
        start = time.perf_counter()
        for _ in range(args.pairs):
            result = stylize(content, style, params, extractor)
        sync(device)
        per_pair = (time.perf_counter() - start) / args.pairs
        per_it = per_pair / (args.iterations + 0.5)
        print(f"{precision:9} {per_pair:7.2f} {per_it:7.4f} {3600 / per_pair:12.0f} "
              f"{result.losses.total_loss[-1]:11.4g}")  # fmt: skip


if __name__ == "__main__":
    main()
