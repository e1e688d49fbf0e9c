"""The cluster user's path, end to end: `ray start --head` (fake GPUs), `ray job submit
--working-dir .` of `python -m workflows.run` over S3 (moto; credentials only in the job's
runtime_env), the head killed mid-run, a new head, the same command again: the job succeeds,
resuming where the first left off.

The head runs in its own Ray temp dir (RAY_TMPDIR) and session; teardown kills what ran there."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3util
import yaml
from conftest import REPO

from workflows.storage import filesystem, read_bytes, write_bytes
from workflows.tables import parquet_bytes

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
BUCKET = "jobs"


class Head:
    """A `ray start --head` in its own session (process group) and Ray temp dir."""

    def __init__(self, ray_tmp: Path) -> None:
        self.ray_tmp, self.port, self.dashboard = ray_tmp, s3util.free_port(), s3util.free_port()
        private = {*s3util.FAKE_ENV, "AWS_ENDPOINT_URL", "RAY_ADDRESS"}  # the job gets its own
        self.env = {k: v for k, v in os.environ.items() if k not in private} | {
            "RAY_TMPDIR": str(ray_tmp),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # `python` = this venv's
            "RAY_AUTH_MODE": "token",
            # the head's token, which the CLI sends: `ray start` makes none, and
            # ~/.ray/auth_token exists only where a local ray.init() ran before
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self.pgid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"

    def start(self) -> None:
        command = [str(BIN / "ray"), "start", "--head", "--num-cpus", "2", "--num-gpus", "2",
                   "--dashboard-host", "127.0.0.1", "--port", str(self.port),
                   "--dashboard-port", str(self.dashboard), "--include-dashboard", "true"]  # fmt: skip
        proc = subprocess.Popen(command, env=self.env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-3000:]
        self.pgid = proc.pid  # its daemons (GCS, raylet, dashboard) stay in its group
        self.wait_for_job_agent()

    def wait_for_job_agent(self, timeout: float = 120) -> None:
        """Until the head takes jobs: its dashboard waits only 10 s for the head's job agent,
        which on a loaded machine (seen after the autoscaler test) comes up later, and a
        submit before then fails ("No available agent to submit job, please try again
        later"). A trivial job, retried, is the probe."""
        deadline, attempt = time.monotonic() + timeout, 0
        while True:
            attempt += 1
            probe = self.cli("job", "submit", "--address", self.url, "--submission-id",
                             f"probe-{self.port}-{attempt}", "--no-wait", "--", "true",
                             timeout=60)  # fmt: skip
            if probe.returncode == 0:
                return
            busy = "No available agent" in probe.stdout + probe.stderr
            assert busy and time.monotonic() < deadline, probe.stdout[-2000:] + probe.stderr[-2000:]
            time.sleep(2)

    def kill(self) -> None:
        """SIGKILL the head's process group, then whatever else ran on this 'machine' (Ray's
        workers and the job's driver have groups of their own): the node is gone."""
        assert self.pgid is not None
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:  # already stopped
            pass
        for proc in psutil.process_iter():
            try:
                if proc.pid != os.getpid() and proc.environ().get("RAY_TMPDIR") == str(
                    self.ray_tmp
                ):
                    proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        time.sleep(2)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ray"), *args], env=self.env, cwd=REPO, text=True,
                              capture_output=True, timeout=timeout)  # fmt: skip


@pytest.fixture
def head(s3_endpoint: str) -> Iterator[Head]:
    ray_tmp = Path(tempfile.mkdtemp(prefix="nst-job-", dir="/tmp"))  # short: unix sockets
    head = Head(ray_tmp)
    yield head
    if head.pgid is not None:
        head.kill()  # not `ray stop`: that stops every Ray of this user on the machine
    shutil.rmtree(ray_tmp, ignore_errors=True)


