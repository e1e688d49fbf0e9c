"""Figures of `nst report`: loss curves (matplotlib) and labelled contact sheets (Pillow)."""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot, no GUI backend to choose
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from PIL import Image, ImageDraw

from workflows.storage import StorageOptions, read_bytes

CELL = 160  # thumbnail height, px
LINE = 12  # label line height, px
CHAR = 6  # approximate width of a character of Pillow's default font, px


def loss_curves(data: pd.DataFrame, param: str, path: Path) -> None:
    """Total, content and style loss vs iteration, one line per value of `param` (log y). The
    curves are normalised per pair (workflows.report.queries.curves): 1 = the baseline's final."""
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for value, group in data.groupby("value", sort=True):
        for ax, column in zip(axes, ("total", "content", "style"), strict=True):
            positive = group[group[column] > 0]  # log axis: J_content is 0 at a content init
            ax.plot(positive["iteration"], positive[column], label=str(value))
    for ax, column in zip(axes, ("total", "content", "style"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(f"{column} loss / baseline's final, mean over pairs", fontsize=9)
    axes[0].legend(title=param, fontsize=7, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def frontier_plot(points: pd.DataFrame, param: str, title: str, path: Path) -> None:
    """frontier_figure written as a PNG."""
    frontier_figure(points, param, title).savefig(path, dpi=80)


def frontier_figure(points: pd.DataFrame, param: str, title: str) -> Figure:
    """One pair's values as points (yardstick content loss, yardstick style loss), on log axes
    (linear where the values span less than a decade), labelled by value; the Pareto frontier
    (points["on_frontier"]) joined by a line."""
    fig = Figure(figsize=(4.2, 3.6))
    ax = fig.subplots()
    content, style = points["yardstick_content_loss"], points["yardstick_style_loss"]
    ax.scatter(content, style, c=["C0" if f else "0.6" for f in points["on_frontier"]])
    front = points[points["on_frontier"]].sort_values("yardstick_content_loss")
    ax.plot(front["yardstick_content_loss"], front["yardstick_style_loss"], "C0-", lw=1)
    for row in points.itertuples():
        ax.annotate(str(row.value), (row.yardstick_content_loss, row.yardstick_style_loss),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
    short_number = FuncFormatter(lambda v, _: f"{v:.3g}")
    axes = ((ax.xaxis, content, ax.set_xscale), (ax.yaxis, style, ax.set_yscale))
    for axis, values, scale in axes:
        if values.max() < 10 * values.min():  # within a decade: linear, ticks told apart
            scale("linear")
            axis.set_major_locator(MaxNLocator(4))
            axis.get_major_formatter().set_powerlimits((-3, 4))  # type: ignore[attr-defined]
        else:
            scale("log")
            axis.set_major_formatter(short_number)
            axis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelsize=7)
    ax.tick_params(axis="x", which="both", labelrotation=30)
    ax.set_xlabel("yardstick content loss")
    ax.set_ylabel("yardstick style loss")
    ax.set_title("\n".join(textwrap.wrap(f"{title}: {param} frontier", 48)), fontsize=8)
    fig.tight_layout()
    return fig


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

    Layout: a (wrapped) label above each column and above each row's images.
    """
    thumbs = [[_thumb(uri, options) for uri in row] for row in cells]
    width = max(t.width for row in thumbs for t in row)
    rows, cols = len(thumbs), len(thumbs[0])
    col_text = [_wrap(label, width) for label in col_labels]
    row_text = [_wrap(label, cols * width) for label in row_labels]
    head = 4 + LINE * max(len(t) for t in col_text)
    row_heads = [4 + LINE * len(t) for t in row_text]
    sheet = Image.new("RGB", (cols * width, head + sum(row_heads) + rows * CELL), "white")
    draw = ImageDraw.Draw(sheet)
    for c, lines in enumerate(col_text):
        draw.multiline_text((c * width + 3, 2), "\n".join(lines), fill=(0, 0, 0), spacing=2)
    top = head
    for r, row in enumerate(thumbs):
        draw.multiline_text((3, top + 2), "\n".join(row_text[r]), fill=(90, 90, 90), spacing=2)
        top += row_heads[r]
        for c, thumb in enumerate(row):
            sheet.paste(thumb, (c * width, top))
        top += CELL
    sheet.save(path)
    return rows, cols


def _wrap(label: str, width: int) -> list[str]:
    """Break a label into lines that fit `width` px, preferring breaks after + , = and spaces."""
    per_line = max(8, width // CHAR - 1)
    lines, line = [], ""
    for token in re.split(r"(?<=[+,= ])", label):
        if line and len(line) + len(token) > per_line:
            lines.append(line)
            line = ""
        line += token
    return [*lines, line] if line else lines or [""]


def short(uri: Any) -> str:
    """File name without folders and suffix, for labels."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
