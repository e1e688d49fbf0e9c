"""`nst run --num-workers 2` on an autoscaling cluster that starts with no GPU node, shaped like
cluster/aws-gpu.yaml (a head without GPUs; a GPU worker type, min 0, max 2): Ray's own
autoscaler with its fake multi-node provider starts the nodes on this machine.

Ray's `AutoscalingCluster` helper cannot be used as it is: it runs `ray stop --force` (every
Ray of this user on the machine) and reads a defaults file the ray wheel does not ship
(autoscaler/_private/fake_multi_node/example.yaml). The head is started here as that helper
does (RAY_FAKE_CLUSTER=1, `ray start --head --autoscaling-config`), in a Ray temp dir and
process group of its own, with the full config written out."""

from __future__ import annotations

import json
import os
import secrets
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

from workflows.tables import parquet_bytes

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
PAIRS = 12


def autoscaler_config(port: int) -> dict[str, Any]:
    """cluster/aws-gpu.yaml's node types on the fake provider (nodes: local raylets)."""
    aws = yaml.safe_load((REPO / "cluster/aws-gpu.yaml").read_text())
    gpu = aws["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and aws["available_node_types"]["head"]["resources"] == {
        "CPU": 0
    }
    worker = {"resources": {"CPU": 2, "GPU": 1}, "node_config": {}, "min_workers": 0,
              "max_workers": 2}  # fmt: skip
    empty: dict[str, Any] = {key: [] for key in (
        "initialization_commands", "setup_commands", "head_setup_commands",
        "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands",
        "cluster_synced_files", "rsync_exclude", "rsync_filter")}  # fmt: skip
    return empty | {
        "cluster_name": "nst-fake", "max_workers": 2, "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.2, "docker": {}, "auth": {}, "file_mounts": {},
        "file_mounts_sync_continuously": False, "head_node_type": "ray.head.default",
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     "gcs_address": f"127.0.0.1:{port}"},
        # the head: 1 CPU for the driver's own tasks, no GPU (as aws-gpu.yaml's runs no pair)
        "available_node_types": {"gpu_worker": worker, "ray.head.default": {
            "resources": {"CPU": 1}, "node_config": {}, "max_workers": 0}},
    }  # fmt: skip


@pytest.fixture
def head() -> Iterator[tuple[str, dict[str, str]]]:
    """(address, environment) of a fake autoscaling head with no GPU node."""
    ray_tmp = tempfile.mkdtemp(prefix="nst-as-", dir="/tmp")  # short: unix sockets
    port = s3util.free_port()
    config = Path(ray_tmp) / "autoscaler.json"
    config.write_text(json.dumps(autoscaler_config(port)))
    env = os.environ | {
        "RAY_TMPDIR": ray_tmp, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
        # a token of its own: `ray start` makes none, and ~/.ray/auth_token exists only where
        # a local ray.init() ran before (not on a fresh machine, where this test runs first)
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }  # fmt: skip
    start = [str(BIN / "ray"), "start", "--head", "--port", str(port), "--node-ip-address",
             "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--include-dashboard", "false",
             f"--autoscaling-config={config}"]  # fmt: skip
    proc = subprocess.Popen(start, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-4000:]
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        # the head's daemons stay in its process group: its dashboard agent, whose environment
        # has no RAY_TMPDIR, outlived the test otherwise and kept port 52365, so the next
        # head's job agent could not start (test_job_submit: "No available agent")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in psutil.process_iter():  # the fake nodes, their workers: this temp dir's
            try:
                if p.pid != os.getpid() and p.environ().get("RAY_TMPDIR") == ray_tmp:
                    p.send_signal(signal.SIGKILL)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        time.sleep(1)


def test_autoscaling_from_zero_gpu_nodes(
    head: tuple[str, dict[str, str]], tmp_path: Path, examples: Path, weights_path: Path
) -> None:
    """The run starts with no GPU node and says so; the autoscaler adds two one-GPU nodes;
    every row is ok and both nodes ran pairs (the head none)."""
    address, env = head
    rows = {
        "content_uri": [str(examples / "content/tubingen.jpg")] * PAIRS,
        "style_uri": [str(examples / "style/wave.jpg")] * PAIRS,
        "style_weight": [10.0 + i for i in range(PAIRS)],
        "image_size": [32] * PAIRS,
        "iterations": [40] * PAIRS,
    }
    manifest = tmp_path / "manifest.parquet"
    manifest.write_bytes(parquet_bytes(pa.table(rows)))
    output = tmp_path / "out"
    command = [str(BIN / "nst"), "run", "--manifest", str(manifest), "--output", str(output),
               "--address", address, "--num-workers", "2", "--model", "vgg16", "--weights",
               str(weights_path), "--quiet"]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=420)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "no node of the Ray cluster has room for one worker (1 GPU and 1 CPU" in run.stderr
    assert "waiting for the cluster's autoscaler to add one" in run.stderr
    assert f"{PAIRS} manifest rows; 2 workers of 1 GPU and 1 CPU" in run.stderr
    assert f"{PAIRS} ok, 0 failed, 0 skipped (already ok), 0 retried" in run.stderr
    results = pq.read_table(output / "results.parquet").to_pylist()
    assert len(results) == PAIRS and {r["status"] for r in results} == {"ok"}
    nodes = {r["node_id"] for r in results}
    assert len(nodes) == 2 and all(n.endswith(("00001", "00002")) for n in nodes)  # not the head
