"""Photorealistic transfer against Luan et al.'s published outputs (issues 14 and 33).

For each pair (benchmarks.photo_pairs: Luan's examples 1–8 with his reference_output.png, and
the face pair, which has none): stage 1 (`--iterations` L-BFGS without the photo term, from the
content), then for each photo weight stage 2 (`--iterations` more with it, from stage 1's
image) — exactly what `nst stylize --photo-weight W` runs, with stage 1 shared between the
weights — then each post-process. Every output is scored with ../shared/tools/photo_metrics.py
(edge_corr ↑, seg_color ↓, seg_w1 ↓, affine_residual ↓; it needs scikit-image) beside Luan's
output resized to the same size, and Φ (the matting energy, as nst_ops.matting) of our stage-2
image beside Luan's; the tables give mean/median over the pairs with Luan's output, and the
face pair apart. `--stage1-too` also scores each post-process of the stage-1 image alone (no
stage 2: FastPhotoStyle's recipe; its `none` is stage 1's own output). `match` runs once per
`--mask-color-match` γ (default 1, the product's default), labelled `match` or `match{γ}`.
Prints the seconds of stage 2 and of every post-process. Writes the images, a contact sheet (a
row per pair: content, style, Luan, then each variant) and prints the tables. The stage-1 and
stage-2 images are kept in --out (stage1_*.pt, stage2_*.pt) and reused by a later run with the
same settings, so new post-processes cost no optimisation.

`--masks auto` replaces Luan's hand-drawn masks by nst_ops.automask's (K = `--regions`,
default StyleParams' mask_regions) computed at the working size, as `nst run` does for a
row whose mask URIs are `auto`; the masks are written ({pair}_auto_content_seg.png, …), shown
in the sheet after the style, and their agreement with the hand masks is printed
(benchmarks.mask_agreement). The scores still use the hand masks (photo_metrics' regions).

Configs: `photo` (what a plain `--photo-weight` run does: α = (256/size)², β = 1000, Luan's
relative layer weights ∝ 1/N_l², which weigh the colour-carrying low layers most); `equal`
(α = 1, β = 1000, equal layer weights); `luan` (Luan's whole objective in our units: the photo
defaults with α = 1.25·PHOTO_SCALE/(H·W) and his TV term, tv_weight = 32.8·PHOTO_SCALE).
`--content-factor c` gives `photo` α = c·1.25·PHOTO_SCALE/(H·W), c times Luan's content weight
(the defaults are c ≈ 4.6 for a 3:2 photo at every size).

    python -m benchmarks.photo_quality [--size 512] [--iterations 500] [--pairs 1 2 ... 8 face]
        [--configs photo equal luan] [--photo-weights 1e4] [--style-weight B] [--content-factor c]
        [--postprocess none affine smooth guided match] [--mask-color-match 1] [--stage1-too]
        [--masks hand|auto] [--regions K] [--out runs/photo_quality]
        [--device cuda] [--model vgg16|vgg19] [--weights imagenet|random|URI]

`--model`/`--weights` as `nst run` takes them (default: vgg16 with the shared trunk; `--model
vgg19` alone means torchvision's ImageNet weights, downloaded once into torch's cache; a
network other than the default tags the cached stages' names, so none is reused across
networks).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import add_weights_args, chosen_weights, contact_sheet, machine
from benchmarks.mask_agreement import written_auto_masks
from benchmarks.photo_pairs import PAIRS, has_reference, load, pair_folder
from benchmarks.photo_scores import record, score_folder, table
from benchmarks.stage_cache import Stages
from nst_ops.matting import PHOTO_SCALE, content_laplacian, matting_energy
from nst_ops.objective import Masks
from nst_ops.params import StyleParams
from nst_ops.postprocess import SMOOTH_EPS, color_targets, refine
from nst_ops.segments import prepare_masks
from workflows.extractors import ExtractorCache
from workflows.images import to_png

LUAN_LAMBDA = 1e4  # his photo weight λ


def config_params(name: str, content: torch.Tensor, size: int, iterations: int,
                  style_weight: float | None = None,
                  content_factor: float | None = None) -> StyleParams:  # fmt: skip
    """Stage-1 params of a config (photo weight 0, no post-processing: the benchmark applies
    each post-process itself) for this content image (3, H, W); `style_weight` replaces the
    default β of `photo` and `equal`; `content_factor` c sets α = c·1.25·k/(H·W), c times
    Luan's content weight in our units."""
    beta: dict[str, Any] = {} if style_weight is None else {"style_weight": style_weight}
    base = StyleParams(image_size=size, iterations=iterations, photo_postprocess="none", **beta)
    if name == "equal":  # the defaults of an artistic pair: α = 1, equal layer weights
        return base.replace(style_layer_weights=(0.2,) * 5)
    # a photo pair's defaults (nst_ops.params): Luan's relative layer weights ∝ 1/N_l²
    photo = StyleParams(image_size=size, iterations=iterations, photo_weight=1.0,
                        photo_postprocess="none", **beta).replace(photo_weight=0.0)  # fmt: skip
    # with α = 1.25·k/(H·W) the photo defaults are k = PHOTO_SCALE times Luan's objective
    # (nst_ops.matting)
    alpha = 1.25 * PHOTO_SCALE / (content.shape[1] * content.shape[2])
    if name == "photo":
        if content_factor is None:
            return photo
        return photo.replace(content_weight=content_factor * alpha)
    # luan: plus his TV (3.28·N₄M₄ in units where α = 1, issue 14) times k
    return photo.replace(content_weight=alpha, tv_weight=32.8 * PHOTO_SCALE)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=500, help="per stage")
    parser.add_argument("--pairs", nargs="+", default=PAIRS, choices=PAIRS,
                        help="Luan's examples 1-8 and the face pair (default: all)")  # fmt: skip
    parser.add_argument("--configs", nargs="+", default=["photo"],
                        choices=["photo", "equal", "luan"])  # fmt: skip
    parser.add_argument("--photo-weights", type=float, nargs="+", default=[1e4])
    parser.add_argument("--style-weight", type=float, help="β of photo/equal (default: ours)")
    parser.add_argument("--content-factor", type=float,
                        help="photo: α = this × Luan's (default: the photo defaults')")  # fmt: skip
    parser.add_argument("--postprocess", nargs="+", default=["none", "smooth", "match"])
    parser.add_argument("--mask-color-match", type=float, nargs="+", default=[1.0],
                        help="match: each γ of mask_color_match")  # fmt: skip
    parser.add_argument("--out", default="runs/photo_quality")
    parser.add_argument("--masks", choices=["hand", "auto"], default="hand")
    parser.add_argument(
        "--regions", type=int, default=StyleParams().mask_regions, help="--masks auto: K"
    )
    parser.add_argument("--device", default="cpu")
    add_weights_args(parser)
    parser.add_argument("--stage1-too", action="store_true",
                        help="also post-process the stage-1 image (no stage 2)")  # fmt: skip
    parser.add_argument("--no-metrics", action="store_true", help="images only (no skimage)")
    parser.add_argument("--score-only", action="store_true",
                        help="score the images already in --out (made elsewhere)")  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device, out = torch.device(args.device), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.score_only:
        score_folder(out, [pair_folder(name, out) for name in args.pairs])
        return
    weights, args.network_tag = chosen_weights(args)
    cache = ExtractorCache(weights, device, "fp32")
    variants = [(c, w, p) for c in args.configs
                for w in ([LUAN_LAMBDA] if c == "luan" else args.photo_weights)
                for p in postprocesses(args)]  # fmt: skip
    print(
        f"machine: {machine(device)}; {args.model} ({weights.identity}) at {args.size} px; "
        f"{args.iterations} + {args.iterations} L-BFGS iterations; pairs {args.pairs}"
    )
    groups: dict[str, dict[str, list[tuple[float, ...]]]] = {}
    sheet: list[list[torch.Tensor]] = []
    for name in args.pairs:
        pair = pair_folder(name, out)
        group = "pairs with Luan's output" if has_reference(pair) else f"pair {name}"
        sheet.append(run_pair(pair, name, args, cache, variants, groups.setdefault(group, {}),
                              out))  # fmt: skip
    for group, rows in groups.items():
        print(f"\n{group}:\n" + table(rows))
    contact_sheet(sheet, out / "sheet.png")
    print(f"images and sheet.png in {out}")


