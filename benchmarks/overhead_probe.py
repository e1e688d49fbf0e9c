"""Is one pair's iteration bound by Python's kernel launches? (issue: GPU throughput)

One pair at 256 px sits at ~6-7 ms per iteration on an H200 in every precision, far above its
FLOP floor. This probe times the objective+gradient alone (no optimizer, no loss rows) three
ways, for `--evaluations` calls after a warm-up:

- `eager, sync each`: reads the loss on the host after every call (what a driver that needs
  the loss every iteration does: L-BFGS's Armijo test);
- `eager, no sync`: never reads it; `launch ms` is the Python time to enqueue one call. When
  launch ms ≈ ms per call, the GPU waits for Python: launch-bound;
- `compiled`: the objective under torch.compile (mode `reduce-overhead` on CUDA: CUDA graphs,
  one launch per graph), backward by autograd as usual. Reports the compile time too.

    python -m benchmarks.overhead_probe [--device cuda] [--size 256] [--precision tf32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import Tensor

from benchmarks.common import example_pair, machine, sync, weights_spec
from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.segments import Segment, segment_objective
from workflows.extractors import ExtractorCache
from workflows.weights import resolve_weights


def objective(args: argparse.Namespace, device: torch.device) -> tuple[StyleObjective, Tensor]:
    """The default objective of tubingen × starry_night at --size and its content (1, 3, H, W)."""
    params = StyleParams(image_size=args.size)
    weights = resolve_weights(args.model, weights_spec(args.model))
    extractor = ExtractorCache(weights, device, args.precision).get(params)
    content, style = (image[None].to(device) for image in example_pair(args.size, "starry_night"))
    segment = Segment(1, args.size, params)
    built, _ = segment_objective(extractor, segment, params, content, style, None, None)
    return built, content


def timed(
    call: Callable[[], Tensor], n: int, device: torch.device, read: bool
) -> tuple[float, float]:
    """(ms per call, Python launch ms per call) over n calls after 3 warm-up calls."""
    for _ in range(3):
        call()
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        total = call()
        if read:
            float(total)
    launched = time.perf_counter()
    sync(device)
    done = time.perf_counter()
    return 1000 * (done - start) / n, 1000 * (launched - start) / n


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--precision", default="tf32")
    parser.add_argument("--evaluations", type=int, default=50)
    parser.add_argument("--no-compile", action="store_true", help="eager rows only")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    loss, content = objective(args, device)

    def step(fn: Callable[[Tensor], Tensor]) -> Callable[[], Tensor]:
        def call() -> Tensor:
            x = content.detach().requires_grad_(True)
            total = fn(x)
            total.backward()  # type: ignore[no-untyped-call]
            return total.detach()

        return call

    def eager(x: Tensor) -> Tensor:
        return loss(x).total.sum()

    print(f"machine: {machine(device)}; {args.model}, {args.size} px, {args.precision}, "
          f"objective+gradient only, {args.evaluations} calls")  # fmt: skip
    print(f"{'mode':22} {'ms/call':>8} {'launch ms':>10}")
    for name, read in (("eager, sync each", True), ("eager, no sync", False)):
        ms, launch = timed(step(eager), args.evaluations, device, read)
        print(f"{name:22} {ms:8.2f} {launch:10.2f}")
    if args.no_compile:
        return
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    compiled = torch.compile(eager, mode=mode)
    began = time.perf_counter()
    step(compiled)()
    sync(device)
    print(f"compile ({mode}): {time.perf_counter() - began:.1f} s")
    for name, read in (("compiled, sync each", True), ("compiled, no sync", False)):
        ms, launch = timed(step(compiled), args.evaluations, device, read)
        print(f"{name:22} {ms:8.2f} {launch:10.2f}")


if __name__ == "__main__":
    main()