def inputs(endpoint: str, examples: Path, weights: Path, tmp: Path) -> tuple[str, Path]:
    """Images, weights and a runtime_env file (credentials and endpoint as env vars)."""
    s3util.reset(endpoint)
    filesystem(f"s3://{BUCKET}")[0].mkdir(BUCKET)
    for name in ("content/tubingen.jpg", "style/wave.jpg", "style/starry_night.jpg"):
        write_bytes(f"s3://{BUCKET}/in/{name}", (examples / name).read_bytes())
    write_bytes(f"s3://{BUCKET}/models/vgg16.pth", weights.read_bytes())
    runtime_env = tmp / "runtime_env.yaml"
    env_vars = {k: os.environ[k] for k in s3util.FAKE_ENV} | {"AWS_ENDPOINT_URL": endpoint}
    runtime_env.write_text(yaml.safe_dump({"env_vars": env_vars}))
    return f"s3://{BUCKET}/models/vgg16.pth", runtime_env


def manifest(name: str, rows: int, size: int, iterations: int) -> str:
    styles = [f"s3://{BUCKET}/in/style/{s}.jpg" for s in ("wave", "starry_night")]
    uri = f"s3://{BUCKET}/manifests/{name}.parquet"
    write_bytes(uri, parquet_bytes(pa.table({
        "content_uri": [f"s3://{BUCKET}/in/content/tubingen.jpg"] * rows,
        "style_uri": [styles[i % 2] for i in range(rows)], "seed": list(range(rows)),
        "init": ["random"] * rows, "image_size": [size] * rows, "iterations": [iterations] * rows,
    })))  # fmt: skip
    return uri


def submit_command(head: Head, runtime_env: Path, manifest_uri: str, output: str,
                   weights: str, submission_id: str, wait: bool = True) -> list[str]:  # fmt: skip
    return [str(BIN / "ray"), "job", "submit", "--address", head.url, "--working-dir", ".",
            "--runtime-env", str(runtime_env), "--submission-id", submission_id,
            *([] if wait else ["--no-wait"]), "--",
            "python", "-m", "workflows.run", "--manifest", manifest_uri, "--output", output,
            "--model", "vgg16", "--weights", weights, "--num-workers", "2", "--quiet"]  # fmt: skip


def results(output: str) -> list[dict[str, Any]]:
    filesystem(output)[0].invalidate_cache()  # the done/ listings above are cached
    rows: list[dict[str, Any]] = pq.read_table(
        io.BytesIO(read_bytes(f"{output}/results.parquet"))
    ).to_pylist()
    return rows


def done_count(output: str) -> int:
    fs, path = filesystem(f"{output}/done")
    try:
        return len(fs.ls(path, refresh=True))
    except FileNotFoundError:
        return 0


def test_job_submit_runs_a_manifest_and_resumes_after_the_head_dies(
    head: Head, s3_endpoint: str, examples: Path, weights_path: Path, tmp_path: Path
) -> None:
    weights, runtime_env = inputs(s3_endpoint, examples, weights_path, tmp_path)
    head.start()

    # 1. the head dies mid-run
    big, output = manifest("big", 6, 64, 40), f"s3://{BUCKET}/runs/big"
    log = tmp_path / "first-job.log"
    with log.open("wb") as sink:
        first = subprocess.Popen(
            submit_command(head, runtime_env, big, output, weights, "nst-big-1"),
            env=head.env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and done_count(output) < 1 and first.poll() is None:
            time.sleep(0.5)
        head.kill()
        first.kill()
    before = done_count(output)
    assert 1 <= before < 6, f"kill the head mid-run; the job's log:\n{log.read_text()[-3000:]}"

    # 2. a new head; the same command runs through the job server, resumes and finishes
    head.start()
    again = subprocess.run(submit_command(head, runtime_env, big, output, weights, "nst-big-2"),
                           env=head.env, cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    logs = again.stdout + again.stderr
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    status = head.cli("job", "status", "--address", head.url, "nst-big-2").stdout
    assert "Job 'nst-big-2' succeeded" in status  # its status is SUCCEEDED
    skipped = int(logs.split("pairs already ok")[0].rsplit("skipped ", 1)[1])
    assert skipped >= before
    rows = results(output)
    assert len(rows) == 6 and len({r["pair_id"] for r in rows}) == 6
    assert {r["status"] for r in rows} == {"ok"}
    assert all(len(r["gpu_ids"]) == 1 and r["gpu_ids"][0] in (0, 1) for r in rows)
    losses = pq.read_table(io.BytesIO(read_bytes(f"{output}/losses.parquet")))
    assert losses.num_rows == 6 * 41
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in logs
