"""The total objective J = α·J_content + β·J_style + tv_weight·TV (Gatys et al. 2015), with the
content and style targets computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nst_ops.losses import content_loss, gram, style_layer_loss, tv_loss
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures


@dataclass(frozen=True)
class LossTerms:
    """Loss terms of a batch of B images; unweighted except `total`. All shaped (B,),
    `style_layers` (B, L) holding E_l in the order of StyleParams.style_layers."""

    total: Tensor
    content: Tensor
    style: Tensor
    tv: Tensor
    style_layers: Tensor

    def stacked(self) -> Tensor:
        """(B, 4 + L): total, content, style, tv, E_l... — one tensor, for cheap logging."""
        parts = [self.total, self.content, self.style, self.tv]
        return torch.cat([torch.stack(parts, dim=1), self.style_layers], dim=1)


class StyleObjective:
    """J for one (content, style) pair; targets P^l and A^l/M^S are computed at construction.

    content: (1, 3, H, W), style: (1, 3, H_s, W_s), RGB in [0,1], on the extractor's device.
    """

    def __init__(
        self, extractor: VGGFeatures, params: StyleParams, content: Tensor, style: Tensor
    ) -> None:
        self.extractor = extractor
        self.params = params
        self.layers = tuple(dict.fromkeys(params.content_layers + params.style_layers))
        with torch.no_grad():
            content_features = extractor(content, params.content_layers)
            style_features = extractor(style, params.style_layers)
        self.content_targets = {k: v.detach() for k, v in content_features.items()}
        self.style_targets = {
            name: gram(f) / (f.shape[2] * f.shape[3]) for name, f in style_features.items()
        }
        self.layer_weights = torch.tensor(
            params.layer_weights, dtype=content.dtype, device=content.device
        )

    def __call__(self, image: Tensor) -> LossTerms:
        """image (B, 3, H, W) in [0,1] → LossTerms."""
        p = self.params
        features = self.extractor(image, self.layers)
        content = sum(
            (content_loss(features[name], self.content_targets[name]) for name in p.content_layers),
            torch.zeros((), device=image.device, dtype=image.dtype),
        )
        per_layer = torch.stack(
            [style_layer_loss(features[n], self.style_targets[n]) for n in p.style_layers], dim=1
        )
        style = per_layer @ self.layer_weights
        tv = tv_loss(image)
        total = p.content_weight * content + p.style_weight * style + p.tv_weight * tv
        return LossTerms(total, content, style, tv, per_layer)
