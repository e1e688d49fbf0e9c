"""The photo post-processes' time against the pair's optimisation time (issue 33's time target:
the post-process at 512 px ≤ 20 % of the optimisation, on the same device).

For each pair, `nst_ops.optimize.stylize` runs a photo pair's defaults (photo_weight 1e4, Luan's
two stages, post-process none) twice, with `--short` and with `--long` iterations per stage; the
difference gives the seconds per iteration and the short run the fixed cost (the photo term's
Laplacian, extractor set-up), so the optimisation of `--iterations` + `--iterations` is
fixed + 2·iterations·per_iteration. Each post-process is then timed on the long run's image as
`stylize` applies it (its own smoothing Laplacian included), best of `--repeat`.

    python -m benchmarks.photo_post_time [--size 512] [--iterations 500] [--pairs 1 2]
        [--postprocess match smooth affine guided] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import torch

from benchmarks.common import machine, sync, weights_spec
from benchmarks.photo_pairs import PAIRS, load, pair_folder
from benchmarks.photo_quality import LUAN_LAMBDA
from nst_ops.optimize import stylize
from nst_ops.params import StyleParams
from nst_ops.postprocess import color_targets, refine
from nst_ops.segments import prepare_masks
from workflows.extractors import ExtractorCache
from workflows.weights import resolve_weights

T = TypeVar("T")
NAMES = ("content.png", "style.png", "content_seg.png", "style_seg.png")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=500, help="per stage, as Luan's 500")
    parser.add_argument("--pairs", nargs="+", default=["1", "2"], choices=PAIRS)
    parser.add_argument("--postprocess", nargs="+", default=["match", "smooth", "affine", "guided"])
    parser.add_argument("--short", type=int, default=4, help="iterations per stage, short run")
    parser.add_argument("--long", type=int, default=12, help="iterations per stage, long run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="runs/photo_post_time", help="where the face pair goes")
    return parser.parse_args()


def timed(device: torch.device, fn: Callable[[], T]) -> tuple[float, T]:
    """(seconds, result) of fn(), the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    cache = ExtractorCache(resolve_weights("vgg16", weights_spec("vgg16")), device, "fp32")
    print(
        f"machine: {machine(device)}; {args.size} px; optimisation {args.iterations} + "
        f"{args.iterations} L-BFGS iterations (from runs of {args.short} and {args.long})"
    )
    print(
        "| pair | H×W | s/iteration | fixed s | optimisation s | "
        + " | ".join(f"{k} s (% of opt.)" for k in args.postprocess)
        + " |"
    )
    print("|---" * (5 + len(args.postprocess)) + "|")
    for name in args.pairs:
        print(pair_row(name, args, cache, device), flush=True)


def pair_row(
    name: str, args: argparse.Namespace, cache: ExtractorCache, device: torch.device
) -> str:
    """One pair's table row: the optimisation's time and each post-process's."""
    pair = pair_folder(name, Path(args.out))
    content, style, cmask, smask = (load(pair, n, args.size) for n in NAMES)
    params = StyleParams(image_size=args.size, photo_weight=LUAN_LAMBDA, photo_postprocess="none")

    def run(k: int) -> torch.Tensor:
        p = params.replace(iterations=k)
        result = stylize(content, style, p, cache.get(p), None, cmask, smask,
                         evaluator=cache.evaluator)  # fmt: skip
        return result.image

    run(2)  # warm: the extractor on the device, allocator, kernels
    short, _ = timed(device, partial(run, args.short))
    long, image = timed(device, partial(run, args.long))
    per = (long - short) / (2 * (args.long - args.short))
    fixed = max(short - 2 * args.short * per, 0.0)
    optimisation = fixed + 2 * args.iterations * per
    on = (content[None].to(device), style[None].to(device))
    masks, _ = prepare_masks(cmask, smask, *on)
    targets = color_targets(masks, on[1], (content.shape[-2], content.shape[-1]), 1.0)
    cells = []
    for kind in args.postprocess:
        post = partial(refine, kind, on[0], image[None].to(device), None, targets)
        best = min(timed(device, post)[0] for _ in range(args.repeat))
        cells.append(f"{best:.3g} ({100 * best / optimisation:.3g} %)")
    h, w = content.shape[-2:]
    head = f"| {name} | {h}×{w} | {per:.3f} | {fixed:.1f} | {optimisation:.1f} | "
    return head + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
