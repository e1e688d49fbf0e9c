"""Scoring photorealistic outputs for benchmarks.photo_quality: ../shared/tools/photo_metrics.py
(edge_corr ↑, seg_color ↓, affine_residual ↓) per image, and the table of a folder of them."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchmarks.common import SHARED

PHOTO = SHARED / "data" / "photo"


def scores(pair: Path, path: Path) -> tuple[float, float, float]:
    """(edge_corr, seg_color, affine_residual) from ../shared/tools/photo_metrics.py."""
    sys.path.insert(0, str(SHARED / "tools"))
    import photo_metrics

    edge, seg, _ = photo_metrics.metrics(str(pair), str(path))
    return edge, seg, photo_metrics.residual(str(pair), str(path))


def record(rows: dict[str, list[tuple[float, ...]]], name: str, pair: Path, path: Path,
           phi: float, args: argparse.Namespace) -> None:  # fmt: skip
    edge, seg, residual = (float("nan"),) * 3 if args.no_metrics else scores(pair, path)
    rows.setdefault(name, []).append((edge, seg, residual, phi))
    print(
        f"  {pair.name} {name:32} edge {edge:.3f} seg {seg:.2f} residual {residual:.3f} "
        f"Φ {phi:.4g}",
        flush=True,
    )


def score_folder(out: Path, pairs: list[int]) -> None:
    """The metrics table of images written by an earlier run (names {pair}_{variant}.png)."""
    rows: dict[str, list[tuple[float, ...]]] = {}
    for number in pairs:
        for path in sorted(out.glob(f"{number}_*.png")):
            variant = path.stem.split("_", 1)[1].replace("_", " ")
            edge, seg, residual = scores(PHOTO / str(number), path)
            rows.setdefault(variant, []).append((edge, seg, residual))
    print(f"{'variant':32} {'pairs':>5} {'edge_corr':>9} {'seg_color':>9} {'affine_res':>10}")
    for name, values in rows.items():
        means = [statistics.fmean(v[i] for v in values) for i in range(3)]
        print(f"{name:32} {len(values):5d} {means[0]:9.3f} {means[1]:9.2f} {means[2]:10.3f}")
