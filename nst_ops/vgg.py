"""VGG feature extractor with paper layer names (Simonyan & Zisserman 2014; Gatys et al. 2015).

Layer names: `conv{b}_{i}` is the i-th convolution of block b *before* its ReLU, `relu{b}_{i}`
its rectified output, `pool{b}` the pooling closing block b. The modules are laid out as in
torchvision's `vgg16().features` / `vgg19().features`, so torchvision state dicts load; weights
are passed in (this module never downloads anything). torchvision itself is not imported: it
costs every process that stylizes (each Ray worker, each CLI call) seconds of start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, get_args

import torch
from torch import Tensor, nn

# Simonyan & Zisserman 2014, table 1, configurations D (vgg16) and E (vgg19): the output
# channels of each 3x3 convolution (padding 1, each followed by a ReLU); "M" a 2x2 pooling.
_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", *(256,) * 3, "M", *(512,) * 3, "M", *(512,) * 3, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", *(256,) * 4, "M", *(512,) * 4, "M", *(512,) * 4, "M"),
}
MODELS = tuple(_CONFIGS)
# fp32; tf32 (CUDA matmuls/convolutions in TF32, set process-wide by the caller); bf16 (autocast)
Precision = Literal["fp32", "tf32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
DEFAULT_PRECISION: Precision = "fp32"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(model: str) -> tuple[str, ...]:
    """Names of the modules of `torchvision.models.<model>().features`, in order."""
    if model not in _CONFIGS:
        raise ValueError(f"model: unknown model {model!r}; valid models: {', '.join(MODELS)}")
    names: list[str] = []
    block, index = 1, 1
    for item in _CONFIGS[model]:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return tuple(names)


VGG19_LAYER_NAMES = layer_names("vgg19")


def block_channels(name: str) -> int:
    """Channels N_l of a layer named conv{b}_{i} / relu{b}_{i} / pool{b} (VGG16 and VGG19):
    64, 128, 256, 512, 512 for blocks 1–5."""
    block = int(name.removeprefix("conv").removeprefix("relu").removeprefix("pool")[0])
    return int(64 * 2 ** (min(block, 4) - 1))


def check_layers(model: str, layers: Iterable[str]) -> None:
    """Raise ValueError naming the first layer `model` does not have, listing the valid ones."""
    valid = layer_names(model)
    for layer in layers:
        if layer not in valid:
            raise ValueError(f"unknown layer {layer!r} for {model}; valid: {' '.join(valid)}")


def min_side(model: str, layer: str) -> int:
    """The shortest image side (px) that still reaches `layer`: each pooling before it halves
    the image, so 2^poolings (16 for relu5_1)."""
    names = layer_names(model)
    return int(2 ** sum(name.startswith("pool") for name in names[: names.index(layer)]))


def parameter_shapes(model: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the trunk's parameters by state-dict key (`N.weight` (out, in, 3, 3),
    `N.bias` (out,); N the module index in torchvision's `features`)."""
    shapes: dict[str, tuple[int, ...]] = {}
    index, channels = 0, 3
    for item in _CONFIGS[model]:
        if item == "M":
            index += 1
            continue
        out = int(item)
        shapes[f"{index}.weight"], shapes[f"{index}.bias"] = (out, channels, 3, 3), (out,)
        index, channels = index + 2, out
    return shapes


def check_state_dict(model: str, state_dict: Mapping[str, Tensor]) -> None:
    """ValueError naming the first key of a features-trunk state dict that `model` does not
    have or expects in another shape (a vgg16 state dict given for vgg19, or the reverse).
    Keys the dict lacks are reported when a layer needs them (`load_trunk_weights`)."""
    shapes = parameter_shapes(model)
    for key, value in state_dict.items():
        if key not in shapes:
            raise ValueError(f"{key!r} is not a {model} parameter (is this a {model} state dict?)")
        if tuple(value.shape) != shapes[key]:
            raise ValueError(
                f"{key!r} has shape {tuple(value.shape)}, {model} expects {shapes[key]} "
                f"(is this a {model} state dict?)"
            )


def _build_modules(model: str, depth: int, pooling: str) -> list[nn.Module]:
    """The first `depth` modules of the trunk, created in torchvision's order (so a seeded
    random init draws the same weights as torchvision's `make_layers`)."""
    modules: list[nn.Module] = []
    channels = 3
    for item in _CONFIGS[model]:
        if len(modules) >= depth:
            break
        if item == "M":
            # Gatys et al. 2015 report nicer images with avg pooling
            modules.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
        else:
            # Not in-place, unlike torchvision's: it would overwrite a kept conv output.
            modules += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(item)
    return modules[:depth]


class VGGFeatures(nn.Module):
    """Frozen VGG trunk truncated after the deepest requested layer.

    Input: images (B, 3, H, W), RGB in [0, 1]; ImageNet normalisation is applied inside.
    Output of `forward`: {layer name: features (B, N_l, H_l, W_l)} for the requested layers.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        model: str,
        layers: Iterable[str],
        state_dict: Mapping[str, Tensor] | None = None,
        pooling: str = "max",
        seed: int = 0,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(
                f"precision: must be one of {', '.join(PRECISIONS)}; got {precision!r}"
            )
        self.precision = precision
        wanted = set(layers)
        check_layers(model, wanted)
        all_names = layer_names(model)
        depth = max(all_names.index(name) for name in wanted) + 1
        self.model_name = model
        self.names: tuple[str, ...] = all_names[:depth]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # seeded init; used only when no weights are given
            self.layers = nn.Sequential(*_build_modules(model, depth, pooling))
        if state_dict is not None:
            load_trunk_weights(self.layers, state_dict, model)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        wanted = set(layers)
        missing = wanted.difference(self.names)
        if missing:
            raise ValueError(f"layers {sorted(missing)} lie beyond this truncated trunk")
        out: dict[str, Tensor] = {}
        x = (image - self.mean) / self.std
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        bf16 = self.precision == "bf16"
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            for name, module in zip(self.names, self.layers, strict=True):
                x = module(x)
                if name in wanted:
                    out[name] = x.float() if bf16 else x  # losses and Grams stay in fp32
                    if len(out) == len(wanted):
                        break
        return out


def load_trunk_weights(trunk: nn.Sequential, state_dict: Mapping[str, Tensor], model: str) -> None:
    """Copy `N.weight`/`N.bias` (features-trunk keys) into the truncated `trunk`, as float32.

    Raises ValueError naming the key when a tensor is missing or has the wrong shape.
    """
    for index, module in enumerate(trunk):
        if not isinstance(module, nn.Conv2d):
            continue
        for attr in ("weight", "bias"):
            key = f"{index}.{attr}"
            target = getattr(module, attr)
            if key not in state_dict:
                raise ValueError(
                    f"weights: {model} needs {key!r}, missing from the state dict "
                    f"(is it a {model} one?)"
                )
            value = state_dict[key]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"weights: {key!r} has shape {tuple(value.shape)}, "
                    f"{model} expects {tuple(target.shape)} (is this a {model} state dict?)"
                )
            with torch.no_grad():
                target.copy_(value.to(torch.float32))
