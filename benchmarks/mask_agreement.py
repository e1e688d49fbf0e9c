"""How well automatic masks (nst_ops.automask) agree with Luan's hand-drawn ones (pairs 1–8)
and with the face pair's (examples/face, drawn for this project; `--pairs face`).

Mean IoU after the best one-to-one matching of labels: the IoU of every (auto label, hand
colour) pair is summed over *both* images of the pair (content and style share their labels,
so one matching serves both: a content region matched to the wrong style region costs IoU);
the Hungarian assignment maximises the total; each hand colour present in either mask scores the
IoU of its matched auto label (0 when none is left); the mean is over those hand colours.
Pixels of no palette colour in the hand mask are left out. The ceiling with K auto labels and
L > K hand colours is K/L.

`--transfer` also scores what a pair of masks does to colour, in seconds rather than the
photo pipeline's minutes: the `match` post-process (nst_ops.postprocess.distribution_match,
γ = 1) applied to the content image itself with those masks, scored by
../shared/tools/photo_metrics.py with the *hand* masks (seg_color, seg_w1), beside the same
with the hand masks and with no masks (the whole style). A stand-in for the pipeline's seg_w1
to try methods by, not a replacement: on pairs 1–8 at 256 px it orders hand masks, today's
auto masks and the earlier one-to-one matching as the 200 + 200 iteration pipeline does, and
ranks the pairs alike (Spearman 0.88 and 0.95; benchmarks/RESULTS.md, "Automatic masks",
2026-12-07).

    python -m benchmarks.mask_agreement [--size 256] [--regions 2 3 4] [--sheet FILE]
        [--transfer] [--pairs 1 2 ... 8 face] [--model vgg16|vgg19] [--weights imagenet|URI]

`--model`/`--weights` as `nst run` takes them (default: vgg16 with the shared trunk; `--model
vgg19` alone means torchvision's ImageNet weights, the product's default network).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment

from benchmarks.common import add_weights_args, chosen_weights, contact_sheet, machine
from benchmarks.photo_pairs import PAIRS, load, pair_folder
from benchmarks.photo_scores import scores as photo_scores
from nst_ops.automask import auto_masks
from nst_ops.masks import COLOURS, decode_mask
from nst_ops.matting import content_laplacian
from nst_ops.params import StyleParams
from nst_ops.postprocess import SMOOTH_EPS, color_targets, distribution_match
from nst_ops.segments import prepare_masks
from nst_ops.vgg import VGGFeatures
from workflows.extractors import ExtractorCache
from workflows.images import to_png, to_tensor


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


def hand_masks(pair: Path, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The pair's [content, style] hand masks at the sizes of `like` ((3, H, W) each)."""
    return [hand_mask(pair, f"{side}_seg.png", (image.shape[-2], image.shape[-1]))
            for side, image in zip(("content", "style"), like, strict=True)]  # fmt: skip


def mean_iou(auto: list[torch.Tensor], hand: list[torch.Tensor]) -> float:
    """Label maps (H, W) of the same images, auto (≥ 0) and hand (-1: unlabelled) → mean IoU
    over the hand colours after the best one-to-one matching (the module's docstring)."""
    k, n = len(COLOURS), len(COLOURS)
    inter, union = np.zeros((k, n)), np.zeros((k, n))
    present: set[int] = set()
    for auto_labels, hand_labels in zip(auto, hand, strict=True):
        keep = hand_labels >= 0
        a, h = auto_labels[keep].numpy(), hand_labels[keep].numpy()
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


