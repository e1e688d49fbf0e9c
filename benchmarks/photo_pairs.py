"""The pairs of the photo benchmarks: Luan et al.'s examples 1–8 (../shared/data/photo/N, with
his published output reference_output.png) and the face pair (examples/face, made by
benchmarks.face_pair; no published output), as folders in the layout that
../shared/tools/photo_metrics.py reads (content.png, style.png, content_seg.png,
style_seg.png)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import REPO, SHARED
from workflows.images import resize_long_side, to_tensor

PHOTO = SHARED / "data" / "photo"
FACE = REPO / "examples" / "face"
PAIRS = [str(n) for n in range(1, 9)] + ["face"]
NAMES = ("content", "style", "content_seg", "style_seg")


def pair_folder(name: str, out: Path) -> Path:
    """The folder of pair `name` ("1" … "8" or "face"); the face pair is written into
    out/pair_face as PNGs on first use."""
    if name != "face":
        return PHOTO / name
    folder = out / "pair_face"
    if not all((folder / f"{n}.png").exists() for n in NAMES):
        folder.mkdir(parents=True, exist_ok=True)
        for n in NAMES:
            source = FACE / (f"{n}.png" if n.endswith("_seg") else f"{n}.jpg")
            Image.open(source).convert("RGB").save(folder / f"{n}.png")
    return folder


def load(pair: Path, name: str, size: int) -> torch.Tensor:
    """pair/name as (3, H, W) in [0,1], long side `size`."""
    return to_tensor(resize_long_side(Image.open(pair / name).convert("RGB"), size))


def has_reference(pair: Path) -> bool:
    """Whether the pair has Luan's published output (pairs 1–8; not the face pair)."""
    return (pair / "reference_output.png").exists()
