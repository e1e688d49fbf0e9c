"""Style transfer of one pair: Gatys et al. (2015), with Luan et al. (2017)'s semantic masks and
photorealism term as options.

One **iteration** is one objective-and-gradient evaluation (one forward + backward) for both
optimizers, so loss tables compare optimizers at equal compute. Row i of the loss log is the i-th
evaluation (row 0: the initial image); the last row is a forward-only evaluation of the returned
image. With Luan's two stages the rows are numbered continuously and carry their `stage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.color import combine_luminance, luminance, match_luminance
from nst_ops.drivers import OPTIMIZER_TYPES, run
from nst_ops.evaluation import Evaluator
from nst_ops.objective import Masks, StyleObjective
from nst_ops.params import StyleParams, batch_key
from nst_ops.postprocess import color_targets, refine
from nst_ops.recorder import LossLog, Progress, ProgressCallback, Recorder, record_all
from nst_ops.segments import (
    Segment,
    initial_image,
    plan,
    prepare_masks,
    segment_objective,
)
from nst_ops.vgg import VGGFeatures

__all__ = [
    "LossLog",
    "Pair",
    "Progress",
    "ProgressCallback",
    "StyleResult",
    "batch_groups",
    "stylize",
    "stylize_batch",
]


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
    compile_s: float = 0.0  # seconds spent compiling during this run (shared by its batch)
    # with Pair.snapshot_every N: row → image as `image` (no post-process) at rows N, 2N, …
    snapshots: Mapping[int, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    """One pair of a batch: content (3, H, W) and style (3, H_s, W_s), RGB in [0,1] and already
    at working size (long side image_size); optional RGB colour-coded masks (3, h, w) of any
    size; a progress callback of its own."""

    content: Tensor
    style: Tensor
    params: StyleParams
    content_mask: Tensor | None = None
    style_mask: Tensor | None = None
    callback: ProgressCallback | None = None
    snapshot_every: int = 0  # > 0: StyleResult.snapshots at every snapshot_every-th row


def stylize(
    content: Tensor,
    style: Tensor,
    params: StyleParams,
    extractor: VGGFeatures,
    callback: ProgressCallback | None = None,
    content_mask: Tensor | None = None,
    style_mask: Tensor | None = None,
    evaluator: Evaluator | None = None,
) -> StyleResult:
    """Stylize `content` (3, H, W) with `style` (3, H_s, W_s), both RGB in [0,1] and already at
    working size (long side image_size); optional RGB colour-coded masks (3, h, w) of any size.
    Runs on the extractor's device; `evaluator` (default eager) runs each iteration's objective
    and gradient (nst_ops.evaluation). Raises ValueError for unusable masks."""
    pair = Pair(content, style, params, content_mask, style_mask, callback)
    return stylize_batch([pair], extractor, evaluator)[0]


def batch_groups(pairs: Sequence[Pair]) -> list[list[int]]:
    """Partition pair indices into batches that `stylize_batch` accepts, in order: equal
    batch_key and content size; masked or photorealistic pairs alone."""
    groups: dict[object, list[int]] = {}
    for i, pair in enumerate(pairs):
        alone = pair.content_mask is not None or pair.params.photo_weight > 0
        key = ("alone", i) if alone else (batch_key(pair.params), tuple(pair.content.shape))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def stylize_batch(
    pairs: Sequence[Pair], extractor: VGGFeatures, evaluator: Evaluator | None = None
) -> list[StyleResult]:
    """Stylize B pairs together, one batched forward/backward per iteration (pairs-per-gpu).
    Each pair's loss rows and result are those of `stylize` run alone, up to float rounding.
    The pairs must form one of `batch_groups` (else ValueError). `evaluator`: as in stylize;
    pass one evaluator for all of a process's pairs so that captured graphs are reused."""
    if len(batch_groups(pairs)) != 1:
        raise ValueError("batch: pairs differ in size or in batch_key params, or use masks/photo")
    evaluator = evaluator or Evaluator()
    compiled_before = evaluator.compile_s
    device = extractor.mean.device
    batch = [_prepare(pair, device, evaluator) for pair in pairs]
    live, count = list(range(len(batch))), len(batch[0].segments)
    for k in range(count):
        live = _run_segment(extractor, evaluator, batch, live, k, last=k == count - 1)
        if not live:
            break
    return [_result(b, evaluator.compile_s - compiled_before) for b in batch]


@dataclass
class _Prepared:
    """A pair on the device: content (1, 3, H, W) as given; content_in/style_in what the
    objective sees (luminance for preserve_color); `image` the current iterate."""

    params: StyleParams
    content: Tensor
    content_in: Tensor
    style_in: Tensor
    masks: Masks | None
    warnings: tuple[str, ...]
    segments: list[Segment]
    rec: Recorder
    image: Tensor
    laplacians: dict[tuple[int, int], Tensor] | None


