"""Per-image optimizer state: dataclasses registered as pytrees (torch.utils._pytree), whose
tensors all hold one entry per image of the batch along dim 0, so that one `select_images`
drops the images that stopped from every tensor of a state, nested states included."""

from __future__ import annotations

from typing import Any, TypeVar

import torch
import torch.utils._pytree as pytree
from torch import Tensor

T = TypeVar("T")
S = TypeVar("S")


def state(cls: type[T]) -> type[T]:
    """Register a dataclass as a pytree (every field a child; non-tensor fields are kept)."""
    pytree.register_dataclass(cls)
    return cls


def select_images(tree: S, keep: Tensor) -> S:
    """The state with only the images `keep` (long indices into the batch) of every tensor."""
    out: Any = pytree.tree_map_only(Tensor, lambda t: t.index_select(0, keep), tree)
    return out  # type: ignore[no-any-return]


def per_image(values: list[float], like: Tensor) -> Tensor:
    """Per-image values as a (B, 1, ..., 1) tensor that broadcasts against `like`."""
    shape = (len(values),) + (1,) * (like.dim() - 1)
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)
