"""Photorealistic post-processing (nst_ops.postprocess) against its definitions, on tiny images:
Luan's local affine fit per 3×3 window against a brute-force ridge regression, the smooth local
affine filter's fixed point (an output that is already one affine map of the content), and the
closed-form smoothing against its linear system with a dense Laplacian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nst_ops.matting import content_laplacian, matting_laplacian, to_torch_sparse
from nst_ops.optimize import stylize
from nst_ops.params import StyleParams
from nst_ops.postprocess import (
    AFFINE_EPS,
    SMOOTH_EPS,
    closed_form_smooth,
    local_affine,
    refine,
    smooth_local_affine,
)
from nst_ops.vgg import VGGFeatures


def images(h: int = 7, w: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    content = torch.rand((1, 3, h, w), generator=generator, dtype=torch.float64)
    output = torch.rand((1, 3, h, w), generator=generator, dtype=torch.float64)
    return content, output


def test_local_affine_is_the_ridge_regression_of_each_window() -> None:
    content, output = images()
    coeff = local_affine(content, output)
    for y, x in [(0, 0), (3, 4), (6, 8), (2, 0)]:  # corners and borders: clipped windows
        rows = [(j, i) for j in range(y - 1, y + 2) for i in range(x - 1, x + 2)
                if 0 <= j < 7 and 0 <= i < 9]  # fmt: skip
        design = np.array([[*content[0, :, j, i].tolist(), 1.0] for j, i in rows])
        target = np.array([output[0, :, j, i].tolist() for j, i in rows])
        ridge = np.diag([AFFINE_EPS] * 3 + [0.0])
        expected = np.linalg.solve(design.T @ design + ridge, design.T @ target).T  # (3, 4)
        assert np.allclose(coeff[y, x].numpy(), expected, atol=1e-9)


def test_an_output_that_is_affine_in_the_content_is_kept() -> None:
    content, _ = images(12, 14)
    a = torch.tensor([[0.5, 0.1, 0.0, 0.2], [0.0, 0.4, 0.2, 0.1], [0.1, 0.0, 0.3, 0.3]],
                     dtype=torch.float64)  # fmt: skip
    i4 = torch.cat([content[0], torch.ones_like(content[0, :1])])
    output = torch.einsum("cj,jhw->chw", a, i4)[None]
    refined = smooth_local_affine(content, output, radius=3, edge=0.1)
    assert float((refined - output).abs().max()) < 5e-3  # only the ridge's small shrinkage


def test_closed_form_smooth_solves_its_linear_system() -> None:
    content, output = images(6, 8)
    output = 0.25 + 0.5 * output  # away from 0 and 1: no clamping
    dense = matting_laplacian(content[0].permute(1, 2, 0).numpy(), eps=1e-4)
    strength = 2.0
    smooth = closed_form_smooth(output.float(), to_torch_sparse(dense), strength, 1e-7)
    y = output[0].reshape(3, -1).numpy().T
    expected = np.linalg.solve(np.eye(48) + strength * dense.toarray(), y)
    assert np.allclose(smooth[0].reshape(3, -1).numpy().T, expected, atol=1e-4)
    flat = torch.full((1, 3, 6, 8), 0.4)
    smooth_flat = closed_form_smooth(flat, to_torch_sparse(dense))  # L·1 = 0: kept
    assert float((smooth_flat - flat).abs().max()) < 1e-3, float((smooth_flat - flat).abs().max())


@pytest.mark.parametrize("kind", ["affine", "smooth", "match"])
def test_stylize_applies_the_postprocess(vgg16_state: dict[str, torch.Tensor], kind: str) -> None:
    extractor = VGGFeatures("vgg16", ["relu5_1"], vgg16_state)
    generator = torch.Generator().manual_seed(0)
    content, style = (torch.rand((3, 24, 32), generator=generator) for _ in range(2))
    params = StyleParams(image_size=32, iterations=3, photo_weight=1e4)
    plain = stylize(content, style, params.replace(photo_postprocess="none"), extractor)
    refined = stylize(content, style, params.replace(photo_postprocess=kind), extractor)
    assert plain.losses.total_loss == refined.losses.total_loss  # the optimisation is the same
    assert not torch.equal(plain.image, refined.image) and refined.image.shape == (3, 24, 32)


def test_an_artistic_pair_can_be_smoothed(vgg16_state: dict[str, torch.Tensor]) -> None:
    # stylise, then smooth (FastPhotoStyle's recipe; README): photo_weight 0, smooth post-process
    extractor = VGGFeatures("vgg16", ["relu5_1"], vgg16_state)
    generator = torch.Generator().manual_seed(1)
    content, style = (torch.rand((3, 24, 32), generator=generator) for _ in range(2))
    params = StyleParams(image_size=32, iterations=3, photo_postprocess="none")
    plain = stylize(content, style, params, extractor)
    smoothed = stylize(content, style, params.replace(photo_postprocess="smooth"), extractor)
    assert smoothed.losses.total_loss == plain.losses.total_loss  # the same optimisation
    assert set(smoothed.losses.terms["photo"]) == {0.0}  # and no matting term in it
    laplacian = content_laplacian(content[None], SMOOTH_EPS)
    expected = closed_form_smooth(plain.image[None], laplacian)[0]
    assert torch.allclose(smoothed.image, expected, atol=1e-5)
    assert float((smoothed.image - plain.image).abs().max()) > 1e-2


def test_photo_defaults_apply_to_photorealistic_pairs_only() -> None:
    artistic, photo = StyleParams(), StyleParams(photo_weight=1e4)
    assert artistic.photo_postprocess == "none" and artistic.style_layer_weights is None
    assert photo.photo_postprocess == "match"
    assert StyleParams(photo_weight=1e4, photo_postprocess="affine").photo_postprocess == "affine"
    # Luan's relative layer weights ∝ 1/N_l² (64, 128, 256, 512, 512 channels), summing to 1
    expected = [1 / 64**2, 1 / 128**2, 1 / 256**2, 1 / 512**2, 1 / 512**2]
    assert photo.layer_weights == pytest.approx([w / sum(expected) for w in expected])
    given = StyleParams(photo_weight=1e4, style_layer_weights=(0.2,) * 5)
    assert given.style_layer_weights == (0.2,) * 5  # explicit weights are kept


def test_smooth_flattens_steps_too_faint_to_be_edges() -> None:
    """A flat grey content with faint 8×8 blocks (±0.004, as JPEG leaves in a sky) and an output
    whose colour steps along them (±0.05): with Luan's ε = 1e-7 the Laplacian takes the blocks
    for edges and the smoothing keeps the steps; with SMOOTH_EPS they are smoothed away."""
    rows, cols = torch.meshgrid(torch.arange(24), torch.arange(32), indexing="ij")
    blocks = ((rows // 8 + cols // 8) % 2).to(torch.float32) * 2 - 1  # ±1 checkerboard of blocks
    content = (0.5 + 0.004 * blocks).expand(1, 3, 24, 32)
    output = (0.5 + 0.05 * blocks).expand(1, 3, 24, 32)
    smoothed = {eps: refine("smooth", content, output, content_laplacian(content, eps))
                for eps in (1e-7, SMOOTH_EPS)}  # fmt: skip
    assert float(smoothed[1e-7].std()) > 0.4 * float(output.std())  # measured 0.59
    assert float(smoothed[SMOOTH_EPS].std()) < 0.1 * float(output.std())  # measured 0.02
    assert torch.equal(refine("smooth", content, output), smoothed[SMOOTH_EPS])  # its default
