"""The photo quality benchmark runs end to end on one tiny pair and scores what it wrote with
../shared/tools/photo_metrics.py (so RESULTS.md's table can be regenerated)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SHARED


def test_photo_quality_writes_scored_images(
    photo_dir: Path, weights_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("skimage", reason="photo_metrics.py needs scikit-image (test extras)")
    command = [sys.executable, "-m", "benchmarks.photo_quality", "--size", "64", "--iterations",
               "2", "--pairs", "1", "--postprocess", "none", "smooth", "match", "--stage1-too",
               "--out", str(tmp_path)]  # fmt: skip
    env = {"NST_SHARED": str(SHARED), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in tmp_path.glob("1_*.png")} == {
        "1_luan.png",
        "1_photo_1e+04_none.png",
        "1_photo_1e+04_smooth.png",
        "1_photo_1e+04_match.png",  # --mask-color-match 1 (the default)
        "1_photo_stage1_none.png",
        "1_photo_stage1_smooth.png",
        "1_photo_stage1_match.png",
    }
    table = done.stdout.split("(mean/median)")[1]
    rows = [line.split() for line in table.strip().splitlines()[:7]]
    assert rows[0][0] == "Luan" and all(r[-6] == "1" for r in rows)  # pairs
    # each cell is mean/median: over one pair the two are equal
    cells = {" ".join(r[:-6]): [c.split("/") for c in r[-5:]] for r in rows}
    assert all(mean == median for r in cells.values() for mean, median in r)
    assert all(float(r[0][0]) > 0 for r in cells.values())  # edge_corr values
    assert rows[-1][:5] == ["photo", "stage", "1", "only,", "match"]
    w1 = {name: float(r[2][0]) for name, r in cells.items()}  # seg_w1 per variant
    assert w1["photo λ=1e+04 match"] < w1["photo λ=1e+04 smooth"]
    assert (tmp_path / "sheet.png").exists()
    again = subprocess.run([*command, "--score-only"], cwd=REPO, capture_output=True, text=True,
                           env=env, timeout=300)  # fmt: skip
    assert again.returncode == 0 and "photo 1e+04 match" in again.stdout
