"""The driver killed mid-run (with its local Ray), then the same command again: completed pairs
are skipped, the others finish, and the tables hold exactly one row per manifest row. A driver
stopped by Ctrl-C or SIGTERM says so in run.json and on stderr, and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO

ROWS, ITERATIONS = 6, 30


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (the driver and the Ray it started)."""
    parent = psutil.Process(pid)
    family = [*parent.children(recursive=True), parent]
    for proc in family:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_mid_run(tmp_path: Path, examples: Path, weights_path: Path, rows: int = ROWS,
                   **kw: Any) -> tuple[list[str], dict[str, str], Path, subprocess.Popen[str]]:  # fmt: skip
    """Start `python -m workflows.run` on `rows` pairs and return once one pair is done."""
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({
        "content_uri": [str(examples / "content/tubingen.jpg")] * rows,
        "style_uri": [str(examples / "style/wave.jpg")] * rows,
        "seed": list(range(rows)), "init": ["random"] * rows,
        "image_size": [48] * rows, "iterations": [ITERATIONS] * rows,
    }), manifest)  # fmt: skip
    output = tmp_path / "out"
    command = [sys.executable, "-m", "workflows.run", "--manifest", str(manifest), "--output",
               str(output), "--model", "vgg16", "--weights", str(weights_path), "--quiet",
               "--yardstick-size", "0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # SIGINT as in a foreground process: a test run started in the background (`make test &`)
    # ignores it, the driver inherits that, and Python then never raises KeyboardInterrupt
    first = subprocess.Popen(
        command, cwd=REPO, env=env, text=True, preexec_fn=_default_sigint, **kw
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((output / "done").glob("*"))) < 1:
        time.sleep(0.2)
    return command, env, output, first


def test_driver_killed_then_rerun_completes_exactly_once(tmp_path: Path, examples: Path,
                                                         weights_path: Path) -> None:  # fmt: skip
    command, env, output, first = _start_mid_run(
        tmp_path, examples, weights_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done_before = len(list((output / "done").glob("*")))
    kill_tree(first.pid)
    assert 1 <= done_before < ROWS, "kill the driver mid-run"
    assert not (output / "results.parquet").exists()

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "pairs already ok" in second.stderr
    assert "run.json says a run started at " in second.stderr  # the killed one's "running"
    results = pq.read_table(output / "results.parquet").to_pylist()
    assert len(results) == ROWS and len({r["pair_id"] for r in results}) == ROWS
    assert all(r["status"] == "ok" for r in results)
    losses = pq.read_table(output / "losses.parquet").to_pylist()
    assert len(losses) == ROWS * (ITERATIONS + 1)
    assert len(list((output / "images").glob("*.png"))) == ROWS


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopped_driver_says_interrupted_and_leaves_nothing_running(
    tmp_path: Path, examples: Path, weights_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C, or SIGTERM as `ray job stop` sends it: exit 128+n with one line saying how to
    resume, run.json `interrupted`, and the local Ray the driver started is gone."""
    # 24 pairs: with 6, the other 5 could finish before the signal landed (exit 0, seen once)
    _, _, output, first = _start_mid_run(
        tmp_path, examples, weights_path, 24, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    family = psutil.Process(first.pid).children(recursive=True)
    assert family, "the driver started a local Ray"
    first.send_signal(signum)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 128 + signum, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted: finished pairs are kept in {output}; run the same command again to resume"
    )
    assert "SIGTERM received" not in stderr  # Ray's own handler dumps a stack and aborts
    run = json.loads((output / "run.json").read_text())
    assert run["status"] == "interrupted" and run["finished_at"] >= run["started_at"]
    done = len(list((output / "done").glob("*")))  # ≥ 1: _start_mid_run waited for one
    assert set(run["counts"]) == {"ok", "failed", "skipped", "retried", "redone"}  # so far
    assert run["counts"]["failed"] == 0 and run["counts"]["ok"] <= done
    assert run["cumulative_counts"]["ok"] == run["counts"]["ok"] and run["invocations"] == 1
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [p.name() for p in alive]
