"""Style transfer of one pair: Gatys et al. (2015), with Luan et al. (2017)'s semantic masks and
photorealism term as options.

One **iteration** is one objective-and-gradient evaluation (one forward + backward) for both
optimizers, so loss tables compare optimizers at equal compute. Row i of the loss log is the i-th
evaluation (row 0: the initial image); the last row is a forward-only evaluation of the returned
image. With Luan's two stages the rows are numbered continuously and carry their `stage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.color import combine_luminance, luminance, match_luminance
from nst_ops.drivers import Progress, ProgressCallback, Recorder, adam, evaluate, lbfgs
from nst_ops.guided import guided_filter
from nst_ops.masks import pair_masks, resize_masks
from nst_ops.matting import matting_laplacian, to_torch_sparse
from nst_ops.objective import Masks, StyleObjective
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures

__all__ = ["LossLog", "Progress", "ProgressCallback", "StyleResult", "stylize"]


@dataclass
class LossLog:
    """Columns of the loss table (one entry per row). Unweighted terms; total is weighted."""

    iteration: list[int] = field(default_factory=list)
    total_loss: list[float] = field(default_factory=list)
    content_loss: list[float] = field(default_factory=list)
    style_loss: list[float] = field(default_factory=list)
    tv_loss: list[float] = field(default_factory=list)
    photo_loss: list[float] = field(default_factory=list)
    stage: list[int] = field(default_factory=list)
    scale: list[int] = field(default_factory=list)
    style_layer_losses: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.iteration)


@dataclass(frozen=True)
class StyleResult:
    """image: (3, H, W) float32 on the CPU, RGB in [0,1]. warnings: e.g. mask colours present in
    the content mask but absent from the style mask (they get no style)."""

    image: Tensor
    losses: LossLog
    iterations_run: int
    reached_target: bool
    warnings: tuple[str, ...] = ()
    diverged_at: int | None = None  # row whose loss was non-finite; image = best finite one


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
        Segment(1, size, first.replace(iterations=n))
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


def stylize(
    content: Tensor,
    style: Tensor,
    params: StyleParams,
    extractor: VGGFeatures,
    callback: ProgressCallback | None = None,
    content_mask: Tensor | None = None,
    style_mask: Tensor | None = None,
) -> StyleResult:
    """Stylize `content` (3, H, W) with `style` (3, H_s, W_s), both RGB in [0,1] and already at
    working size (long side image_size); optional RGB colour-coded masks (3, h, w) of any size.
    Runs on the extractor's device. Raises ValueError for unusable masks."""
    device = extractor.mean.device
    content = content.to(device, torch.float32).unsqueeze(0)
    style = style.to(device, torch.float32).unsqueeze(0)
    if params.preserve_color == "luminance":
        # Gatys et al. 2016: transfer on luminance only, keep the content's chrominance.
        content_in = luminance(content)
        style_in = match_luminance(luminance(style), content_in)
    else:
        content_in, style_in = content, style
    masks, warnings = _masks(content_mask, style_mask, content, style)
    segments = plan(params)
    rec = Recorder(params, callback, sum(seg.params.iterations for seg in segments))
    x = initial_image(params, content_in, style_in[:, : content_in.shape[1]])
    laplacians: dict[tuple[int, int], Tensor] | None = {} if params.photo_weight > 0 else None
    for k, seg in enumerate(segments):
        objective, size = _objective(
            extractor, seg, params, content_in, style_in, masks, laplacians
        )
        if tuple(x.shape[-2:]) != size:  # coarse to fine: start from the upsampled result
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True).clamp(0, 1)
        rec.stage, rec.scale = seg.stage, seg.scale
        rec.target_active = k == len(segments) - 1
        x = (adam if params.optimizer == "adam" else lbfgs)(x, objective, seg.params, rec)
        if rec.reached or rec.diverged_at is not None:
            break
        if k == len(segments) - 1:
            terms, _ = evaluate(x, objective, grad=False)  # last row: the returned image
            rec.record(terms, x)
    if tuple(x.shape[-2:]) != tuple(content.shape[-2:]):  # stopped early at a coarse scale
        x = F.interpolate(x, size=content.shape[-2:], mode="bilinear")
    image = _finish(x.clamp(0, 1), content, params)
    log = _to_log(rec, params.style_layers)
    return StyleResult(
        image[0].cpu(), log, log.iteration[-1], rec.reached, warnings, rec.diverged_at
    )


def _objective(
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
            laplacians[size] = _laplacian(c)
        laplacian = laplacians[size]
    rgb = (c.expand(-1, 3, -1, -1), st.expand(-1, 3, -1, -1))
    return StyleObjective(extractor, seg.params, *rgb, masks, laplacian), size


def _masks(
    content_mask: Tensor | None, style_mask: Tensor | None, content: Tensor, style: Tensor
) -> tuple[Masks | None, tuple[str, ...]]:
    if content_mask is None and style_mask is None:
        return None, ()
    if content_mask is None or style_mask is None:
        raise ValueError("masks: give both a content mask and a style mask, or neither")
    device = content.device
    c, s, weights, missing = pair_masks(
        content_mask.to(device),
        style_mask.to(device),
        (content.shape[-2], content.shape[-1]),
        (style.shape[-2], style.shape[-1]),
    )
    warnings = tuple(f"mask colour {name} is absent from the style mask" for name in missing)
    return Masks(c, s, weights), warnings


def _laplacian(content: Tensor) -> Tensor:
    """Matting Laplacian of the content (1, C, H, W) as a sparse tensor on its device."""
    rgb = content.expand(-1, 3, -1, -1)[0].permute(1, 2, 0).double().cpu().numpy()
    return to_torch_sparse(matting_laplacian(np.ascontiguousarray(rgb)), content.device)


def _finish(x: Tensor, content: Tensor, params: StyleParams) -> Tensor:
    """Recolour a luminance result; apply the optional guided-filter post-processing."""
    image = combine_luminance(x, content) if x.shape[1] == 1 else x
    if params.photo_postprocess == "guided":
        image = guided_filter(content, image)
    return image


def _to_log(rec: Recorder, style_layers: tuple[str, ...]) -> LossLog:
    log = LossLog()
    rows = torch.stack(rec.rows).double().cpu().tolist()
    for i, (row, stage, scale, elapsed) in enumerate(
        zip(rows, rec.stages, rec.scales, rec.times, strict=True)
    ):
        log.iteration.append(i)
        log.total_loss.append(row[0])
        log.content_loss.append(row[1])
        log.style_loss.append(row[2])
        log.tv_loss.append(row[3])
        log.photo_loss.append(row[4])
        log.stage.append(stage)
        log.scale.append(scale)
        log.style_layer_losses.append(dict(zip(style_layers, row[5:], strict=True)))
        log.elapsed_s.append(elapsed)
    return log
