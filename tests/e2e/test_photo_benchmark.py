"""The photo quality benchmark runs end to end on one tiny pair and scores what it wrote with
../shared/tools/photo_metrics.py (so RESULTS.md's table can be regenerated)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED
from PIL import Image


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


def test_photo_post_time_prints_each_post_process_against_the_optimisation(
    photo_dir: Path, weights_path: Path
) -> None:
    command = [sys.executable, "-m", "benchmarks.photo_post_time", "--size", "48", "--iterations",
               "10", "--pairs", "1", "--short", "1", "--long", "2", "--repeat", "1",
               "--device", "cpu"]  # fmt: skip
    env = {"NST_SHARED": str(SHARED), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    head, _, row = done.stdout.strip().splitlines()[-3:]
    assert head.split(" | ")[5:] == ["match s (% of opt.)", "smooth s (% of opt.)",
                                     "affine s (% of opt.)", "guided s (% of opt.) |"]  # fmt: skip
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["1", "30×48"]
    per, fixed, total = (float(c) for c in cells[2:5])
    assert total == pytest.approx(fixed + 20 * per, abs=1.0)  # 10 + 10 iterations
    for cell in cells[5:]:  # "seconds (share %)", the share of the optimisation's seconds
        seconds, share = cell.split(" (")
        # the share is of the unrounded seconds: within what the printed total (to 0.1 s, ~1 s
        # here) and seconds (3 digits) allow, and 3 digits of its own
        low = 100 * float(seconds) * (1 - 5e-3) / (total + 0.05)
        high = 100 * float(seconds) * (1 + 5e-3) / max(total - 0.05, 1e-3)
        assert low * (1 - 5e-3) <= float(share.rstrip(" %)")) <= high * (1 + 5e-3), cell


def test_mask_agreement_transfer_scores_hand_auto_and_no_masks(photo_dir: Path) -> None:
    """--transfer prints, per pair, seg_w1 of the content after `match` with the hand masks,
    with no masks (the whole style) and with the auto masks, and their means: the hand masks'
    is below the whole style's (each region takes its own style region's colours)."""
    pytest.importorskip("skimage", reason="photo_metrics.py needs scikit-image (test extras)")
    command = [sys.executable, "-m", "benchmarks.mask_agreement", "--size", "96", "--regions",
               "3", "--pairs", "1", "3", "--transfer"]  # fmt: skip
    env = {"NST_SHARED": str(SHARED), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {line.split(":")[0].strip(): line for line in done.stdout.splitlines()}
    w1 = {}
    for name in ("hand masks", "no masks", "auto masks (3 regions)"):
        line = lines[f"transfer, {name}"]
        per_pair = line.rsplit("(", 1)[1].rstrip(")").split()
        assert len(per_pair) == 2  # pairs 1 and 3
        mean = float(line.split("seg_w1 ")[1].split()[0])
        assert mean == pytest.approx(sum(map(float, per_pair)) / 2, abs=0.01)
        w1[name] = [float(v) for v in per_pair]
    # 6.77 / 4.24 against 17.50 / 6.77 when written
    assert all(h < n for h, n in zip(w1["hand masks"], w1["no masks"], strict=True))
    assert "regions 3: mean IoU" in done.stdout


def test_mask_agreement_scores_the_face_pair_and_sheets_every_region_count(
    weights_path: Path, tmp_path: Path
) -> None:
    """--pairs face scores the face pair (examples/face) against its own hand masks, and
    --sheet has a row per pair and --regions value, six tiles each: content, hand, auto, style,
    hand, auto; the style's auto mask (K + 1 regions) shows several palette colours."""
    sheet = tmp_path / "sheet.png"
    command = [sys.executable, "-m", "benchmarks.mask_agreement", "--size", "64", "--regions",
               "2", "3", "--pairs", "face", "--sheet", str(sheet)]  # fmt: skip
    env = {"NST_SHARED": str(SHARED), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pairs face" in done.stdout
    for regions in (2, 3):
        line = next(x for x in done.stdout.splitlines() if x.startswith(f"regions {regions}:"))
        assert 0.0 < float(line.split("mean IoU ")[1].split()[0]) <= 1.0
    image = np.asarray(Image.open(sheet).convert("RGB"))
    assert image.shape == (2 * 160, 6 * 160, 3)
    for row in range(2):
        auto = image[row * 160 : (row + 1) * 160, 5 * 160 : 6 * 160].reshape(-1, 3)
        colours = {tuple(int(v) for v in c) for c in np.unique(auto, axis=0)}
        assert len(colours & {(0, 0, 255), (0, 255, 0), (0, 0, 0)}) >= 2, row  # blue, green, black


def test_quality_benchmarks_take_another_network_and_keep_its_stages_apart(
    photo_dir: Path, tmp_path: Path
) -> None:
    """--model vgg19 --weights FILE: both benchmarks run on that network and say which
    (its sha256); photo_quality's cached stages carry the network in their names, so a rerun
    with the default network does not reuse them; weights that cannot be had end the run
    with one line naming the file, as `nst run` does."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision.models.vgg19().features.state_dict(), path)
    env = {"NST_SHARED": str(SHARED), "PATH": "/usr/bin:/bin"}
    network = ["--model", "vgg19", "--weights", str(path)]
    agree = [sys.executable, "-m", "benchmarks.mask_agreement", "--size", "48", "--regions", "3",
             "--pairs", "1"]  # fmt: skip
    done = subprocess.run([*agree, *network], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "vgg19 (sha256:" in done.stdout and "regions 3: mean IoU" in done.stdout
    out = tmp_path / "quality"
    quality = [sys.executable, "-m", "benchmarks.photo_quality", "--size", "40", "--iterations",
               "1", "--pairs", "1", "--postprocess", "none", "--masks", "auto", "--no-metrics",
               "--out", str(out)]  # fmt: skip
    done = subprocess.run([*quality, *network], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    digest = done.stdout.split("vgg19 (sha256:")[1][:12]
    assert {p.name for p in out.glob("stage*.pt")} == {
        f"stage1_1_photo_vgg19_{digest}_auto3_40_1.pt",
        f"stage2_10000_1_photo_vgg19_{digest}_auto3_40_1.pt",
    }
    missing = [*agree, "--model", "vgg19", "--weights", str(tmp_path / "none.pth")]
    done = subprocess.run(missing, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1 and done.stdout.count("\n") <= 1
    assert done.stderr.strip().count("\n") == 0 and "none.pth: no such file" in done.stderr
