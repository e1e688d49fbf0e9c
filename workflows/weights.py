"""Weight resolution (outside nst_ops): `imagenet`, `random`, or any fsspec URI of a
torchvision-format state dict (whole VGG `features.N.weight` or trunk-only `N.weight`).
"""

from __future__ import annotations

import hashlib
import io
import re
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
    trunk = trunk_state_dict(data, f"--weights {shown}")
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
        reason = _load_failure(e, data)
        raise InputError(f"{name}: not a loadable weights-only state dict: {reason}") from None
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


def _load_failure(error: Exception, data: bytes) -> str:
    """Why torch.load(weights_only=True) refused `data`, in words: torch's own message is
    paragraphs long and suggests weights_only=False, which this tool never does."""
    if not data:
        return "the file is empty"
    if not data.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip; a legacy pickle
        return "not a PyTorch file (neither torch.save's zip archive nor a pickle)"
    text = str(error)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return (
            f"it holds {refused.group(1)}, which a weights-only load refuses (it could run "
            "code): save a dict of tensors alone"
        )
    unpickler = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if unpickler:
        return f"{unpickler.group(1).strip()} (not written by torch.save?)"
    if "zip archive" in text or isinstance(error, EOFError):
        first = text.strip().split(". ")[0] or type(error).__name__
        return f"truncated or damaged ({first})"
    first = f"{type(error).__name__}: {text.strip()}".splitlines()[0]
    return first if len(first) <= 200 else first[:200] + "…"


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
