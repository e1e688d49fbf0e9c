"""Time to quality: wall time each candidate config needs to reach the baseline's loss.

Baseline: single scale, L-BFGS, N iterations, default StyleParams. Its final total loss at full
size is the reference. Candidates change only how the optimisation gets there (optimizer,
coarse-to-fine scales), so their final-scale objective is the baseline's objective — with the
default layers and weights it is exactly the yardstick at the working size — and `target_loss`
(checked on the final scale only) stops each as soon as it reaches the reference.

    python benchmarks/time_to_quality.py [--size 512] [--iterations 1000] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.common import REPO, machine, sync, weights_spec
from nst_ops.optimize import stylize
from nst_ops.params import StyleParams
from workflows.images import load_image, to_png
from workflows.pair import ExtractorCache
from workflows.weights import resolve_weights

PAIRS = [("tubingen", "starry_night"), ("tubingen", "wave")]


def candidates(size: int, n: int) -> dict[str, StyleParams]:
    base = StyleParams(image_size=size, iterations=n)
    return {
        "baseline lbfgs": base,
        "adam lr 0.02": base.replace(optimizer="adam", iterations=2 * n),
        "2 scales": base.replace(scales=(size // 2, size), iterations=2 * n),
        "3 scales": base.replace(scales=(size // 4, size // 2, size), iterations=3 * n),
        "3 scales, short coarse": base.replace(scales=(size // 4, size // 2, size), iterations=n),
    }


def run_one(params: StyleParams, pair: tuple[str, str], cache: ExtractorCache, out: Path | None):
    ex = REPO / "examples"
    content = load_image(str(ex / f"content/{pair[0]}.jpg"), params.image_size)
    style = load_image(str(ex / f"style/{pair[1]}.jpg"), params.image_size)
    sync(cache.device)
    start = time.perf_counter()
    result = stylize(content, style, params, cache.get(params))
    sync(cache.device)
    if out is not None:
        out.write_bytes(to_png(result.image))
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--images", default=None, help="folder for the output PNGs")
    args = parser.parse_args()
    device = torch.device(args.device)
    cache = ExtractorCache(resolve_weights(args.model, weights_spec(args.model)), device)
    folder = Path(args.images) if args.images else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine(device)}; {args.model} at {args.size} px; baseline "
          f"{args.iterations} L-BFGS iterations")  # fmt: skip
    print(f"{'pair':28} {'config':24} {'wall s':>8} {'iters':>6} {'reached':>8} {'speed-up':>8}")
    for pair in PAIRS:
        configs = candidates(args.size, args.iterations)
        reference, base_wall = None, None
        for name, params in configs.items():
            if reference is not None:
                params = params.replace(target_loss=reference)
            out = folder / f"{pair[0]}_{pair[1]}_{name.replace(' ', '_')}.png" if folder else None
            result, wall = run_one(params, pair, cache, out)
            if reference is None:
                reference, base_wall = result.losses.total_loss[-1], wall
            reached = name.startswith("baseline") or result.reached_target
            speedup = f"{base_wall / wall:.1f}x" if reached and base_wall else "-"
            print(f"{pair[0] + ' x ' + pair[1]:28} {name:24} {wall:8.1f} "
                  f"{result.iterations_run:6d} {str(reached):>8} {speedup:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
