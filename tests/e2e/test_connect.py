"""Where `nst run` finds Ray: no address → a new local Ray whatever an earlier, killed
`ray start` left behind; an address that does not answer → exit 1 with one clear line within
the connect timeout, never a silent hang."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from s3util import free_port


@pytest.fixture
def stale_tmp() -> Iterator[Path]:
    """A Ray temp dir (RAY_TMPDIR) whose ray_current_cluster names a dead GCS, as a killed
    `ray start --head` leaves it. Short path: Ray's unix sockets live below it."""
    folder = Path(tempfile.mkdtemp(prefix="nst-", dir="/tmp"))
    (folder / "ray").mkdir()
    (folder / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def nst_run(tmp: Path, examples: Path, ray_tmp: Path, *extra: str) -> tuple[int, str, float]:
    manifest = tmp / "m.parquet"
    pq.write_table(pa.table({
        "content_uri": [str(examples / "content/tubingen.jpg")],
        "style_uri": [str(examples / "style/wave.jpg")],
        "image_size": [32], "iterations": [1],
    }), manifest)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(ray_tmp)}
    command = [sys.executable, "-m", "workflows.run", "--manifest", str(manifest), "--output",
               str(tmp / "out"), "--model", "vgg16", "--weights", "random", "--quiet",
               "--yardstick-size", "0", *extra]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    return done.returncode, done.stderr, time.monotonic() - start


def test_no_address_starts_a_local_ray_despite_a_stale_cluster_file(tmp_path, examples,
                                                                     stale_tmp) -> None:  # fmt: skip
    code, err, _ = nst_run(tmp_path, examples, stale_tmp)
    assert code == 0, err[-2000:]
    (row,) = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    assert row["status"] == "ok"


@pytest.mark.parametrize("address", ["auto", "dead"])
def test_a_cluster_that_does_not_answer_ends_in_exit_1(tmp_path, examples, stale_tmp,
                                                       address) -> None:  # fmt: skip
    stale = (stale_tmp / "ray" / "ray_current_cluster").read_text()
    given = stale if address == "auto" else f"127.0.0.1:{free_port()}"
    flags = ["--address", address if address == "auto" else given, "--connect-timeout-seconds", "5"]
    code, err, seconds = nst_run(tmp_path, examples, stale_tmp, *flags)
    assert code == 1
    assert seconds < 5 + 25  # the timeout plus interpreter and import time
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: Ray cluster {address if address == 'auto' else given}")
    assert given in last and "no answer within 5 s" in last and "ray status" in last
    assert not (tmp_path / "out").exists()  # nothing written to --output


def test_a_worker_the_local_ray_cannot_hold_ends_in_exit_2(tmp_path, examples, stale_tmp) -> None:
    code, err, _ = nst_run(tmp_path, examples, stale_tmp, "--gpus-per-task", "0",
                           "--cpus-per-task", "1000")  # fmt: skip
    assert code == 2, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: no node of the Ray cluster has room for one worker (0 GPU and "
                           "1000 CPU: --gpus-per-task, --cpus-per-task); the largest has 0 GPU")  # fmt: skip
    assert last.endswith("(the local Ray that nst run started: lower them)")
    assert not (tmp_path / "out").exists()  # nothing written to --output