def written_auto_masks(extractor: VGGFeatures, pair: Path, number: str, size: int,
                       regions: int, out: Path) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The pair's (content, style) auto masks (3, H, W) at `size`, written to `out` as
    {number}_auto_{content,style}_seg.png; their seconds and mean IoU printed."""
    (cmask, smask), took = auto_pair_masks(extractor, pair, size, regions)
    hand = hand_masks(pair, (cmask, smask))
    iou = mean_iou([labels_of(cmask), labels_of(smask)], [labels_of(h) for h in hand])
    print(f"  {number} auto masks ({regions} regions): {took:.2f} s, mean IoU {iou:.3f}")
    for side, mask in (("content", cmask), ("style", smask)):
        (out / f"{number}_auto_{side}_seg.png").write_bytes(to_png(mask))
    return cmask, smask


def transfer_scores(
    pair: Path,
    images: tuple[torch.Tensor, torch.Tensor],
    masks: list[torch.Tensor] | None,
    folder: Path,
) -> tuple[float, float]:
    """(seg_color, seg_w1) of the pair's content after the `match` post-process with masks
    [content, style] (3, H, W) (None: the whole style), scored with the hand masks (the
    module's docstring); images: the pair's (content, style) (3, H, W) at the working size."""
    content, style = (image[None] for image in images)
    prepared = None if masks is None else prepare_masks(masks[0], masks[1], content, style)[0]
    targets = color_targets(prepared, style, (content.shape[-2], content.shape[-1]), 1.0)
    laplacian = content_laplacian(content, SMOOTH_EPS)
    image = content if targets is None else distribution_match(content, laplacian, targets)
    path = folder / f"{pair.name}.png"
    path.write_bytes(to_png(image[0]))
    _, seg_color, seg_w1, _ = photo_scores(pair, path)
    return seg_color, seg_w1


def transfer_baselines(pairs: list[str], size: int, folder: Path) -> None:
    """`--transfer`'s references: the hand masks and no masks, on `pairs`."""
    for name, use_hand in (("hand masks", True), ("no masks", False)):
        rows = []
        for n in pairs:
            pair = pair_folder(n, folder)
            images = load(pair, "content.png", size), load(pair, "style.png", size)
            hand = hand_masks(pair, images) if use_hand else None
            rows.append(transfer_scores(pair, images, hand, folder))
        print(transfer_line(name, rows))


def transfer_line(name: str, rows: list[tuple[float, float]]) -> str:
    seg_color, seg_w1 = np.mean(rows, axis=0)
    per_pair = " ".join(f"{r[1]:.2f}" for r in rows)
    return f"  transfer, {name}: seg_color {seg_color:.2f}, seg_w1 {seg_w1:.2f} ({per_pair})"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--regions", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--pairs", nargs="+", default=PAIRS[:8], choices=PAIRS,
                        help="Luan's pairs 1-8 (the default) and the face pair")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    add_weights_args(parser)
    parser.add_argument("--sheet", help="contact sheet: content, hand, auto, style, hand, auto; "
                        "a row per pair and --regions value")  # fmt: skip
    parser.add_argument(
        "--transfer", action="store_true", help="also score the masks by `match` on the content"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    weights, _ = chosen_weights(args)
    extractor = ExtractorCache(weights, device, "fp32").get(StyleParams())  # reaches relu5_1
    pairs = " ".join(args.pairs)
    network = f"{args.model} ({weights.identity})"
    print(f"machine: {machine(device)}; {network} at {args.size} px; pairs {pairs}")
    sheet: list[list[torch.Tensor]] = []
    with tempfile.TemporaryDirectory() as folder:
        if args.transfer:
            transfer_baselines(args.pairs, args.size, Path(folder))
        for regions in args.regions:
            sheet += score_regions(extractor, args, regions, Path(folder))
    if args.sheet:
        contact_sheet(sheet, Path(args.sheet), tile=160)


def score_regions(extractor: VGGFeatures, args: argparse.Namespace, regions: int,
                  folder: Path) -> list[list[torch.Tensor]]:  # fmt: skip
    """Mean IoU (and `--transfer` scores) of the auto masks with `regions` on --pairs,
    printed; the contact-sheet rows (content, hand, auto, style, hand, auto)."""
    scores, seconds, transfer, sheet = [], [], [], []
    for n in args.pairs:
        pair = pair_folder(n, folder)
        masks, took = auto_pair_masks(extractor, pair, args.size, regions)
        hand = hand_masks(pair, masks)
        scores.append(mean_iou([labels_of(m) for m in masks], [labels_of(h) for h in hand]))
        seconds.append(took)
        if not (args.transfer or args.sheet):
            continue
        c, s = (load(pair, f, args.size) for f in ("content.png", "style.png"))
        if args.transfer:
            transfer.append(transfer_scores(pair, (c, s), masks, folder))
        sheet.append([c, hand[0], masks[0], s, hand[1], masks[1]])
    per_pair = " ".join(f"{s:.2f}" for s in scores)
    print(f"regions {regions}: mean IoU {np.mean(scores):.3f} (pairs: {per_pair}); "
          f"{np.mean(seconds):.2f} s a pair")  # fmt: skip
    if transfer:
        print(transfer_line(f"auto masks ({regions} regions)", transfer))
    return sheet


if __name__ == "__main__":
    main()
