"""Automatic masks (nst_ops.automask): labels shared by the two images, determinism, the PNG
round trip through the mask decoder, and the row errors."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from manifests.manifest import parse_row
from nst_ops.automask import STYLE_EXTRA, auto_masks, colour_coded, kmeans, nearest_regions
from nst_ops.masks import COLOURS, decode_mask
from nst_ops.vgg import VGGFeatures
from workflows.images import to_png, to_tensor


def _extractor() -> VGGFeatures:
    torch.manual_seed(0)  # random weights: identical stimuli still give identical features
    return VGGFeatures("vgg16", ["relu5_1"], None, "max")


def _texture(kind: str, h: int, w: int) -> torch.Tensor:
    """(3, h, w): 'red' speckle or 'blue' stripes."""
    g = torch.Generator().manual_seed(1 if kind == "red" else 2)
    if kind == "red":
        noise = torch.rand(1, h, w, generator=g)
        return torch.cat([0.6 + 0.4 * noise, 0.2 * noise, 0.1 * noise])
    stripes = (torch.arange(w) // 3 % 2).float().expand(h, w)[None]
    return torch.cat([0.1 * stripes, 0.3 * stripes, 0.5 + 0.5 * stripes])


def _pair(h: int = 64, w: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Content: red | blue halves; style: blue | red (the halves swap)."""
    red, blue = _texture("red", h, w // 2), _texture("blue", h, w // 2)
    return torch.cat([red, blue], 2)[None], torch.cat([blue, red], 2)[None]


def _labels(mask: torch.Tensor) -> torch.Tensor:
    decoded = decode_mask(mask)
    assert bool((decoded.sum(0) == 1).all()), "every pixel is exactly one palette colour"
    return decoded.argmax(0)


def test_swapped_halves_map_half_to_half() -> None:
    """2 content regions, 3 style regions (STYLE_EXTRA): each content half takes the label of
    a style region inside the style's half of the same texture, and none of the other half."""
    content, style = _pair()
    cmask, smask = auto_masks(_extractor(), content, style, 2)
    c, s = _labels(cmask), _labels(smask)
    w = c.shape[1]
    left_c, right_c = c[:, : w // 2 - 4], c[:, w // 2 + 4 :]  # borders may blur over a few px
    left_s, right_s = s[:, : w // 2 - 4], s[:, w // 2 + 4 :]
    for half in (left_c, right_c):
        assert torch.unique(half).numel() == 1
    red, blue = int(left_c[0, 0]), int(right_c[0, 0])
    assert red != blue and int(s.max()) < 2 + STYLE_EXTRA
    assert bool((right_s == red).any()) and not bool((left_s == red).any())  # red is red
    assert bool((left_s == blue).any()) and not bool((right_s == blue).any())


def test_deterministic_whatever_the_global_rng() -> None:
    content, style = _pair()
    extractor = _extractor()
    first = auto_masks(extractor, content, style, 3)
    torch.manual_seed(123)
    torch.rand(10)
    second = auto_masks(extractor, content, style, 3)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_more_regions_than_parts_still_labels_every_pixel() -> None:
    content, style = _pair()
    for regions in (5, 9):  # the style's regions: K + STYLE_EXTRA, at most the palette's 9
        cmask, smask = auto_masks(_extractor(), content, style, regions)
        c, s = _labels(cmask), _labels(smask)  # every pixel one palette colour
        assert int(s.max()) < min(regions + STYLE_EXTRA, len(COLOURS))
        # the content's labels are among the style regions' labels
        assert set(torch.unique(c).tolist()) <= set(torch.unique(s).tolist())


def test_colour_coded_png_round_trips_through_the_decoder() -> None:
    labels = torch.arange(len(COLOURS)).repeat_interleave(4).expand(8, -1).contiguous()
    mask = colour_coded(labels)
    decoded = to_tensor(Image.open(io.BytesIO(to_png(mask))).convert("RGB"))
    assert torch.equal(_labels(decoded), labels)


def test_kmeans_separates_two_blobs_and_regions_take_the_nearest() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 2, generator=g) - 5, torch.randn(70, 2, generator=g) + 5])
    centroids = kmeans(x, 2)
    assert sorted(round(float(c)) for c in centroids[:, 0]) == [-5, 5]
    eye = torch.eye(3)
    # content region i takes the style region j most like it (style j is eye[[2, 0, 1]][j])
    assert nearest_regions(eye, eye[[2, 0, 1]]).tolist() == [1, 2, 0]
    # two content regions like one style region both take it (no one-to-one constraint)
    alike = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0], [1.0, 0, 0.1]]), dim=1)
    assert nearest_regions(alike, eye).tolist() == [0, 0]


def test_out_of_range_regions_are_refused() -> None:
    content, style = _pair()
    with pytest.raises(ValueError, match="mask_regions must be between 2 and 9, got 10"):
        auto_masks(_extractor(), content, style, 10)


BASE = {"content_uri": "c.png", "style_uri": "s.png"}


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"content_mask_uri": "auto", "style_mask_uri": "s_seg.png"},
         "content_mask_uri: 'auto' needs style_mask_uri 'auto' too"),
        ({"content_mask_uri": "c_seg.png", "style_mask_uri": "auto"},
         "style_mask_uri: 'auto' needs content_mask_uri 'auto' too"),
        ({"content_mask_uri": "auto", "style_mask_uri": "auto", "mask_regions": 1},
         "mask_regions: must be between 2 and 9, got 1"),
        ({"content_mask_uri": "auto", "style_mask_uri": "auto", "mask_regions": 12},
         "mask_regions: must be between 2 and 9, got 12"),
    ],
)  # fmt: skip
def test_row_errors_are_one_line_naming_the_column(values: dict[str, object], error: str) -> None:
    row = parse_row(3, BASE | values)
    assert row.error == error
    assert row.params is None


def test_an_auto_row_is_valid() -> None:
    row = parse_row(0, BASE | {"content_mask_uri": "auto", "style_mask_uri": "auto"})
    assert row.error is None and row.params is not None and row.params.mask_regions == 3
