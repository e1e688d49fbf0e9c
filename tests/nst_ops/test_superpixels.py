"""Felzenszwalb–Huttenlocher segmentation (nst_ops.superpixels): a gradual change stays one
segment where a step of the same size is a border, the merge rule against a brute-force
reading of the paper on a tiny graph, pooling against per-segment means, determinism."""

from __future__ import annotations

import numpy as np
import torch

from nst_ops.superpixels import GRID, _merge, pool, segment


def _sky_over_ground(h: int = 96, w: int = 128) -> torch.Tensor:
    """(1, 3, h, w): a sky whose brightness falls from 0.9 (left) to 0.5 (right) above a
    ground of brightness 0.5 (below row h/2): the sky's right end and the ground differ in hue
    only by a step at the horizon, the sky's two ends by a gradual change of 0.4."""
    ramp = torch.linspace(0.9, 0.5, w).expand(h // 2, w)
    sky = torch.stack([0.6 * ramp, 0.8 * ramp, ramp])  # blue-grey, lighter to the left
    ground = torch.tensor([0.5, 0.35, 0.2])[:, None, None].expand(3, h - h // 2, w)  # brown
    return torch.cat([sky, ground], 1)[None]


def test_gradient_stays_one_segment_and_the_horizon_is_a_border() -> None:
    image = _sky_over_ground()
    ids = segment(image)
    h, w = ids.shape
    assert max(h, w) == GRID and abs(h / w - 96 / 128) < 0.02
    sky, ground = ids[: h // 2 - 2], ids[h // 2 + 2 :]
    assert sky.unique().numel() == 1, "the sky's light-to-dark ramp was cut"
    assert ground.unique().numel() == 1
    assert int(sky[0, 0]) != int(ground[0, 0]), "the horizon was not a border"


def test_step_of_the_ramps_size_is_a_border() -> None:
    """The same change as the sky's ramp (its two end colours), made in one step at the
    sky's middle, splits the sky."""
    image = _sky_over_ground()
    sky = image[:, :, :48]
    sky[..., :64], sky[..., 64:] = sky[..., :1].clone(), sky[..., -1:].clone()
    ids = segment(image)
    h, w = ids.shape
    left, right = ids[: h // 2 - 2, : w // 2 - 4], ids[: h // 2 - 2, w // 2 + 4 :]
    assert left.unique().numel() == 1 and right.unique().numel() == 1  # the blur: a seam apart
    assert int(left[0, 0]) != int(right[0, 0])


def _brute_merge(n: int, edges: list[tuple[int, int, float]], k: float) -> list[int]:
    """The paper's algorithm 1 read literally: components as sets, Int(C) the heaviest edge
    of C's spanning tree so far, τ(C) = k / |C|; merge when w ≤ min(Int + τ) of both."""
    comp = {i: {i} for i in range(n)}
    internal = {i: 0.0 for i in range(n)}
    owner = list(range(n))
    for a, b, weight in sorted(edges, key=lambda e: e[2]):
        ca, cb = owner[a], owner[b]
        if ca == cb:
            continue
        if weight <= min(internal[ca] + k / len(comp[ca]), internal[cb] + k / len(comp[cb])):
            comp[ca] |= comp.pop(cb)
            internal[ca] = weight  # edges come in order: the new edge is the heaviest
            for i in comp[ca]:
                owner[i] = ca
    return owner


def test_merge_matches_the_papers_rule_on_random_graphs() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 12
        a = rng.integers(0, n, 40)
        b = rng.integers(0, n, 40)
        weight = rng.random(40).round(3) + np.arange(40) * 1e-6  # distinct weights
        keep = a != b
        a, b, weight = a[keep], b[keep], weight[keep]
        roots = _merge(n, a, b, weight, 0.5, 1)
        owner = _brute_merge(
            n, list(zip(a.tolist(), b.tolist(), weight.tolist(), strict=True)), 0.5
        )
        same = roots[:, None] == roots[None, :]
        expected = np.array(owner)[:, None] == np.array(owner)[None, :]
        assert (same == expected).all()


def test_small_segments_join_a_neighbour() -> None:
    """Two nodes joined by a heavy edge: apart with min_size 1, together with min_size 2."""
    a, b, weight = np.array([0]), np.array([1]), np.array([10.0])
    assert len(set(_merge(2, a, b, weight, 0.5, 1).tolist())) == 2
    assert len(set(_merge(2, a, b, weight, 0.5, 2).tolist())) == 1


def test_pool_gives_each_segment_its_mean() -> None:
    ids = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1]])
    soft = torch.rand(1, 3, 2, 4, generator=torch.Generator().manual_seed(0))
    pooled = pool(soft, ids)
    for s in range(3):
        inside = ids == s
        expected = soft[0][:, inside].mean(1)
        assert torch.allclose(pooled[0][:, inside], expected[:, None].expand(-1, int(inside.sum())))


def test_deterministic() -> None:
    image = _sky_over_ground() + 0.05 * torch.rand(
        1, 3, 96, 128, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(segment(image), segment(image))
