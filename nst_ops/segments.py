"""The parts of one pair's optimisation (Segment, plan) and their objectives: start image,
working-size images and masks, and the matting Laplacian of Luan et al. (2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.masks import MaskError, pair_masks, resize_masks
from nst_ops.matting import content_laplacian
from nst_ops.objective import Masks, StyleObjective
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures


def initial_image(params: StyleParams, content: Tensor, style: Tensor) -> Tensor:
    """The starting point (1, C, H, W) in [0,1] for init = content | random | style."""
    if params.init == "content":
        return content.clone(memory_format=torch.contiguous_format)
    if params.init == "style":
        size = content.shape[-2:]
        resized = F.interpolate(style, size=size, mode="bilinear", antialias=True)
        return resized.clamp(0, 1).contiguous()
    generator = torch.Generator(device="cpu").manual_seed(params.seed)
    noise = torch.rand(content.shape, generator=generator, dtype=content.dtype)
    return noise.to(content.device)


@dataclass(frozen=True)
class Segment:
    """One part of the optimisation: Luan's stage, the working long side, and the params
    (with this segment's iterations and photo weight)."""

    stage: int
    scale: int
    params: StyleParams


def plan(params: StyleParams) -> list[Segment]:
    """Segments in order. Multi-scale (`scales`): the iterations of the first stage are split
    evenly across the scales (the remainder to the finest), coarse to fine. With photo_weight > 0
    and photo_two_stage (Luan et al.): then `iterations` more at full size with the term."""
    two_stage = params.photo_weight > 0 and params.photo_two_stage
    first = params.replace(photo_weight=0.0) if two_stage else params
    scales = params.scale_sizes
    share, rest = divmod(first.iterations, len(scales))
    counts = [share] * (len(scales) - 1) + [share + rest]
    segments = [
        Segment(1, size, first.replace(iterations=n, scales=None))
        for size, n in zip(scales, counts, strict=True)
        if n > 0
    ]
    if two_stage:
        segments.append(Segment(2, params.image_size, params))
    return segments


def _rescale(image: Tensor, factor: float) -> Tensor:
    """(1, C, H, W) scaled by `factor` (antialiased bilinear); identity for factor 1."""
    if factor == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    return F.interpolate(image, size=size, mode="bilinear", antialias=True).clamp(0, 1)


def segment_objective(
    extractor: VGGFeatures,
    seg: Segment,
    params: StyleParams,
    content: Tensor,
    style: Tensor,
    masks: Masks | None,
    laplacians: dict[tuple[int, int], Tensor] | None,
) -> tuple[StyleObjective, tuple[int, int]]:
    """The objective of one segment, with images, masks and (when the pair uses the
    photorealism term: `laplacians` is a per-size cache) the Laplacian at its scale; and the
    image size (H, W) there."""
    factor = seg.scale / params.image_size
    c, st = _rescale(content, factor), _rescale(style, factor)
    if masks is not None and factor != 1.0:
        masks = Masks(
            resize_masks(masks.content, tuple(c.shape[-2:])),
            resize_masks(masks.style, tuple(st.shape[-2:])),
            masks.weights,
        )
    size = (c.shape[-2], c.shape[-1])
    laplacian = None
    if laplacians is not None:
        if size not in laplacians:
            laplacians[size] = content_laplacian(c)
        laplacian = laplacians[size]
    rgb = (c.expand(-1, 3, -1, -1), st.expand(-1, 3, -1, -1))
    return StyleObjective(extractor, seg.params, *rgb, masks, laplacian), size


def prepare_masks(
    content_mask: Tensor | None, style_mask: Tensor | None, content: Tensor, style: Tensor
) -> tuple[Masks | None, tuple[str, ...]]:
    if content_mask is None and style_mask is None:
        return None, ()
    if content_mask is None or style_mask is None:
        raise MaskError("masks: give both a content mask and a style mask, or neither")
    device = content.device
    c, s, weights, missing = pair_masks(
        content_mask.to(device),
        style_mask.to(device),
        (content.shape[-2], content.shape[-1]),
        (style.shape[-2], style.shape[-1]),
    )
    warnings = tuple(f"mask colour {name} is absent from the style mask" for name in missing)
    return Masks(c, s, weights), warnings
