"""VGG layer names, pre/post-activation features, truncation, weights loading."""

from __future__ import annotations

import pytest
import torch

from nst_ops.vgg import VGGFeatures, layer_names, parameter_shapes


def test_layer_names_follow_paper_convention() -> None:
    names = layer_names("vgg19")
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert "relu5_4" in names and "relu5_4" not in layer_names("vgg16")
    assert len(layer_names("vgg16")) == 31 and len(names) == 37


@pytest.mark.parametrize("model", ["vgg16", "vgg19"])
def test_trunk_is_torchvisions_features(model: str) -> None:
    """Same modules, same seeded init and, with torchvision's state dict, the same features as
    `torchvision.models.<model>().features` on the normalised image, at every layer."""
    from torchvision import models
    from torchvision.models.vgg import cfgs, make_layers

    names = layer_names(model)
    torch.manual_seed(3)
    reference = make_layers(cfgs[{"vgg16": "D", "vgg19": "E"}[model]])
    ours = VGGFeatures(model, [names[-1]], None, seed=3)
    assert [repr(m) for m in ours.layers] == [
        repr(m).replace("inplace=True", "") for m in reference
    ]
    assert all(
        torch.equal(a, b) for a, b in zip(ours.parameters(), reference.parameters(), strict=True)
    )

    torch.manual_seed(0)
    features = getattr(models, model)(weights=None).features.eval()
    shapes = {k: tuple(v.shape) for k, v in features.state_dict().items()}
    assert parameter_shapes(model) == shapes
    ours = VGGFeatures(model, [names[-1]], features.state_dict())
    image = torch.rand(2, 3, 40, 40)
    out = ours(image, names)
    x = (image - ours.mean) / ours.std
    for name, module in zip(names, features, strict=True):
        x = module(x.clone())  # clone: torchvision's in-place ReLU
        assert torch.allclose(out[name], x, rtol=1e-5, atol=1e-6), name


def test_conv_and_relu_features_differ() -> None:
    """torchvision's ReLU(inplace=True) must not overwrite the stored conv output."""
    extractor = VGGFeatures("vgg19", ["relu4_2"], None)
    out = extractor(torch.rand(1, 3, 32, 32), ["conv4_2", "relu4_2", "conv1_1", "relu1_1"])
    for b in ("1_1", "4_2"):
        conv, relu = out[f"conv{b}"], out[f"relu{b}"]
        assert (conv < 0).any(), "conv output must be pre-activation (has negatives)"
        assert torch.equal(relu, conv.clamp(min=0))


def test_truncated_after_deepest_layer() -> None:
    extractor = VGGFeatures("vgg16", ["relu1_1", "relu3_1"], None)
    assert extractor.names[-1] == "relu3_1"
    assert len(extractor.layers) == layer_names("vgg16").index("relu3_1") + 1
    assert not any(p.requires_grad for p in extractor.parameters())


def test_avg_pooling() -> None:
    extractor = VGGFeatures("vgg16", ["pool1"], None, pooling="avg")
    assert isinstance(extractor.layers[-1], torch.nn.AvgPool2d)


def conv_weight(extractor: VGGFeatures) -> torch.Tensor:
    """The first conv layer's weight (3 → 64 channels, 3×3)."""
    conv = extractor.layers[0]
    assert isinstance(conv, torch.nn.Conv2d)
    return conv.weight


def test_unknown_layer_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="relu5_4.*valid:.*relu5_3"):
        VGGFeatures("vgg16", ["relu5_4"], None)


def test_weights_are_loaded_and_shape_checked(vgg16_state: dict[str, torch.Tensor]) -> None:
    extractor = VGGFeatures("vgg16", ["relu5_1"], vgg16_state)
    assert torch.equal(conv_weight(extractor), vgg16_state["0.weight"])
    bad = dict(vgg16_state)
    bad["2.weight"] = torch.zeros(3, 3, 3, 3)
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(3, 3, 3, 3\)"):
        VGGFeatures("vgg16", ["relu2_1"], bad)
    with pytest.raises(ValueError, match="vgg19 needs '16.weight', missing"):
        VGGFeatures("vgg19", ["relu5_1"], vgg16_state)


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = VGGFeatures("vgg16", ["relu1_1"], None, seed=3)
    b = VGGFeatures("vgg16", ["relu1_1"], None, seed=3)
    assert torch.equal(conv_weight(a), conv_weight(b))
    assert torch.equal(state, torch.random.get_rng_state())


def test_bf16_autocast_features_are_fp32_and_close() -> None:
    exact = VGGFeatures("vgg16", ["relu3_1"], None)
    bf16 = VGGFeatures("vgg16", ["relu3_1"], None, precision="bf16")
    image = torch.rand(1, 3, 32, 32)
    a, b = exact(image, ["relu3_1"])["relu3_1"], bf16(image, ["relu3_1"])["relu3_1"]
    assert b.dtype == torch.float32
    assert (a - b).abs().max() < 0.05 * a.abs().max()
    with pytest.raises(ValueError, match="precision: must be one of fp32, tf32, bf16"):
        VGGFeatures("vgg16", ["relu3_1"], None, precision="fp8")
