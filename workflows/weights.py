"""Weight resolution (outside nst_ops): `imagenet`, `random`, or any fsspec URI of a
torchvision-format state dict (whole VGG `features.N.weight` or trunk-only `N.weight`).
"""

from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from nst_ops.vgg import MODELS, check_state_dict
from workflows.errors import InputError
from workflows.storage import StorageOptions, read_bytes

DEFAULT_MODEL = "vgg19"
DEFAULT_WEIGHTS = "imagenet"
_IMAGENET = {"vgg16": "VGG16_Weights", "vgg19": "VGG19_Weights"}


@dataclass(frozen=True)
class ResolvedWeights:
    """Trunk state dict (`N.weight` keys, float32) or None for random init; `identity` is what
    run metadata records (e.g. `sha256:be3200d26788`, `random`)."""

    model: str
    state_dict: dict[str, Tensor] | None
    identity: str


def resolve_weights(
    model: str, spec: str, options: StorageOptions | None = None
) -> ResolvedWeights:
    """Resolve `--weights` once (on the driver). Raises InputError with a one-line reason."""
    if model not in MODELS:
        raise InputError(f"--model: unknown model {model!r}; valid: {', '.join(MODELS)}")
    if spec == "random":
        print(
            "WARNING: --weights random: untrained network, output shows NO style "
            "(smoke tests only)",
            file=sys.stderr,
        )
        return ResolvedWeights(model, None, "random")
    if spec == "imagenet":
        return _imagenet(model)
    shown = spec.split("?")[0]  # a presigned URL's query is a credential: never shown
    try:
        data = read_bytes(spec, options)
    except InputError as e:
        raise InputError(str(e).replace(spec, shown)) from None
    digest = hashlib.sha256(data).hexdigest()
    trunk = trunk_state_dict(data, shown)
    try:
        check_state_dict(model, trunk)
    except ValueError as e:
        raise InputError(f"--weights {shown}: {e}") from None
    return ResolvedWeights(model, trunk, f"sha256:{digest[:12]}")


def trunk_state_dict(data: bytes, name: str) -> dict[str, Tensor]:
    """Load with weights_only=True (no code runs); keep the features trunk as float32."""
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # anything not a weights-only pickle (e.g. KeyError of an image)
        first = f"{type(e).__name__}: {str(e).strip()}".splitlines()[0]
        raise InputError(f"{name}: not a loadable weights-only state dict ({first})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise InputError(f"{name}: expected a state dict of tensors")
    if any(k.startswith("features.") for k in obj):
        obj = {k.removeprefix("features."): v for k, v in obj.items() if k.startswith("features.")}
    trunk = {k: v.to(torch.float32) for k, v in obj.items() if k.split(".")[0].isdigit()}
    if not trunk:
        raise InputError(
            f"{name}: no VGG features keys (expected 'N.weight' or 'features.N.weight')"
        )
    return trunk


def _imagenet(model: str) -> ResolvedWeights:
    from torchvision import models

    enum = getattr(models, _IMAGENET[model]).IMAGENET1K_V1
    try:
        state = enum.get_state_dict(progress=False)
    except OSError as e:  # URLError is an OSError
        raise InputError(
            f"--weights imagenet: could not download torchvision's {model} weights ({e}); "
            "offline, pass --weights URI of a state dict"
        ) from None
    trunk = {
        k.removeprefix("features."): v.float()
        for k, v in state.items()
        if k.startswith("features.")
    }
    return ResolvedWeights(model, trunk, f"imagenet:{_IMAGENET[model]}.IMAGENET1K_V1")