def reference(pair: Path, number: str, content: torch.Tensor, laplacian: torch.Tensor,
              rows: dict[str, list[tuple[float, ...]]], args: argparse.Namespace,
              out: Path) -> torch.Tensor:  # fmt: skip
    """Luan's published output resized to the content's size (3, H, W), scored, with its Φ."""
    luan = load(pair, "reference_output.png", args.size)
    luan = torch.nn.functional.interpolate(luan[None], size=content.shape[-2:], mode="bilinear")[0]
    luan_path = out / f"{number}_luan.png"
    luan_path.write_bytes(to_png(luan))
    luan_phi = float(matting_energy(luan[None].to(laplacian.device), laplacian)[0])
    record(rows, "Luan (reference_output, resized)", pair, luan_path, luan_phi, args)
    return luan


def weights_tag(args: argparse.Namespace) -> str:
    """The cached stages' file-name part for `--model`/`--weights` (benchmarks.common's
    chosen_weights), `--style-weight` and `--content-factor`."""
    network: str = args.network_tag
    beta = "" if args.style_weight is None else f"_b{args.style_weight:g}"
    return network + beta + ("" if args.content_factor is None else f"_c{args.content_factor:g}")


def run_pair(pair: Path, number: str, args: argparse.Namespace, cache: ExtractorCache,
             variants: list[tuple[str, object, str]], rows: dict[str, list[tuple[float, ...]]],
             out: Path) -> list[torch.Tensor]:  # fmt: skip
    """All variants of one pair; adds their scores to `rows`; returns its sheet row."""
    names = ("content.png", "style.png", "content_seg.png", "style_seg.png")
    content, style, cmask, smask = (load(pair, n, args.size) for n in names)
    tag, shown = "", []
    if args.masks == "auto":
        extractor = cache.get(StyleParams())
        cmask, smask = written_auto_masks(extractor, pair, number, args.size, args.regions, out)
        tag, shown = f"_auto{args.regions}", [cmask, smask]
    inputs = {"content": content, "style": style, "content_mask": cmask, "style_mask": smask}
    laplacian = content_laplacian(content[None].to(cache.device))  # Φ's, as the photo term's
    smoothing = content_laplacian(content[None].to(cache.device), SMOOTH_EPS)  # the post's
    on_device = (content[None].to(cache.device), style[None].to(cache.device))
    masks, _ = prepare_masks(cmask, smask, *on_device)
    images, stages = [content, style, *shown], Stages(cache, inputs)
    if has_reference(pair):
        images.append(reference(pair, number, content, laplacian, rows, args, out))
    suffix = f"_{args.size}_{args.iterations}"
    for config, weight, kind in variants:
        params = config_params(config, content, args.size, args.iterations, args.style_weight,
                               args.content_factor)  # fmt: skip
        saved = out / f"stage1_{number}_{config}{weights_tag(args)}{tag}{suffix}.pt"
        stages.stage1(config, params, saved)
        photo = float(weight)  # type: ignore[arg-type]
        second = saved.with_name(saved.name.replace("stage1_", f"stage2_{photo:g}_"))
        image, phi = stages.stage2(config, params.replace(photo_weight=photo), second)
        start = time.perf_counter()
        image = post(kind, content, style, masks, image, smoothing)
        print(f"  {number} {kind}: {time.perf_counter() - start:.2f} s", flush=True)
        path = out / f"{number}_{config}_{photo:.3g}_{kind}{tag}.png"
        path.write_bytes(to_png(image))
        masks_label = f" ({args.masks} masks)" if tag else ""
        record(rows, f"{config} λ={photo:.3g} {kind}{masks_label}", pair, path, phi, args)
        images.append(image)
    if args.stage1_too:
        images += stage1_variants(pair, number, args, (content, style, masks), stages.first,
                                  (laplacian, smoothing), rows, out)  # fmt: skip
    return images


