"""The palette step of the masked `smooth` post-process (nst_ops.palette,
postprocess.keep_in_palette): the nearest palette colour against a brute-force search, the move
against its formula, and a colour blotch the style region lacks removed from a smoothed output
while the rest of the image stays."""

from __future__ import annotations

import numpy as np
import torch

from nst_ops.matting import matting_laplacian, to_torch_sparse
from nst_ops.palette import PALETTE_TOLERANCE, nearest_colors, palette_moves
from nst_ops.postprocess import MaskColors, keep_in_palette


def palette_pixels(n: int = 400) -> torch.Tensor:
    """Style pixels (n, 3) along a pink-to-purple line, with a little noise: no blue."""
    generator = torch.Generator().manual_seed(3)
    t = torch.rand((n, 1), generator=generator, dtype=torch.float64)
    line = torch.tensor([0.9, 0.55, 0.6]) * (1 - t) + torch.tensor([0.45, 0.3, 0.55]) * t
    noise = 0.01 * torch.randn((n, 3), generator=generator, dtype=torch.float64)
    return (line + noise).clamp(0, 1)


def brute_nearest(pixels: torch.Tensor, queries: torch.Tensor, bins: int) -> torch.Tensor:
    """Distance (Q,) from each query colour to the nearest occupied cell's mean colour."""
    cells = (pixels * bins).long().clamp(0, bins - 1)
    keys = {tuple(c.tolist()) for c in cells}
    means = torch.stack(
        [pixels[(cells == torch.tensor(k)).all(1)].mean(0) for k in sorted(keys)]
    )  # (P, 3)
    distances: torch.Tensor = torch.cdist(queries, means).min(1).values
    return distances


