"""Does a coarse start make the full-size stage converge sooner? (issue: time to quality)

For one pair at `--size`: the baseline (single scale, L-BFGS, N iterations from the content
image) sets the reference loss. Then the full-size objective is optimised again with L-BFGS for
N iterations from other starts, each the result of a short coarse run (`--coarse-iterations` at
size/2 or size/4), upsampled:

- `upsampled`: the coarse result, bicubic-upsampled (what `scales` does, up to the filter);
- `upsampled + detail`: plus the content's detail the coarse scale cannot hold
  (content − upsample(downsample(content))), a sharper start.

Printed: each run's total loss at fixed iterations as a multiple of the reference, and the
first iteration that reaches it. A coarse start pays only if its full-size stage reaches the
reference in far fewer iterations than the baseline.

    python -m benchmarks.coarse_start [--size 128] [--iterations 200] [--coarse-iterations 50]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.common import example_pair, machine, weights_spec
from nst_ops.drivers import lbfgs
from nst_ops.evaluation import Evaluator
from nst_ops.optimize import stylize
from nst_ops.params import StyleParams
from nst_ops.recorder import Recorder
from nst_ops.segments import Segment, segment_objective
from nst_ops.vgg import VGGFeatures
from workflows.extractors import ExtractorCache
from workflows.weights import resolve_weights

CHECKPOINTS = (5, 10, 25, 50, 100, 150)


def full_size_run(
    start: Tensor, content: Tensor, style: Tensor, params: StyleParams, extractor: VGGFeatures
) -> tuple[list[float], float]:
    """L-BFGS on the full-size objective from `start` (3, H, W): (totals per row, wall s)."""
    segment = Segment(1, params.image_size, params)
    objective, _ = segment_objective(
        extractor, segment, params, content[None], style[None], None, None
    )
    recorder = Recorder(params, None, params.iterations)
    began = time.perf_counter()
    lbfgs(start[None].clone(), objective, [params], [recorder], Evaluator())
    totals = torch.stack(recorder.rows)[:, 0].double().tolist()
    return totals, time.perf_counter() - began


def starts(
    content: Tensor, size: int, style_name: str, n: int, extractor: VGGFeatures
) -> dict[str, Tensor]:
    """name → start image (3, H, W) in [0,1] for the full-size stage."""
    out = {"content (baseline)": content}
    for coarse in (size // 2, size // 4):
        small_content, small_style = example_pair(coarse, style_name)
        result = stylize(small_content, small_style, StyleParams(image_size=coarse, iterations=n),
                         extractor)  # fmt: skip
        hw = content.shape[-2:]
        up = F.interpolate(result.image[None], size=hw, mode="bicubic")[0]
        low = F.interpolate(small_content[None], size=hw, mode="bicubic")[0]
        out[f"upsampled from {coarse}"] = up.clamp(0, 1)
        out[f"upsampled + detail from {coarse}"] = (up + content - low).clamp(0, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--coarse-iterations", type=int, default=50)
    parser.add_argument("--style", default="starry_night")
    args = parser.parse_args()
    device = torch.device("cpu")
    cache = ExtractorCache(resolve_weights("vgg16", weights_spec("vgg16")), device, "fp32")
    params = StyleParams(image_size=args.size, iterations=args.iterations)
    extractor = cache.get(params)
    content, style = example_pair(args.size, args.style)
    runs = starts(content, args.size, args.style, args.coarse_iterations, extractor)
    results = {
        name: full_size_run(x, content, style, params, extractor) for name, x in runs.items()
    }
    reference = results["content (baseline)"][0][args.iterations - 1]
    marks = [k for k in CHECKPOINTS if k < args.iterations] + [args.iterations - 1]
    print(f"machine: {machine(device)}; vgg16, tubingen x {args.style} at {args.size} px; "
          f"L-BFGS {args.iterations} iterations at full size; coarse starts: "
          f"{args.coarse_iterations} iterations; loss / reference at iteration:")  # fmt: skip
    print(f"{'start':32} {'row 0':>8} " + " ".join(f"{k:>6}" for k in marks) + "  reached at")
    for name, (totals, _) in results.items():
        hit = next((i for i, v in enumerate(totals) if v <= reference), None)
        cells = " ".join(f"{totals[k] / reference:6.3f}" for k in marks)
        print(f"{name:32} {totals[0] / reference:8.2f} {cells}  {hit if hit is not None else '-'}")


if __name__ == "__main__":
    main()