def postprocesses(args: argparse.Namespace) -> list[str]:
    """The post-process variants: each --postprocess, and `match` once per --mask-color-match
    γ, labelled match (γ = 1, the default) or match{γ}."""
    kinds = [k for k in args.postprocess if k != "match"]
    if "match" in args.postprocess:
        kinds += ["match" if g == 1 else f"match{g:g}" for g in args.mask_color_match]
    return kinds


def post(label: str, content: torch.Tensor, style: torch.Tensor, masks: Masks | None,
         image: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The post-process variant `label` (`postprocesses`) of image (3, H, W), as stylize's
    _finish does it, `laplacian` the content's smoothing Laplacian (SMOOTH_EPS): (3, H, W)
    on the CPU."""
    kind, match = label, 1.0
    if label.startswith("match") and label != "match":
        kind, match = "match", float(label.removeprefix("match"))
    device = laplacian.device
    targets = color_targets(
        masks, style[None].to(device), (image.shape[-2], image.shape[-1]), match
    )
    refined = refine(kind, content[None].to(device), image[None].to(device), laplacian, targets)
    return refined[0].cpu()


def stage1_variants(pair: Path, number: str, args: argparse.Namespace,
                    inputs: tuple[torch.Tensor, torch.Tensor, Masks | None],
                    stage1: dict[str, torch.Tensor], laplacians: tuple[torch.Tensor, torch.Tensor],
                    rows: dict[str, list[tuple[float, ...]]],
                    out: Path) -> list[torch.Tensor]:  # fmt: skip
    """`--stage1-too`: each post-process applied to each config's stage-1 image, with no
    stage 2 (FastPhotoStyle's recipe: stylise, then smooth); Φ of the stage-1 image.
    `laplacians`: the photo term's (for Φ) and the smoothing's (SMOOTH_EPS)."""
    laplacian, smoothing = laplacians
    images = []
    for config in args.configs:
        if config not in stage1:
            continue
        first = stage1[config][None].to(laplacian.device)
        phi = float(matting_energy(first, laplacian)[0])
        for kind in postprocesses(args):
            image = post(kind, *inputs, first[0], smoothing)
            path = out / f"{number}_{config}_stage1_{kind}.png"
            path.write_bytes(to_png(image))
            record(rows, f"{config} stage 1 only, {kind}", pair, path, phi, args)
            images.append(image)
    return images


if __name__ == "__main__":
    main()
