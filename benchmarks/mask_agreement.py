"""How well automatic masks (nst_ops.automask) agree with Luan's hand-drawn ones.

Mean IoU after the best one-to-one matching of labels: the IoU of every (auto label, hand
colour) pair is summed over *both* images of the pair (content and style share their labels,
so one matching serves both: a content region matched to the wrong style region costs IoU);
the Hungarian assignment maximises the total; each hand colour present in either mask scores the
IoU of its matched auto label (0 when none is left); the mean is over those hand colours.
Pixels of no palette colour in the hand mask are left out. The ceiling with K auto labels and
L > K hand colours is K/L.

    python -m benchmarks.mask_agreement [--size 256] [--regions 2 3 4] [--sheet FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment

from benchmarks.common import contact_sheet, machine, weights_spec
from benchmarks.photo_pairs import PHOTO, load
from nst_ops.automask import auto_masks
from nst_ops.masks import COLOURS, decode_mask
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures
from workflows.extractors import ExtractorCache
from workflows.images import to_tensor
from workflows.weights import resolve_weights


def labels_of(mask: torch.Tensor) -> torch.Tensor:
    """Colour-coded mask (3, H, W) → palette index (H, W), -1 where no palette colour."""
    decoded = decode_mask(mask)
    labels = decoded.argmax(0)
    labels[decoded.sum(0) == 0] = -1
    return labels


def hand_mask(pair: Path, name: str, size: tuple[int, int]) -> torch.Tensor:
    """The pair's hand mask `name` at (H, W) (nearest: keeps the palette colours)."""
    image = Image.open(pair / name).convert("RGB")
    return to_tensor(image.resize((size[1], size[0]), Image.Resampling.NEAREST))


def mean_iou(auto: list[torch.Tensor], hand: list[torch.Tensor]) -> float:
    """Label maps (H, W) of the same images, auto (≥ 0) and hand (-1: unlabelled) → mean IoU
    over the hand colours after the best one-to-one matching (the module's docstring)."""
    k, n = len(COLOURS), len(COLOURS)
    inter, union = np.zeros((k, n)), np.zeros((k, n))
    present: set[int] = set()
    for a, h in zip(auto, hand, strict=True):
        keep = h >= 0
        a, h = a[keep].numpy(), h[keep].numpy()
        present |= set(np.unique(h).tolist())
        for i in range(k):
            for j in range(n):
                inter[i, j] += np.sum((a == i) & (h == j))
                union[i, j] += np.sum((a == i) | (h == j))
    cols = sorted(present)
    iou = inter[:, cols] / np.maximum(union[:, cols], 1)
    rows, matched = linear_sum_assignment(-iou)
    return float(iou[rows, matched].sum() / len(cols))


def auto_pair_masks(
    extractor: VGGFeatures, pair: Path, size: int, regions: int
) -> tuple[list[torch.Tensor], float]:
    """[content, style] auto masks (3, H, W) of a pair at `size` and the seconds they took."""
    content, style = (load(pair, n, size) for n in ("content.png", "style.png"))
    device = extractor.mean.device
    start = time.perf_counter()
    masks = auto_masks(extractor, content[None].to(device), style[None].to(device), regions)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return [m.cpu() for m in masks], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--regions", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sheet", help="contact sheet: content, hand, auto, style, hand, auto")
    args = parser.parse_args()
    device = torch.device(args.device)
    cache = ExtractorCache(resolve_weights("vgg16", weights_spec("vgg16")), device, "fp32")
    extractor = cache.get(StyleParams())  # the default style layers reach relu5_1
    print(f"machine: {machine(device)}; vgg16 (shared trunk) at {args.size} px; pairs 1-8")
    sheet = []
    shown = (
        StyleParams().mask_regions
        if StyleParams().mask_regions in args.regions
        else args.regions[0]
    )
    for regions in args.regions:
        scores, seconds = [], []
        for n in range(1, 9):
            pair = PHOTO / str(n)
            masks, took = auto_pair_masks(extractor, pair, args.size, regions)
            hand = [hand_mask(pair, f"{s}_seg.png", tuple(m.shape[-2:]))
                    for s, m in zip(("content", "style"), masks, strict=True)]  # fmt: skip
            scores.append(mean_iou([labels_of(m) for m in masks], [labels_of(h) for h in hand]))
            seconds.append(took)
            if args.sheet and regions == shown:
                c, s = (load(pair, f, args.size) for f in ("content.png", "style.png"))
                sheet.append([c, hand[0], masks[0], s, hand[1], masks[1]])
        per_pair = " ".join(f"{s:.2f}" for s in scores)
        print(f"regions {regions}: mean IoU {np.mean(scores):.3f} (pairs 1-8: {per_pair}); "
              f"{np.mean(seconds):.2f} s a pair")  # fmt: skip
    if args.sheet:
        contact_sheet(sheet, Path(args.sheet), tile=160)


if __name__ == "__main__":
    main()