def test_nearest_colors_finds_the_palette_colour_closest_to_each_cell() -> None:
    pixels, bins = palette_pixels(), 16
    grid = nearest_colors(pixels, torch.ones(len(pixels), dtype=torch.float64), bins)
    queries = torch.rand((300, 3), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cells = (queries * bins).long()
    found = grid[cells[:, 0], cells[:, 1], cells[:, 2]]
    # the grid picks the nearest occupied cell: within one cell diagonal of the true nearest mean
    assert torch.all(
        (queries - found).norm(dim=1)
        <= brute_nearest(pixels, queries, bins) + 3**0.5 / bins + 1e-12
    )
    # a style pixel's own cell maps to that cell's mean: within the cell
    own = (pixels * bins).long().clamp(0, bins - 1)
    found_own = grid[own[:, 0], own[:, 1], own[:, 2]]
    assert torch.all(((found_own * bins).long().clamp(0, bins - 1) == own).all(1))


def test_nearest_colors_ignores_pixels_outside_the_style_mask() -> None:
    pixels = palette_pixels()
    blue = torch.tensor([[0.2, 0.3, 0.9]], dtype=torch.float64).repeat(50, 1)
    weights = torch.cat([torch.ones(len(pixels)), 0.1 * torch.ones(50)]).double()
    grid = nearest_colors(torch.cat([pixels, blue]), weights)
    cell = (blue[0] * grid.shape[0]).long()
    assert (grid[cell[0], cell[1], cell[2]] - blue[0]).norm() > 0.2  # blue is not in the palette


def test_palette_moves_bring_far_colours_to_the_tolerance_and_keep_the_rest() -> None:
    pixels = palette_pixels()
    grid = nearest_colors(pixels, torch.ones(len(pixels), dtype=torch.float64))
    inside = pixels[:20]
    far = torch.tensor([[0.3, 0.35, 0.95], [0.1, 0.8, 0.2]], dtype=torch.float64)
    y = torch.cat([inside, far])
    step = palette_moves(y, grid[None], 1.0)[:, 0]  # (N, 3): one region
    assert torch.all(step[:20] == 0)  # colours of the palette never move
    cells = (far * grid.shape[0]).long()
    c = grid[cells[:, 0], cells[:, 1], cells[:, 2]]
    moved = far + step[20:]
    torch.testing.assert_close(
        (moved - c).norm(dim=1), torch.full((2,), PALETTE_TOLERANCE, dtype=torch.float64)
    )
    # along the straight line from the colour to its palette colour
    direction = (c - far) / (c - far).norm(dim=1, keepdim=True)
    torch.testing.assert_close(step[20:] / step[20:].norm(dim=1, keepdim=True), direction)
    half = palette_moves(y, grid[None], 0.5)[:, 0]  # mask_color_match γ = 0.5: half as far
    torch.testing.assert_close(half, 0.5 * step)


def test_keep_in_palette_removes_a_colour_the_style_region_lacks() -> None:
    h, w = 24, 32
    generator = torch.Generator().manual_seed(5)
    grey = 0.5 + 0.02 * torch.randn((1, 1, h, w), generator=generator, dtype=torch.float64)
    grey[..., 4:10, 20:28] -= 0.25  # a dark cloud in a grey sky
    content = grey.repeat(1, 3, 1, 1).clamp(0, 1)
    pink = torch.tensor([0.81, 0.5, 0.59], dtype=torch.float64)[None, :, None, None]  # t = 0.2
    output = pink + 0.1 * (content - 0.5)  # the sky pink (in the palette), affine in the content
    output[..., 4:10, 20:28] = torch.tensor([0.3, 0.35, 0.9], dtype=torch.float64)[:, None, None]
    pixels = palette_pixels()
    grid = nearest_colors(pixels, torch.ones(len(pixels), dtype=torch.float64))
    colors = MaskColors(
        torch.ones((1, h, w)), pixels.mean(0)[None], torch.eye(3)[None], 1.0, grid[None]
    )
    dense = matting_laplacian(content[0].permute(1, 2, 0).numpy(), eps=1e-5)
    got = keep_in_palette(output.float(), to_torch_sparse(dense), colors).double()
    flat = got[0].reshape(3, -1).T
    cloud = got[0, :, 4:10, 20:28].reshape(3, -1).T
    # the blue cloud now lies near the palette (the light smoothing leaves a little of the move)
    before = brute_nearest(pixels, output[0, :, 4:10, 20:28].reshape(3, -1).T, 64)
    after = brute_nearest(pixels, cloud, 64)
    assert before.min() > 0.35 and after.max() < 0.1, after.max()
    # the sky away from the cloud barely changes (the cloud moves by ~0.3)
    away = np.s_[..., 16:, :12]
    change = (got[away] - output[away].float().double()).abs()
    assert change.max() < 1e-2 and change.mean() < 1e-3
    assert torch.all(flat >= 0) and torch.all(flat <= 1)


def test_keep_in_palette_changes_nothing_without_a_palette_or_outside_colours() -> None:
    content = torch.rand((1, 3, 8, 8), generator=torch.Generator().manual_seed(6))
    laplacian = to_torch_sparse(
        matting_laplacian(content[0].permute(1, 2, 0).double().numpy(), eps=1e-5)
    )
    pixels = palette_pixels()
    output = pixels[:64].T.reshape(1, 3, 8, 8).float()
    plain = MaskColors(torch.ones((1, 8, 8)), pixels.mean(0)[None].float(), torch.eye(3)[None], 1.0)
    assert keep_in_palette(output, laplacian, plain) is output
    grid = nearest_colors(pixels, torch.ones(len(pixels), dtype=torch.float64))
    within = MaskColors(plain.masks, plain.targets, plain.covariances, 1.0, grid[None])
    assert torch.equal(keep_in_palette(output, laplacian, within), output)


def test_keep_in_palette_moves_stay_inside_their_region_where_the_content_has_no_edge() -> None:
    h, w = 12, 16
    generator = torch.Generator().manual_seed(8)
    grey = 0.5 + 0.01 * torch.randn((1, 1, h, w), generator=generator, dtype=torch.float64)
    content = grey.repeat(1, 3, 1, 1)  # no edge between the two regions
    left = torch.zeros((h, w))
    left[:, : w // 2] = 1.0
    blue = torch.tensor([0.3, 0.35, 0.9], dtype=torch.float64)
    output = blue[None, :, None, None].repeat(1, 1, h, w)  # blue everywhere
    pixels = palette_pixels()
    grids = torch.stack(
        [
            nearest_colors(pixels, torch.ones(len(pixels), dtype=torch.float64)),  # left: no blue
            nearest_colors(blue[None].repeat(10, 1), torch.ones(10, dtype=torch.float64)),
        ]
    )
    masks = torch.stack([left, 1 - left])
    colors = MaskColors(masks, torch.zeros(2, 3), torch.eye(3).repeat(2, 1, 1), 1.0, grids)
    dense = matting_laplacian(content[0].permute(1, 2, 0).numpy(), eps=1e-5)
    got = keep_in_palette(output.float(), to_torch_sparse(dense), colors)
    moved = (got - output.float()).norm(dim=1)[0]  # (h, w)
    assert moved[:, :4].min() > 0.2 and moved[:, : w // 2].min() > 0.05  # left moved (less at
    # the seam: the smoothed move that crossed into the right region is dropped there)
    assert torch.equal(got[..., w // 2 :], output[..., w // 2 :].float())  # right untouched
