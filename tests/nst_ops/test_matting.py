"""Matting Laplacian (Levin et al. 2008) against a dense brute-force construction, and its
properties; the photorealism loss."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nst_ops.matting import (
    PHOTO_SCALE,
    matting_energy,
    matting_laplacian,
    photo_loss,
    to_torch_sparse,
)


def brute_force(image: np.ndarray, eps: float, radius: int) -> np.ndarray:
    h, w, _ = image.shape
    n = (2 * radius + 1) ** 2
    dense = np.zeros((h * w, h * w))
    for cy in range(radius, h - radius):
        for cx in range(radius, w - radius):
            pix = [(y, x) for y in range(cy - radius, cy + radius + 1)
                   for x in range(cx - radius, cx + radius + 1)]  # fmt: skip
            colours = np.array([image[y, x] for y, x in pix])
            mu = colours.mean(0)
            sigma = (colours - mu).T @ (colours - mu) / n
            inv = np.linalg.inv(sigma + eps / n * np.eye(3))
            for (a, (ya, xa)), (b, (yb, xb)) in itertools.product(enumerate(pix), repeat=2):
                value = (a == b) - (1 + (colours[a] - mu) @ inv @ (colours[b] - mu)) / n
                dense[ya * w + xa, yb * w + xb] += value
    return dense


@pytest.mark.parametrize(("shape", "eps"), [((6, 5), 1e-7), ((5, 7), 1e-3)])
def test_matches_dense_brute_force(shape: tuple[int, int], eps: float) -> None:
    image = np.random.default_rng(0).random((*shape, 3))
    laplacian = matting_laplacian(image, eps=eps).toarray()
    assert np.abs(laplacian - brute_force(image, eps, 1)).max() < 1e-8


def test_radius_two_matches_brute_force() -> None:
    image = np.random.default_rng(1).random((7, 6, 3))
    laplacian = matting_laplacian(image, eps=1e-5, radius=2).toarray()
    assert np.abs(laplacian - brute_force(image, 1e-5, 2)).max() < 1e-8


def test_symmetric_zero_row_sums_psd_and_null_space() -> None:
    rng = np.random.default_rng(2)
    image = rng.random((9, 8, 3))
    laplacian = matting_laplacian(image, eps=1e-7)
    dense = laplacian.toarray()
    assert np.abs(dense - dense.T).max() < 1e-10
    assert np.abs(dense.sum(1)).max() < 1e-8
    for _ in range(5):
        v = rng.standard_normal(72)
        assert v @ laplacian @ v >= -1e-9
    assert np.linalg.eigvalsh(dense).min() > -1e-8
    constant = np.ones(72)
    assert abs(constant @ laplacian @ constant) < 1e-8
    linear = image.reshape(-1, 3) @ np.array([0.3, -0.5, 0.9]) + 0.2  # linear in colour
    assert linear @ laplacian @ linear < 1e-5 * (linear @ linear)


def test_photo_loss_is_the_scaled_quadratic_form_per_channel() -> None:
    image = np.random.default_rng(3).random((6, 5, 3))
    laplacian = matting_laplacian(image)
    v = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    expected = [sum(float(v[b, c].reshape(-1).numpy() @ laplacian @ v[b, c].reshape(-1).numpy())
                    for c in range(3)) for b in range(2)]  # fmt: skip
    energy = matting_energy(v.float(), to_torch_sparse(laplacian))
    assert energy.tolist() == pytest.approx(expected, rel=1e-4)  # Φ = Σ_c V_cᵀ L V_c
    got = photo_loss(v.float(), to_torch_sparse(laplacian))
    assert got.tolist() == pytest.approx([PHOTO_SCALE * e for e in expected], rel=1e-4)
