"""Scoring photorealistic outputs for benchmarks.photo_quality: ../shared/tools/photo_metrics.py
(edge_corr ↑, seg_color ↓, seg_w1 ↓, affine_residual ↓) per image, and the table of a folder of
them."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchmarks.common import SHARED

METRICS = ("edge_corr", "seg_color", "seg_w1", "affine_res")  # the order of `scores`


def scores(pair: Path, path: Path) -> tuple[float, float, float, float]:
    """(edge_corr, seg_color, seg_w1, affine_residual) from ../shared/tools/photo_metrics.py;
    `pair` a folder with content.png, style.png and the two masks."""
    sys.path.insert(0, str(SHARED / "tools"))
    import photo_metrics

    edge, seg, _ = photo_metrics.metrics(str(pair), str(path))
    w1 = photo_metrics.seg_w1(str(pair), str(path))
    return edge, seg, w1, photo_metrics.residual(str(pair), str(path))


def record(rows: dict[str, list[tuple[float, ...]]], name: str, pair: Path, path: Path,
           phi: float, args: argparse.Namespace) -> None:  # fmt: skip
    values = (float("nan"),) * 4 if args.no_metrics else scores(pair, path)
    rows.setdefault(name, []).append((*values, phi))
    edge, seg, w1, residual = values
    print(
        f"  {pair.name} {name:32} edge {edge:.3f} seg {seg:.2f} w1 {w1:.2f} "
        f"residual {residual:.3f} Φ {phi:.4g}",
        flush=True,
    )


def table(rows: dict[str, list[tuple[float, ...]]], phi: bool = True) -> str:
    """Mean / median of each variant's scores (and Φ), one line per variant."""
    heads = [*METRICS, "Φ"] if phi else list(METRICS)
    cells = " ".join(f"{h:>13}" for h in heads)
    lines = [f"{'variant':34} {'pairs':>5} {cells}  (mean/median)"]
    for name, values in rows.items():
        stats = []
        for i in range(len(heads)):
            column = [v[i] for v in values]
            mean, median = statistics.fmean(column), statistics.median(column)
            stats.append(f"{mean:6.3g}/{median:<6.3g}")
        lines.append(f"{name:34} {len(values):5d} " + " ".join(stats))
    return "\n".join(lines)


def score_folder(out: Path, pairs: list[Path]) -> None:
    """The metrics table of images written by an earlier run (names {pair}_{variant}.png) for
    the pair folders `pairs` (benchmarks.photo_pairs: the face pair's is pair_face, whose
    images are face_*.png)."""
    rows: dict[str, list[tuple[float, ...]]] = {}
    for pair in pairs:
        name = pair.name.removeprefix("pair_")
        for path in sorted(out.glob(f"{name}_*.png")):
            variant = path.stem.split("_", 1)[1].replace("_", " ")
            rows.setdefault(variant, []).append(scores(pair, path))
    print(table(rows, phi=False))