def _prepare(pair: Pair, device: torch.device, evaluator: Evaluator) -> _Prepared:
    params = pair.params
    content = pair.content.to(device, torch.float32).unsqueeze(0)
    style = pair.style.to(device, torch.float32).unsqueeze(0)
    if params.preserve_color == "luminance":
        # Gatys et al. 2016: transfer on luminance only, keep the content's chrominance.
        content_in = luminance(content)
        style_in = match_luminance(luminance(style), content_in)
    else:
        content_in, style_in = content, style
    masks, warnings = prepare_masks(pair.content_mask, pair.style_mask, content, style)
    segments = plan(params)
    iterations = sum(seg.params.iterations for seg in segments)
    rec = Recorder(
        params, pair.callback, iterations, lambda: evaluator.compile_s, pair.snapshot_every
    )
    x = initial_image(params, content_in, style_in[:, : content_in.shape[1]])
    laplacians: dict[tuple[int, int], Tensor] | None = {} if params.photo_weight > 0 else None
    return _Prepared(
        params, content, content_in, style_in, masks, warnings, segments, rec, x, laplacians
    )


def _run_segment(
    extractor: VGGFeatures,
    evaluator: Evaluator,
    batch: list[_Prepared],
    live: list[int],
    k: int,
    last: bool,
) -> list[int]:
    """Run segment k for the live pairs (coarse to fine: each starts from its upsampled
    result); after the last, a forward-only row of each returned image. The pairs still going."""
    objectives = []
    for j in live:
        b, seg = batch[j], batch[j].segments[k]
        objective, size = segment_objective(
            extractor, seg, b.params, b.content_in, b.style_in, b.masks, b.laplacians
        )
        if tuple(b.image.shape[-2:]) != size:
            b.image = F.interpolate(b.image, size=size, mode="bilinear", antialias=True)
            b.image = b.image.clamp(0, 1)
        b.rec.begin(seg.stage, seg.scale, target_active=last)  # target_loss: final segment
        objectives.append(objective)
    objective = StyleObjective.stack(objectives)
    optimizer = OPTIMIZER_TYPES[batch[live[0]].params.optimizer](evaluator.compiler)
    x = torch.cat([batch[j].image for j in live])
    params = [batch[j].segments[k].params for j in live]
    images = run(optimizer, x, objective, params, [batch[j].rec for j in live], evaluator)
    for j, image in zip(live, images, strict=True):
        batch[j].image = image
    going = [i for i, j in enumerate(live) if not batch[j].rec.stopped]
    if last and going:
        x = torch.cat([batch[live[i]].image for i in going])
        rows = evaluator.forward(x, objective.select(going))
        record_all([batch[live[i]].rec for i in going], rows)
    return [live[i] for i in going]


def _result(b: _Prepared, compile_s: float) -> StyleResult:
    image = _finish(_full_size(b.image, b), b)
    log = b.rec.log(b.params.style_layers)
    snapshots = {
        i: _recolour(_full_size(x[None].to(b.content.device), b), b)[0].cpu()
        for i, x in b.rec.snapshots.items()
    }
    return StyleResult(
        image[0].cpu(),
        log,
        log.iteration[-1],
        b.rec.reached,
        b.warnings,
        b.rec.diverged_at,
        compile_s,
        snapshots,
    )


def _full_size(x: Tensor, b: _Prepared) -> Tensor:
    """x (1, C, h, w) at the content's size (from a coarse scale: bilinear), in [0,1]."""
    if tuple(x.shape[-2:]) != tuple(b.content.shape[-2:]):  # e.g. stopped at a coarse scale
        x = F.interpolate(x, size=b.content.shape[-2:], mode="bilinear")
    return x.clamp(0, 1)


def _recolour(x: Tensor, b: _Prepared) -> Tensor:
    """A luminance result (preserve_color) with the content's chrominance; RGB as it is."""
    return combine_luminance(x, b.content) if x.shape[1] == 1 else x


def _finish(x: Tensor, b: _Prepared) -> Tensor:
    """Recolour a luminance result; apply the optional post-processing (nst_ops.postprocess)."""
    content = b.content
    image = _recolour(x, b)
    # preserve_color keeps the content's colours: no style colours to match then
    match = b.params.mask_color_match if b.params.preserve_color == "none" else 0.0
    size = (image.shape[-2], image.shape[-1])
    targets = color_targets(b.masks, b.style_in, size, match)
    # smooth and match build their own Laplacian (postprocess.SMOOTH_EPS), not the photo term's
    return refine(b.params.photo_postprocess, content, image, None, targets)
