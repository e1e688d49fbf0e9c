"""One (content, style, params) pair's inputs: read, decode, resize and check its images and
masks (`load_pair`), and stylize loaded pairs (`stylize_loaded`), with unusable input reported
as InputError naming the file. Shared by `nst stylize` and the batch worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image

from manifests.schema import AUTO_MASK
from nst_ops.automask import FEATURE_LAYERS, auto_masks
from nst_ops.masks import MaskError
from nst_ops.optimize import Pair, StyleResult, stylize_batch
from nst_ops.params import StyleParams
from nst_ops.recorder import ProgressCallback
from nst_ops.vgg import VGGFeatures, min_side
from nst_ops.yardstick import DEFAULTS as YARDSTICK_PARAMS
from workflows.errors import InputError
from workflows.extractors import ExtractorCache
from workflows.images import (
    DEFAULT_MAX_PIXELS,
    decode_image,
    long_side_size,
    resize_long_side,
    to_tensor,
)
from workflows.storage import StorageOptions, read_bytes


@dataclass(frozen=True)
class PairInput:
    """What to load for one pair: its images' and masks' URIs and its parameters."""

    content_uri: str
    style_uri: str
    params: StyleParams
    content_mask_uri: str | None = None
    style_mask_uri: str | None = None


@dataclass(frozen=True)
class LoadedPair:
    """A pair's tensors at working size (`pair`) and the decoded originals (for the
    yardstick, which measures at its own size)."""

    pair: Pair
    content_image: Image.Image
    style_image: Image.Image
    source: PairInput
    # mask URIs `auto`: the masks computed for this pair (colour-coded, (3, H, W) and
    # (3, H_s, W_s), on the CPU) and the seconds that took
    auto_masks: tuple[torch.Tensor, torch.Tensor] | None = None
    auto_mask_s: float | None = None


def load_pair(
    pair: PairInput,
    extractors: ExtractorCache,
    options: StorageOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    yardstick_size: int = 0,
    callback: ProgressCallback | None = None,
    snapshot_every: int = 0,
) -> LoadedPair:
    """Read, decode, resize and check a pair's images and masks. InputError when unusable.
    `snapshot_every`: nst_ops.optimize.Pair's (images kept for the yardstick at checkpoints)."""
    p = pair.params
    extractor = extractors.get(p)
    style_side = max(16, round(p.image_size * p.style_scale))
    side = min(yardstick_size, p.image_size)  # the worker's yardstick: the output is no larger
    content_image = _decode(pair.content_uri, options, max_pixels, max(p.image_size, side))
    style_image = _decode(pair.style_uri, options, max_pixels, max(style_side, side))
    content = to_tensor(resize_long_side(content_image, p.image_size))
    style = to_tensor(resize_long_side(style_image, style_side))
    factor = min(p.scale_sizes) / p.image_size
    where = "at working size" if factor == 1 else "at the coarsest scale"
    for uri, image in ((pair.content_uri, content), (pair.style_uri, style)):
        h, w = image.shape[-2:]
        small = max(1, round(w * factor)), max(1, round(h * factor))
        _check_size(
            uri, small, extractor, where, "raise image_size, style_scale or the coarsest scale"
        )
    if yardstick_size > 0:  # refused before the optimisation, not after it
        _check_yardstick(pair, (content_image, style_image), extractors, yardstick_size, side)
    if pair.content_mask_uri == AUTO_MASK and pair.style_mask_uri == AUTO_MASK:
        start = time.perf_counter()
        masks = _auto_masks(pair, extractors, content, style)
        took = time.perf_counter() - start
        tensors = Pair(content, style, p, *masks, callback, snapshot_every)
        return LoadedPair(tensors, content_image, style_image, pair, masks, took)
    content_mask = _load_mask(pair.content_mask_uri, p.image_size, options, max_pixels)
    style_mask = _load_mask(pair.style_mask_uri, style_side, options, max_pixels)
    tensors = Pair(content, style, p, content_mask, style_mask, callback, snapshot_every)
    return LoadedPair(tensors, content_image, style_image, pair)


def _check_yardstick(
    pair: PairInput,
    decoded: tuple[Image.Image, Image.Image],
    extractors: ExtractorCache,
    yardstick_size: int,
    side: int,
) -> None:
    """InputError when the content or style image (decoded, full size) is too small for the
    yardstick's deepest layer at `side` px (the yardstick's size, under `yardstick_size`)."""
    where = f"at --yardstick-size {side}" if side == yardstick_size else (
        f"at the yardstick's {side} px (image_size, under --yardstick-size {yardstick_size})"
    )  # fmt: skip
    deepest = extractors.get(YARDSTICK_PARAMS)
    for uri, image in zip((pair.content_uri, pair.style_uri), decoded, strict=True):
        small = long_side_size(image.size, side)
        _check_size(uri, small, deepest, where, "raise --yardstick-size, or 0 for no yardstick")


def _auto_masks(
    pair: PairInput, extractors: ExtractorCache, content: torch.Tensor, style: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """nst_ops.automask's masks of the working-size content (3, H, W) and style, on the
    compute device, with the pair's model and pooling; back on the CPU."""
    p = pair.params
    extractor = extractors.reaching(FEATURE_LAYERS[-1], p.pooling)
    for uri, image in ((pair.content_uri, content), (pair.style_uri, style)):
        h, w = image.shape[-2:]
        _check_size(uri, (w, h), extractor, "at working size",
                    "raise image_size or style_scale, or give masks")  # fmt: skip
    device = extractors.device
    masks = auto_masks(extractor, content[None].to(device), style[None].to(device), p.mask_regions)
    return masks[0].cpu(), masks[1].cpu()


def stylize_loaded(pairs: list[LoadedPair], extractors: ExtractorCache) -> list[StyleResult]:
    """Stylize pairs that form one batch (nst_ops.optimize.batch_groups) together."""
    try:
        extractor = extractors.get(pairs[0].pair.params)
        return stylize_batch([p.pair for p in pairs], extractor, extractors.evaluator)
    except MaskError as e:  # masks are checked when the optimisation starts
        if e.column == "content_mask_uri":
            raise InputError(f"{pairs[0].source.content_mask_uri}: {e}") from None
        raise InputError(str(e)) from None


def _decode(
    uri: str, options: StorageOptions | None, max_pixels: int, draft: int | None = None
) -> Image.Image:
    return decode_image(read_bytes(uri, options), uri, max_pixels, draft)


def _load_mask(
    uri: str | None, long_side: int, options: StorageOptions | None, max_pixels: int
) -> torch.Tensor | None:
    """Colour-coded mask → (3, h, w) at about the working size (nearest: keeps palette colours)."""
    if not uri:
        return None
    image = _decode(uri, options, max_pixels)
    w, h = image.size
    scale = min(1.0, 2 * long_side / max(w, h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = image.resize(size, Image.Resampling.NEAREST)
    return to_tensor(image)


def _check_size(
    uri: str, size: tuple[int, int], extractor: VGGFeatures, where: str, remedy: str
) -> None:
    """Each pooling halves the image: the extractor's deepest layer needs a short side of
    2^pools px; InputError naming the file when the image of `size` (w, h) is smaller."""
    need = min_side(extractor.model_name, extractor.names[-1])
    if min(size) < need:
        raise InputError(
            f"{uri}: {size[0]}x{size[1]} px {where} is too small for layer "
            f"{extractor.names[-1]} (short side must be >= {need} px; {remedy})"
        )
