"""Loss values against brute-force evaluations of the README's formulas."""

from __future__ import annotations

import itertools

import torch

from nst_ops.losses import content_loss, gram, style_layer_loss, tv_loss


def brute_gram(f: torch.Tensor) -> torch.Tensor:
    n, h, w = f.shape
    g = torch.zeros(n, n, dtype=f.dtype)
    for i, j in itertools.product(range(n), range(n)):
        g[i, j] = sum(f[i, y, x] * f[j, y, x] for y in range(h) for x in range(w))
    return g


def test_gram_matches_definition() -> None:
    f = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    assert torch.allclose(gram(f)[0], brute_gram(f[0]))


def test_style_layer_loss_same_size_is_paper_formula() -> None:
    f, s = torch.randn(2, 1, 6, 4, 3, dtype=torch.float64)
    n, m = 6, 12
    g, a = brute_gram(f[0]), brute_gram(s[0])
    expected = ((g - a) ** 2).sum() / (4 * n**2 * m**2)
    assert torch.allclose(style_layer_loss(f, (gram(s) / m)), expected.view(1))


def test_style_layer_loss_different_size_compares_per_position_grams() -> None:
    f = torch.randn(1, 5, 4, 3, dtype=torch.float64)
    s = torch.randn(1, 5, 7, 2, dtype=torch.float64)
    g, a = brute_gram(f[0]), brute_gram(s[0])
    expected = ((g / 12 - a / 14) ** 2).sum() / (4 * 5**2)
    assert torch.allclose(style_layer_loss(f, gram(s) / 14), expected.view(1))


def test_content_loss_is_half_sum_of_squares() -> None:
    f, p = torch.randn(2, 1, 3, 4, 4, dtype=torch.float64)
    expected = 0.5 * sum(float((f[0, c, y, x] - p[0, c, y, x]) ** 2)
                         for c in range(3) for y in range(4) for x in range(4))  # fmt: skip
    assert abs(float(content_loss(f, p)) - expected) < 1e-9


def test_tv_is_sum_of_squared_neighbour_differences() -> None:
    img = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    expected = 0.0
    for c, y, x in itertools.product(range(3), range(4), range(5)):
        if y + 1 < 4:
            expected += float((img[0, c, y + 1, x] - img[0, c, y, x]) ** 2)
        if x + 1 < 5:
            expected += float((img[0, c, y, x + 1] - img[0, c, y, x]) ** 2)
    assert abs(float(tv_loss(img)) - expected) < 1e-9


def test_losses_are_per_image_in_a_batch() -> None:
    f = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    target = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    batched = content_loss(f, target)
    single = torch.cat([content_loss(f[i : i + 1], target) for i in range(3)])
    assert torch.allclose(batched, single)


def test_gram_gradient_matches_the_generic_product() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram, (features,))
    weights = torch.randn(2, 4, 4, dtype=torch.float64)
    (fast,) = torch.autograd.grad((gram(features) * weights).sum(), features)
    flat = features.reshape(2, 4, 15)
    (plain,) = torch.autograd.grad(((flat @ flat.transpose(1, 2)) * weights).sum(), features)
    assert torch.allclose(fast, plain, rtol=1e-12, atol=1e-12)


def test_gram_under_bf16_autocast_backpropagates() -> None:
    features = torch.randn(1, 4, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = gram(torch.relu(features)).float().sum()
    (grad,) = torch.autograd.grad(value, features)
    assert grad.dtype == torch.float32 and grad.isfinite().all()
