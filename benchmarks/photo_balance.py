"""The balance of the photorealism term (issue: photorealistic transfer): gradient norms of each
term at Luan's own output image, for our objective with a photo pair's defaults and for Luan et
al.'s (2017) formulas on the same network, and their ratios.

Luan's code (luanfujun/deep-photo-styletransfer, neuralstyle_seg.lua / deepmatting_seg.lua), in
our terms (F: features of the same trunk, E_l: our masked style layer loss, Φ = Σ_c V_cᵀ L V_c
with V in [0,1]): content 5·mean((F − P)²) = 10/(N₄M₄)·J_content; style per layer
100·Σ_k ω_k·mean((G_k/(N·M_k) − A_k/(N·M^S_k))²) = 400/N_l²·E_l; matting λ·Φ (his CUDA gradient
2·L·V/256 on the 0–256 image is exactly ∇(λΦ) in [0,1] units), λ = 1e4.

With the photo defaults (nst_ops.params: β = 1000, w_l ∝ 1/N_l²) and photo_weight = λ, our style
and photo terms are k = PHOTO_SCALE (7620) times Luan's: the ratios `k style` and `k photo` are k
for every pair and size, so photo_weight = 1e4 is his photo/style balance at every size. Our
content term is Gatys' sum, α·N₄M₄/10 times his mean: with the photo default α =
(256/image_size)² `k content` is 0.8·256²·H/W ≈ 4.6·k for a 3:2 photo at every size (α = 1
would let it grow with the pixel count); α = 1.25·k/(H·W) would make it k
(tests/nst_ops/test_photo_balance.py checks both).

    python -m benchmarks.photo_balance [--sizes 256 512] [--pairs 1 2 ... 8] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import SHARED, machine, weights_spec
from nst_ops.matting import PHOTO_SCALE, matting_energy
from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.segments import Segment, prepare_masks, segment_objective
from workflows.extractors import ExtractorCache
from workflows.images import resize_long_side, to_tensor
from workflows.weights import resolve_weights

PHOTO = SHARED / "data" / "photo"
LUAN_LAMBDA = 1e4
COLUMNS = ["pixels", "content", "style", "photo", "luan content", "luan style", "luan photo",
           "k content", "k style", "k photo"]  # fmt: skip


def load(pair: Path, name: str, size: int) -> torch.Tensor:
    return to_tensor(resize_long_side(Image.open(pair / name).convert("RGB"), size))[None]


def grad_norm(value: torch.Tensor, x: torch.Tensor) -> float:
    (g,) = torch.autograd.grad(value, x, retain_graph=True)
    return float(g.norm())


def objective_at(
    pair: Path, size: int, cache: ExtractorCache
) -> tuple[StyleObjective, torch.Tensor]:
    """The stage-2 objective of the pair (masks, Laplacian) and Luan's output at its size."""
    params = StyleParams(image_size=size, photo_weight=1.0)
    device = cache.device
    content, style = load(pair, "content.png", size), load(pair, "style.png", size)
    output = load(pair, "reference_output.png", size)
    output = torch.nn.functional.interpolate(output, size=content.shape[-2:], mode="bilinear")
    cmask, smask = (to_tensor(Image.open(pair / f).convert("RGB")) for f in
                    ("content_seg.png", "style_seg.png"))  # fmt: skip
    content, style = content.to(device), style.to(device)
    masks, _ = prepare_masks(cmask, smask, content, style)
    objective, _ = segment_objective(cache.get(params), Segment(2, size, params), params,
                                     content, style, masks, {})  # fmt: skip
    return objective, output.to(device)


def measure(pair: Path, size: int, cache: ExtractorCache) -> dict[str, float]:
    """Gradient norms at Luan's output image, ours (weighted) and his, and their ratios."""
    objective, output = objective_at(pair, size, cache)
    p = objective.params
    assert p.content_weight is not None  # resolved by StyleParams.__post_init__
    x = output.clone().requires_grad_(True)
    terms = objective(x)
    channels = [objective.style_targets[n].shape[-1] for n in p.style_layers]
    luan_style = sum(400.0 / n**2 * terms.style_layers[0, i] for i, n in enumerate(channels))
    content = grad_norm(terms.values["content"].sum(), x)
    phi = grad_norm(matting_energy(x, objective.laplacian).sum(), x)  # type: ignore[arg-type]
    n4m4 = float(objective.content_targets[p.content_layers[0]][0].numel())
    m = {
        "pixels": float(output.shape[-1] * output.shape[-2]),
        "content": p.content_weight * content,
        "style": p.style_weight * grad_norm(terms.values["style"].sum(), x),
        "photo": LUAN_LAMBDA * PHOTO_SCALE * phi,
        "luan content": 10.0 / n4m4 * content,
        "luan style": grad_norm(luan_style, x),
        "luan photo": LUAN_LAMBDA * phi,
    }
    for term in ("content", "style", "photo"):
        m[f"k {term}"] = m[term] / m[f"luan {term}"]
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--pairs", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cache = ExtractorCache(resolve_weights("vgg16", weights_spec("vgg16")), device, "fp32", "off")
    print(
        f"machine: {machine(device)}; vgg16 (shared trunk); gradient norms at Luan's output "
        f"resized; ours: a photo pair's defaults, photo_weight {LUAN_LAMBDA:g}; "
        f"PHOTO_SCALE {PHOTO_SCALE:g}"
    )
    heads = ["|∇αJc|", "|∇βJs|", "|∇λSΦ|", "Luan c", "Luan s", "Luan λΦ", "k c", "k s", "k p"]
    print(f"{'pair':>4} {'size':>5} {'pixels':>7} " + " ".join(f"{h:>9}" for h in heads))
    for size in args.sizes:
        ratios: dict[str, list[float]] = {}
        for number in args.pairs:
            m = measure(PHOTO / str(number), size, cache)
            for term in ("content", "style", "photo"):
                ratios.setdefault(term, []).append(m[f"k {term}"])
            row = " ".join(f"{m[c]:9.4g}" for c in COLUMNS[1:])
            print(f"{number:4d} {size:5d} {m['pixels']:7.0f} {row}", flush=True)
        for term, values in ratios.items():
            low, high = min(values), max(values)
            print(f"size {size}: ours/Luan's {term} gradient, median of {len(values)} pairs: "
                  f"{statistics.median(values):.4g} (range {low:.4g}-{high:.4g})")  # fmt: skip


if __name__ == "__main__":
    main()
