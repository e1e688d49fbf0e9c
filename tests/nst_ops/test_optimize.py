"""The optimisation loop on real VGG16 features (shared weights), tiny images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nst_ops.color import luminance, rgb_to_yiq
from nst_ops.optimize import StyleResult, stylize
from nst_ops.params import StyleParams
from nst_ops.vgg import VGGFeatures
from workflows.images import load_image

SIZE = 64


@pytest.fixture(scope="module")
def pair(artistic: Path) -> tuple[torch.Tensor, torch.Tensor]:
    content = load_image(str(artistic / "content" / "tubingen.jpg"), SIZE)
    style = load_image(str(artistic / "style" / "starry_night.jpg"), SIZE)
    return content, style


@pytest.fixture(scope="module")
def extractor(vgg16_state: dict[str, torch.Tensor]) -> VGGFeatures:
    return VGGFeatures("vgg16", ["relu5_3"], vgg16_state)


def run(pair: tuple[torch.Tensor, torch.Tensor], ex: VGGFeatures, **kw: object) -> StyleResult:
    params = StyleParams(image_size=SIZE, **kw)  # type: ignore[arg-type]
    return stylize(pair[0], pair[1], params, ex)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_halves_within_a_few_dozen_iterations(pair, extractor, optimizer: str) -> None:
    result = run(pair, extractor, optimizer=optimizer, iterations=30)
    log = result.losses
    assert log.iteration == list(range(31)) and result.iterations_run == 30
    assert log.total_loss[-1] <= 0.5 * log.total_loss[0]
    assert result.image.shape == pair[0].shape
    assert 0.0 <= float(result.image.min()) and float(result.image.max()) <= 1.0
    for i in range(len(log)):  # total = α·J_content + β·J_style + tv·TV on every row
        expected = 1.0 * log.terms["content"][i] + 1000.0 * log.terms["style"][i]
        assert log.total_loss[i] == pytest.approx(expected, rel=1e-5)
        weighted = sum(log.style_layer_losses[i].values()) / 5
        assert log.terms["style"][i] == pytest.approx(weighted, rel=1e-5)
    assert log.terms["content"][0] == 0.0  # content init: the image is the content


def test_same_seed_gives_identical_loss_table(pair, extractor) -> None:
    a = run(pair, extractor, init="random", seed=7, iterations=5)
    b = run(pair, extractor, init="random", seed=7, iterations=5)
    c = run(pair, extractor, init="random", seed=8, iterations=5)
    assert a.losses.total_loss == b.losses.total_loss
    assert torch.equal(a.image, b.image)
    assert a.losses.total_loss[0] != c.losses.total_loss[0]


def test_target_loss_stops_early_and_records_the_iteration(pair, extractor) -> None:
    full = run(pair, extractor, optimizer="adam", iterations=20)
    target = full.losses.total_loss[8]
    stopped = run(pair, extractor, optimizer="adam", iterations=20, target_loss=target)
    assert stopped.reached_target
    first = next(i for i, v in enumerate(full.losses.total_loss) if v <= target)
    assert stopped.iterations_run == first == stopped.losses.iteration[-1]
    assert stopped.losses.total_loss[-1] <= target < stopped.losses.total_loss[-2]


def test_preserve_color_keeps_content_chrominance(pair, extractor) -> None:
    result = run(pair, extractor, preserve_color="luminance", iterations=10, style_weight=1e5)
    content_iq = rgb_to_yiq(pair[0])[1:]
    out_iq = rgb_to_yiq(result.image)[1:]
    plain = run(pair, extractor, iterations=10, style_weight=1e5)
    err_lum = (out_iq - content_iq).abs().mean()
    err_plain = (rgb_to_yiq(plain.image)[1:] - content_iq).abs().mean()
    assert err_lum < 0.02 < err_plain
    assert not torch.allclose(luminance(result.image), luminance(pair[0]), atol=0.02)


def test_seed_variant_conv2_layers_just_work(pair, extractor) -> None:
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_2")
    result = run(pair, extractor, style_layers=layers, iterations=3)
    assert set(result.losses.style_layer_losses[0]) == set(layers)


@pytest.mark.parametrize("init", ["random", "style"])
def test_inits(pair, extractor, init: str) -> None:
    result = run(pair, extractor, init=init, iterations=2)
    assert result.losses.terms["content"][0] > 0


def test_multiscale_plan_and_loss_table(pair, extractor) -> None:
    from nst_ops.segments import plan

    params = StyleParams(image_size=SIZE, iterations=7, scales=(32, SIZE))
    assert [(s.scale, s.params.iterations) for s in plan(params)] == [(32, 3), (SIZE, 4)]
    counted = StyleParams(image_size=256, iterations=9, scales=(3,))
    assert counted.scale_sizes == (64, 128, 256)
    few = StyleParams(image_size=256, iterations=4, scales=(3,))  # 1 + 1 + 2 iterations
    assert [(s.scale, s.params.iterations) for s in plan(few)] == [(64, 1), (128, 1), (256, 2)]
    result = run(pair, extractor, iterations=7, scales=(32, SIZE), optimizer="adam")
    log = result.losses
    assert log.iteration == list(range(8))
    assert log.scale == [32] * 3 + [SIZE] * 5
    assert result.image.shape == pair[0].shape
    # the content loss at the coarse scale is measured on coarse features: smaller magnitudes
    assert log.terms["style"][-1] < log.terms["style"][0]


@pytest.mark.parametrize(
    ("scales", "message"),
    [((64, 32), "must increase and end at image_size"), ((32, 48), "end at image_size 64"),
     ((8, 64), "sizes must be >= 16"), ((20,), "must increase")],
)  # fmt: skip
def test_bad_scales(scales: tuple[int, ...], message: str) -> None:
    from nst_ops.params import ParamError

    with pytest.raises(ParamError, match=message):
        StyleParams(image_size=SIZE, scales=scales)


def test_target_loss_applies_to_the_final_scale_only(pair, extractor) -> None:
    # a target every coarse-scale row meets: it must not stop before the final scale
    result = run(pair, extractor, iterations=6, scales=(32, SIZE), optimizer="adam",
                 target_loss=1e30)  # fmt: skip
    assert result.reached_target
    assert result.losses.scale[-1] == SIZE and result.losses.scale.count(32) == 3


def test_adam_ema_returns_the_averaged_image(pair, extractor) -> None:
    plain = run(pair, extractor, optimizer="adam", iterations=12, learning_rate=0.05)
    averaged = run(pair, extractor, optimizer="adam", iterations=12, learning_rate=0.05,
                   ema_decay=0.5)  # fmt: skip
    # identical trajectories (same rows) until the final row, which evaluates the returned image
    assert averaged.losses.total_loss[:-1] == plain.losses.total_loss[:-1]
    assert averaged.losses.total_loss[-1] != plain.losses.total_loss[-1]
    assert not torch.equal(averaged.image, plain.image)
    from nst_ops.params import ParamError

    with pytest.raises(ParamError, match="adam only"):
        StyleParams(ema_decay=0.9)
    with pytest.raises(ParamError, match="must be < 1"):
        StyleParams(optimizer="adam", ema_decay=1.0)
