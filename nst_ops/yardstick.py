"""A fixed yardstick for comparing runs with different objectives.

Total losses of runs with different layers, layer weights or α/β are different functions and
cannot be compared directly. The yardstick evaluates every output image with the *default*
StyleParams (layers, layer weights, α, β; plain Gatys, no masks) at one fixed size, independent
of the row's own parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.objective import StyleObjective
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures

DEFAULTS = StyleParams()


@dataclass(frozen=True)
class Yardstick:
    content_loss: float  # J_content with the default content layers
    style_loss: float  # J_style with the default style layers and weights
    total: float  # default α·content_loss + default β·style_loss


def resize_long_side(image: Tensor, size: int) -> Tensor:
    """(3, H, W) → (3, h, w) with max(h, w) = size (antialiased bilinear), values in [0,1]."""
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    resized = F.interpolate(image[None], size=new, mode="bilinear", antialias=True)[0]
    return resized.clamp(0, 1)


def yardstick(
    extractor: VGGFeatures, output: Tensor, content: Tensor, style: Tensor, size: int
) -> Yardstick:
    """Evaluate `output` against `content` and `style` (each (3, H, W) in [0,1], any size), all
    resized to long side `size`; the extractor must reach the default layers (relu5_1)."""
    device = extractor.mean.device

    def prep(image: Tensor) -> Tensor:
        return resize_long_side(image.to(device, torch.float32), size)[None]

    out, target = prep(output), prep(content)
    if out.shape != target.shape:  # same aspect as the content; guard rounding differences
        out = F.interpolate(out, size=target.shape[-2:], mode="bilinear", antialias=True)
    with torch.no_grad():
        terms = StyleObjective(extractor, DEFAULTS, target, prep(style))(out)
    content_loss, style_loss = (float(terms.values[name][0]) for name in ("content", "style"))
    return Yardstick(content_loss, style_loss, float(terms.total[0]))
