"""Figures of `nst report`: loss curves (matplotlib) and labelled contact sheets (Pillow)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from workflows.storage import StorageOptions, read_bytes  # noqa: E402

CELL = 160  # thumbnail height, px
LABEL = 18  # label strip height, px


def loss_curves(data: pd.DataFrame, param: str, path: Path) -> None:
    """Total, content and style loss vs iteration, one line per value of `param` (log y)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for value, group in data.groupby("value", sort=True):
        for ax, column in zip(axes, ("total", "content", "style"), strict=True):
            ax.plot(group["iteration"], group[column].clip(lower=1e-12), label=str(value))
    for ax, column in zip(axes, ("total", "content", "style"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(f"{column} loss")
    axes[0].legend(title=param, fontsize=7, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _thumb(uri: str | None, options: StorageOptions | None) -> Image.Image:
    if uri is None:
        return Image.new("RGB", (CELL, CELL), (235, 235, 235))
    image = Image.open(io.BytesIO(read_bytes(uri, options))).convert("RGB")
    width = max(1, round(image.width * CELL / image.height))
    return image.resize((width, CELL), Image.Resampling.LANCZOS)


def contact_sheet(
    cells: Sequence[Sequence[str | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: Path,
    options: StorageOptions | None = None,
) -> tuple[int, int]:
    """Grid of output images (rows × cols, None = missing) with labels; returns (rows, cols).

    Layout: a label strip above each column and a label strip above each row's images.
    """
    thumbs = [[_thumb(uri, options) for uri in row] for row in cells]
    width = max(t.width for row in thumbs for t in row)
    rows, cols = len(thumbs), len(thumbs[0])
    sheet = Image.new("RGB", (cols * width, LABEL + rows * (CELL + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(col_labels):
        draw.text((c * width + 4, 3), label[:40], fill=(0, 0, 0))
    for r, row in enumerate(thumbs):
        top = LABEL + r * (CELL + LABEL)
        draw.text((4, top + 3), row_labels[r][:80], fill=(90, 90, 90))
        for c, thumb in enumerate(row):
            sheet.paste(thumb, (c * width, top + LABEL))
    sheet.save(path)
    return rows, cols


def short(uri: Any) -> str:
    """File name without folders and suffix, for labels."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
