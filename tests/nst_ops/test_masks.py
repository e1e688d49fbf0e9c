"""Luan's palette decoding and the masked style loss."""

from __future__ import annotations

import pytest
import torch

from nst_ops.losses import gram, style_layer_loss
from nst_ops.masks import COLOURS, MaskError, decode_mask, masked_style_layer_loss, pair_masks
from nst_ops.objective import Masks, StyleObjective
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures


def pixel(rgb: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(rgb).view(3, 1, 1)


@pytest.mark.parametrize(
    ("rgb", "colour"),
    [((0.05, 0.05, 0.95), "blue"), ((0.0, 1.0, 0.0), "green"), ((0.0, 0.0, 0.0), "black"),
     ((0.95, 0.95, 0.95), "white"), ((1.0, 0.0, 0.09), "red"), ((0.91, 0.93, 0.0), "yellow"),
     ((0.45, 0.5, 0.59), "grey"), ((0.0, 1.0, 1.0), "lightblue"), ((1.0, 0.0, 1.0), "purple")],
)  # fmt: skip
def test_palette_colours(rgb: tuple[float, float, float], colour: str) -> None:
    decoded = decode_mask(pixel(rgb))[:, 0, 0]
    assert decoded.tolist() == [float(c == colour) for c in COLOURS]


@pytest.mark.parametrize(
    "rgb", [(0.5, 0.0, 0.0), (0.85, 0.85, 0.85), (0.5, 0.5, 0.65), (1, 0.1, 0)]
)
def test_off_palette_pixels_belong_to_no_colour(rgb: tuple[float, float, float]) -> None:
    assert decode_mask(pixel(rgb)).sum() == 0


def test_all_white_masks_equal_unmasked_loss() -> None:
    features = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    style = torch.randn(1, 8, 7, 4, dtype=torch.float64)
    white = torch.ones(1, 6, 5, dtype=torch.float64)
    targets = gram(style) / 28
    masked = masked_style_layer_loss(features, white, targets, torch.ones(1, dtype=torch.float64))
    assert torch.allclose(masked, style_layer_loss(features, targets))


def test_all_white_mask_objective_equals_plain_objective() -> None:
    torch.manual_seed(0)
    extractor = VGGFeatures("vgg16", ["relu3_1"], None)
    params = StyleParams(content_layers=("relu2_2",), style_layers=("relu1_1", "relu3_1"))
    content, style, image = (
        torch.rand(1, 3, 24, 20),
        torch.rand(1, 3, 16, 28),
        torch.rand(1, 3, 24, 20),
    )
    white_c, white_s = torch.ones(3, 24, 20), torch.ones(3, 9, 9)
    c, s, w, missing = pair_masks(white_c, white_s, (24, 20), (16, 28))
    masked = StyleObjective(extractor, params, content, style, Masks(c, s, w))(image)
    plain = StyleObjective(extractor, params, content, style)(image)
    assert torch.allclose(masked.total, plain.total, rtol=1e-5)
    assert missing == ()


def test_colour_missing_from_style_contributes_nothing() -> None:
    content_mask = torch.zeros(3, 4, 4)
    content_mask[:, :2] = 1.0  # white top half, black bottom half
    style_mask = torch.ones(3, 4, 4)  # white only
    c, s, weights, missing = pair_masks(content_mask, style_mask, (8, 8), (8, 8))
    assert missing == ("black",)
    assert weights.tolist() == [0.0, 1.0]  # palette order: black before white


def test_mask_without_palette_colours_is_an_error() -> None:
    with pytest.raises(MaskError, match="no pixel of any palette colour") as error:
        pair_masks(torch.full((3, 4, 4), 0.7), torch.ones(3, 4, 4), (4, 4), (4, 4))
    assert error.value.column == "content_mask_uri"  # workflows names that file
