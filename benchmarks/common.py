"""Shared helpers of the benchmarks: weights, images, machine description."""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from nst_ops.vgg import MODELS
from workflows.errors import InputError
from workflows.images import load_image, to_png
from workflows.weights import ResolvedWeights, resolve_weights

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NST_SHARED", REPO.parent / "shared"))
WEIGHTS = os.environ.get("NST_WEIGHTS", str(SHARED / "models" / "vgg16-hed-features.pth"))


def weights_spec(model: str) -> str:
    """The shared VGG16 trunk offline; `random` for VGG19 (speed does not depend on weights)."""
    return WEIGHTS if model == "vgg16" and Path(WEIGHTS).exists() else "random"


def add_weights_args(parser: argparse.ArgumentParser) -> None:
    """`--model` and `--weights` for a quality benchmark, as `nst run` takes them."""
    parser.add_argument("--model", choices=MODELS, default="vgg16")
    parser.add_argument(
        "--weights",
        help="imagenet, random, or a state dict's path/URI (default: the shared VGG16 trunk "
        "for vgg16, imagenet for vgg19)",
    )


def chosen_weights(args: argparse.Namespace) -> tuple[ResolvedWeights, str]:
    """The weights of `--model`/`--weights` (exits with the one-line reason when they cannot
    be had) and a file-name tag: "" for the default (vgg16, the shared trunk), else
    `_{model}_{source}`, so that cached stages of one network are never reused for another."""
    default = args.weights is None
    spec = args.weights or (weights_spec(args.model) if args.model == "vgg16" else "imagenet")
    try:
        weights = resolve_weights(args.model, spec)
    except InputError as e:
        sys.exit(f"error: {e}")
    if default and args.model == "vgg16":
        return weights, ""
    source = spec if spec in ("imagenet", "random") else weights.identity.split(":")[-1]
    return weights, f"_{args.model}_{source}"


def example_image(kind: str, name: str, size: int) -> torch.Tensor:
    """examples/{kind}/{name}.jpg (kind "content" or "style") as (3, H, W) in [0,1], long side
    `size`."""
    return load_image(str(REPO / "examples" / kind / f"{name}.jpg"), size)


def example_pair(
    size: int, style: str, content: str = "tubingen"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A bundled content and style image, each (3, H, W) in [0,1], long side `size`."""
    return example_image("content", content, size), example_image("style", style, size)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def matmul_flops_per_s(device: torch.device, n: int = 2048, repeat: int = 10) -> float:
    """Measured fp32 matmul rate of this machine (FLOP/s)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    sync(device)
    return 2 * n**3 * repeat / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def contact_sheet(
    images: list[list[torch.Tensor]], path: Path, tile: int = 256, enlarge: bool = False
) -> None:
    """One PNG: a row per pair, a column per variant, each image (3, H, W) in [0,1] fitted into
    a tile × tile cell (shrunk smoothly; with `enlarge` small images are also enlarged, nearest,
    so that tiny outputs stay visible)."""
    cols = max(len(r) for r in images)
    sheet = Image.new("RGB", (cols * tile, len(images) * tile), "white")
    for i, row in enumerate(images):
        for j, image in enumerate(row):
            pil: Image.Image = Image.open(io.BytesIO(to_png(image)))
            if enlarge:
                scale = tile / max(pil.size)
                size = (round(pil.width * scale), round(pil.height * scale))
                pil = pil.resize(size, Image.Resampling.NEAREST)
            else:
                pil.thumbnail((tile, tile))
            sheet.paste(pil, (j * tile, i * tile))
    sheet.save(path)
