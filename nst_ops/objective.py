"""The total objective J = α·J_content + β·J_style + tv_weight·TV (Gatys et al. 2015), with the
content and style targets computed once.

One objective serves a batch of B pairs optimised together (`StyleObjective.stack`): each image
has its own targets and weights, and J of image b depends on image b alone, so the gradient of
Σ_b J_b is each image's own gradient.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from nst_ops.losses import content_loss, gram, style_layer_loss, tv_loss
from nst_ops.masks import masked_gram_targets, masked_style_layer_loss, resize_masks
from nst_ops.matting import photo_loss
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures


@dataclass(frozen=True)
class Masks:
    """Semantic masks (Luan et al. 2017) of the K colours present in the content mask:
    content (K, H, W) at the content's size, style (K, H_s, W_s), weights (K,) 1 or 0."""

    content: Tensor
    style: Tensor
    weights: Tensor


@dataclass(frozen=True)
class LossTerm:
    """One term of the objective. `name` labels its columns everywhere: `{name}_loss` in loss
    tables, `final_{name}_loss` in results. `weight` is the StyleParams field that weights it
    in the total (None for the total itself)."""

    name: str
    weight: str | None
    doc: str


# The loss terms, declared once and in order: StyleObjective computes each (unweighted) and
# their weighted sum; LossTerms.stacked, the Recorder's rows, LossLog, the loss-table schema
# and the results' final_* columns all follow this list. Adding a term: declare it here and
# compute it in StyleObjective.__call__ (ARCHITECTURE.md).
LOSS_TERMS = (
    LossTerm("total", None, "weighted sum of the terms below: the optimised objective J"),
    LossTerm("content", "content_weight", "J_content = 1/2 sum (F - P)^2 (Gatys et al.)"),
    LossTerm("style", "style_weight", "J_style = sum_l w_l E_l (Gatys et al.)"),
    LossTerm("tv", "tv_weight", "TV(G): squared neighbour differences"),
    LossTerm("photo", "photo_weight", "sum_c V_c^T L V_c, matting Laplacian (Luan et al.)"),
)
TERM_NAMES = tuple(t.name for t in LOSS_TERMS)
WEIGHTED_TERMS = LOSS_TERMS[1:]  # the summands of the total, in order


@dataclass(frozen=True)
class LossTerms:
    """Loss terms of a batch of B images: `values[name]` (B,) for each name of LOSS_TERMS,
    unweighted except "total"; `style_layers` (B, L) holding E_l in the order of
    StyleParams.style_layers."""

    values: dict[str, Tensor]
    style_layers: Tensor

    @property
    def total(self) -> Tensor:
        return self.values["total"]

    def stacked(self) -> Tensor:
        """(B, T + L): the T = len(LOSS_TERMS) terms in order, then E_l... — one tensor, for
        cheap logging (a loss row)."""
        terms = torch.stack([self.values[name] for name in TERM_NAMES], dim=1)
        return torch.cat([terms, self.style_layers], dim=1)


class StyleObjective:
    """J for one (content, style) pair; targets P^l and A^l/M^S are computed at construction.

    content: (1, 3, H, W), style: (1, 3, H_s, W_s), RGB in [0,1], on the extractor's device.
    masks: semantic masks (masked style loss); laplacian: sparse (H·W)² matting Laplacian of
    the content (photorealism term, weighted by params.photo_weight).
    """

    def __init__(
        self,
        extractor: VGGFeatures,
        params: StyleParams,
        content: Tensor,
        style: Tensor,
        masks: Masks | None = None,
        laplacian: Tensor | None = None,
    ) -> None:
        self.extractor = extractor
        self.params = params
        self.layers = tuple(dict.fromkeys(params.content_layers + params.style_layers))
        self.masks, self.laplacian = masks, laplacian
        with torch.no_grad():
            content_features = extractor(content, self.layers)
            style_features = extractor(style, params.style_layers)
        self.content_targets = {k: content_features[k].detach() for k in params.content_layers}
        if masks is None:
            self.style_targets = {
                name: gram(f) / (f.shape[2] * f.shape[3]) for name, f in style_features.items()
            }
        else:
            self.style_targets = {
                name: masked_gram_targets(f, masks.style)[0] for name, f in style_features.items()
            }
            self.layer_masks = {
                name: resize_masks(masks.content, tuple(content_features[name].shape[-2:]))
                for name in params.style_layers
            }
        # Per image (B = 1 here; `stack` concatenates): the weights of WEIGHTED_TERMS, and w_l.
        self.weights = torch.tensor(
            [[getattr(params, term.weight or "") for term in WEIGHTED_TERMS]],
            dtype=content.dtype,
            device=content.device,
        )
        self.layer_weights = torch.tensor(
            [params.layer_weights], dtype=content.dtype, device=content.device
        )

    @property
    def batch_size(self) -> int:
        return int(self.weights.shape[0])

    @classmethod
    def stack(cls, objectives: list[StyleObjective]) -> StyleObjective:
        """One objective for B pairs: same extractor and layers, no masks, no photorealism term
        (those stay one pair per batch). Targets and weights are concatenated in order."""
        if len(objectives) == 1:
            return objectives[0]
        first = objectives[0]
        for o in objectives:
            if o.extractor is not first.extractor or o.layers != first.layers:
                raise ValueError("batch: pairs differ in network or layers")
            if o.masks is not None or o.laplacian is not None:
                raise ValueError("batch: masks and the photorealism term run one pair per batch")
        return first._with(objectives, torch.cat)

    def select(self, keep: list[int]) -> StyleObjective:
        """The objective of images `keep` (positions in this batch), e.g. after some stopped."""
        if keep == list(range(self.batch_size)):
            return self
        index = torch.tensor(keep, device=self.weights.device)
        return self._with([self], lambda parts: parts[0].index_select(0, index))

    def _with(self, sources: list[StyleObjective], combine: Any) -> StyleObjective:
        new = copy.copy(self)
        new.content_targets = {
            k: combine([o.content_targets[k] for o in sources]) for k in self.content_targets
        }
        new.style_targets = {
            k: combine([o.style_targets[k] for o in sources]) for k in self.style_targets
        }
        new.weights = combine([o.weights for o in sources])
        new.layer_weights = combine([o.layer_weights for o in sources])
        return new

    def __call__(self, image: Tensor) -> LossTerms:
        """image (B, 3, H, W) in [0,1], B = batch_size → LossTerms."""
        p = self.params
        features = self.extractor(image, self.layers)
        content = sum(
            (content_loss(features[name], self.content_targets[name]) for name in p.content_layers),
            torch.zeros((), device=image.device, dtype=image.dtype),
        )
        per_layer = torch.stack([self._style_layer(n, features[n]) for n in p.style_layers], dim=1)
        values = {"content": content, "style": (per_layer * self.layer_weights).sum(1)}
        values["tv"] = tv_loss(image)
        if self.laplacian is not None:
            values["photo"] = photo_loss(image, self.laplacian)
        else:
            values["photo"] = torch.zeros_like(values["style"])
        total = self.weights[:, 0] * values[WEIGHTED_TERMS[0].name]
        for k, term in enumerate(WEIGHTED_TERMS[1:], start=1):
            total = total + self.weights[:, k] * values[term.name]
        return LossTerms({"total": total} | values, per_layer)

    def _style_layer(self, name: str, features: Tensor) -> Tensor:
        if self.masks is None:
            return style_layer_loss(features, self.style_targets[name])
        return masked_style_layer_loss(
            features, self.layer_masks[name], self.style_targets[name], self.masks.weights
        )
