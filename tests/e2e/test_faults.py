"""Faults that must be survived: a worker killed mid-pair, the S3 endpoint going away, out of GPU
memory; and credentials never leaking into outputs or logs."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pytest
import ray
import s3util
from runutil import table

from workflows.cli import main
from workflows.errors import EXIT_FAILED_ROWS
from workflows.storage import filesystem, read_bytes, write_bytes
from workflows.tables import parquet_bytes


def manifest(uri: str, examples: Path, rows: int, iterations: int, size: int = 64) -> str:
    content = str(examples / "content/tubingen.jpg")
    styles = [str(examples / f"style/{n}.jpg") for n in ("wave", "starry_night", "the_scream")]
    columns: dict[str, list[Any]] = {
        "content_uri": [content] * rows,
        "style_uri": [styles[i % 3] for i in range(rows)],
        "seed": list(range(rows)),
        "init": ["random"] * rows,
        "image_size": [size] * rows,
        "iterations": [iterations] * rows,
    }
    write_bytes(uri, parquet_bytes(pa.table(columns)))
    return uri


def fresh_bucket(endpoint: str, name: str) -> None:
    s3util.reset(endpoint)
    filesystem(f"s3://{name}")[0].mkdir(name)


def run_args(manifest_uri: str, output: str, weights: Path, *extra: str) -> list[str]:
    return ["run", "--manifest", manifest_uri, "--output", output, "--model", "vgg16",
            "--weights", str(weights), "--quiet", "--yardstick-size", "0", *extra]  # fmt: skip


@contextmanager
def background(args: list[str], codes: list[int]) -> Iterator[threading.Thread]:
    """`nst` with `args` in a thread (its exit status appended to `codes`), joined on the way
    out even when the test fails: a job left running would fail the tests after it."""
    job = threading.Thread(target=lambda: codes.append(main(args)), daemon=True)
    job.start()
    try:
        yield job
    finally:
        job.join(timeout=300)


def check_exactly_once(output: str, rows: int, iterations: int) -> list[dict[str, Any]]:
    results = table(f"{output}/results.parquet")
    assert len(results) == rows and len({r["pair_id"] for r in results}) == rows
    assert all(r["status"] == "ok" for r in results), [r["error"] for r in results]
    losses = table(f"{output}/losses.parquet")
    assert len(losses) == rows * (iterations + 1)
    assert len({(r["pair_id"], r["iteration"]) for r in losses}) == len(losses)
    fs, path = filesystem(f"{output}/images")
    assert len(fs.ls(path, refresh=True)) == rows
    return results


def pair_workers() -> list[psutil.Process]:
    """PairWorker actor processes of this test's Ray instance (descendants of its raylet)."""
    node = ray._private.worker._global_node
    assert node is not None
    (raylet,) = node.all_processes["raylet"]
    found = []
    for proc in psutil.Process(raylet.process.pid).children(recursive=True):
        try:
            text = " ".join(proc.cmdline()) + proc.name()
        except psutil.NoSuchProcess:
            continue
        if "PairWorker" in text:
            found.append(proc)
    return found


def test_worker_killed_mid_batch_is_retried_pair_by_pair_exactly_once(
    ray_s3, tmp_path, examples, weights_path
) -> None:
    """One worker, two batches of two pairs (--pairs-per-gpu 2), both queued on it; it is
    killed once the first is done: the second's pairs run again one by one (a batch that
    killed its worker, e.g. out of host memory, would again); one result per pair."""
    uri = manifest(str(tmp_path / "m.parquet"), examples, rows=4, iterations=80)
    output = tmp_path / "out"
    codes: list[int] = []
    args = run_args(uri, str(output), weights_path, "--pairs-per-gpu", "2", "--num-workers", "1")
    with background(args, codes):
        deadline = time.monotonic() + 300  # the worker imports torch: slow on a loaded machine
        while len(list(output.glob("done/*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(output.glob("done/*"))) >= 2, "the first batch did not finish in 300 s"
        (victim,) = pair_workers()  # done with its first batch; the second is queued on it
        os.kill(victim.pid, signal.SIGKILL)
    assert codes == [0]
    results = check_exactly_once(str(output), rows=4, iterations=80)
    assert sorted((r["attempt"], r["batch_size"]) for r in results) == [(1, 2)] * 2 + [(2, 1)] * 2
    meta = json.loads(read_bytes(f"{output}/run.json"))
    assert meta["counts"]["retried"] == 2 and meta["counts"]["ok"] == 4


@pytest.mark.timeout(180, method="thread")  # the bug it guards against hung in ray.wait
def test_more_workers_than_the_cluster_holds_strand_no_pair(
    ray_s3, tmp_path, examples, weights_path, monkeypatch, capsys
) -> None:
    """--num-workers 3 on 2 (fake) GPUs: the third worker never starts; it gets no pair (the
    run used to wait forever on the pairs queued on it), and a warning says why."""
    from workflows.batch import pool

    monkeypatch.setattr(pool, "PENDING_WARN_S", 1.0)
    uri = manifest(str(tmp_path / "m.parquet"), examples, rows=6, iterations=30, size=32)
    assert main(run_args(uri, str(tmp_path / "out"), weights_path, "--num-workers", "3")) == 0
    err = capsys.readouterr().err
    assert re.search(r"WARNING: [123] of 3 workers \(1 GPU, 1 CPU each\) have not started after "
                     r"1 s: the cluster has no room for them \(free now: \d+ GPU", err), err  # fmt: skip
    results = check_exactly_once(str(tmp_path / "out"), rows=6, iterations=30)
    assert {g for r in results for g in r["gpu_ids"]} <= {0, 1}


@pytest.mark.parametrize("where", ["file/sub/x.png", "file/x.png", "folder"])
def test_local_errors_no_retry_can_mend_are_raised_at_once(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflows.errors import StorageError

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"retried a local error ({seconds} s backoff)")

    monkeypatch.setattr("workflows.storage.time.sleep", no_sleep)
    (tmp_path / "file").write_text("a file where a folder would go")
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError) as error:  # NotADirectoryError, FileExistsError, IsADirectory
        write_bytes(str(tmp_path / where), b"png")
    assert not isinstance(error.value, StorageError)


def test_s3_outage_is_retried(ray_s3, s3_endpoint, examples, weights_path) -> None:
    fresh_bucket(s3_endpoint, "outage")
    uri = manifest("s3://outage/m.parquet", examples, rows=4, iterations=30)
    codes: list[int] = []
    args = run_args(uri, "s3://outage/out", weights_path, "--storage-retry-seconds", "60")
    with background(args, codes):
        time.sleep(4.0)
        with s3util.outage(s3_endpoint, seconds=6.0):
            pass
    assert codes == [0]
    check_exactly_once("s3://outage/out", rows=4, iterations=30)


@contextmanager
def down_from_first_submit(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The S3 server stops as the driver hands out its first call, and comes back on the way
    out; yields the driver's events in order: "submit" (a call handed out), "done" (one
    finished)."""
    from workflows.batch.pool import WorkerPool

    events: list[str] = []
    real_submit, real_next = WorkerPool.submit, WorkerPool.next_done
    with ExitStack() as down:
        restart: list[Any] = []

        def submit(pool: Any, batch: list[Any], attempt: int) -> None:
            if not events:
                restart.append(down.enter_context(s3util.outage(endpoint, seconds=None)))
            events.append("submit")
            real_submit(pool, batch, attempt)

        def next_done(pool: Any) -> Any:
            done = real_next(pool)
            events.extend([] if done is None else ["done"])
            return done

        monkeypatch.setattr(WorkerPool, "submit", submit)
        monkeypatch.setattr(WorkerPool, "next_done", next_done)
        try:
            yield events
        finally:
            monkeypatch.undo()
            for again in restart:
                again()  # also when the test fails: the later tests share the server


def test_s3_down_for_good_stops_the_run_then_rerun_completes(
    ray_s3, s3_endpoint, examples, weights_path, capsys, monkeypatch
) -> None:
    """The store goes down as the first pairs are handed out and stays down: the first result
    that cannot be written stops the run (exit 1) — no later row is handed out to wait out the
    retry budget and fail unrecorded — and the same command completes it once the store is
    back."""
    fresh_bucket(s3_endpoint, "down")
    rows = 8
    uri = manifest("s3://down/m.parquet", examples, rows=rows, iterations=12, size=48)
    args = run_args(uri, "s3://down/out", weights_path, "--storage-retry-seconds", "3")
    with down_from_first_submit(s3_endpoint, monkeypatch) as events:
        assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(r"storage error: s3://down/out/\S+: storage unreachable for 3s \(\w+\); "
                        r"stopped the run: results can no longer be written \(the 0 pairs finished ok in this "
                        r"run are kept, as are earlier runs'; run the same command again to resume\)", err[-1]), err  # fmt: skip
    assert events[0] == "submit" and "done" in events
    assert "submit" not in events[events.index("done") :], events
    assert events.count("submit") < rows
    assert main(args[:-2] + ["--storage-retry-seconds", "30"]) == 0
    check_exactly_once("s3://down/out", rows=rows, iterations=12)


SECRET_KEY, SECRET = "AKIATESTSECRETKEY123", "sup3r-s3cr3t-v4lue-do-not-log"


def test_credentials_never_appear_in_outputs_or_logs(
    ray_s3, s3_endpoint, examples, weights_path, capfd
) -> None:
    fresh_bucket(s3_endpoint, "sec")
    uri = manifest("s3://sec/m.parquet", examples, rows=2, iterations=2, size=32)
    bad = pa.table({"content_uri": ["s3://sec/missing.jpg"], "style_uri": ["s3://sec/x.jpg"]})
    write_bytes("s3://sec/bad.parquet", parquet_bytes(bad))
    options = json.dumps({"key": SECRET_KEY, "secret": SECRET})
    for m in (uri, "s3://sec/bad.parquet"):
        main(run_args(m, f"s3://sec/out-{m[-9:-8]}", weights_path, "--storage-options", options))
    main(["--debug", "manifest", "validate", "s3://sec/bad.parquet", "--check-uris",
          "--storage-options", options])  # fmt: skip
    captured = capfd.readouterr()
    texts = [captured.out, captured.err]
    fs, _ = filesystem("s3://sec")
    texts += [fs.cat(p).decode("latin-1") for p in fs.find("sec")]
    node = ray._private.worker._global_node
    assert node is not None
    logs = Path(node.get_session_dir_path()) / "logs"
    texts += [p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()]
    for text in texts:
        assert SECRET not in text and SECRET_KEY not in text


def test_a_call_ray_lost_is_retried_on_a_new_worker(
    ray_s3, tmp_path, examples, weights_path, monkeypatch
) -> None:
    """Any other Ray failure of a call (here RaySystemError; e.g. a result lost with its node)
    is a worker death too: the old worker is killed (alive, it would keep its GPU), a new one
    started and the pair retried; the run does not crash."""

    lost: list[Any] = []

    def dies(out: Any) -> Any:
        if isinstance(out, list) and not lost:  # the first call's results (not a ping's info)
            lost.append(out)
            return ray.exceptions.RaySystemError("lost the call's result")  # type: ignore[no-untyped-call]
        return None

    kills = patch_pool_get(monkeypatch, dies)
    uri = manifest(str(tmp_path / "m.parquet"), examples, rows=2, iterations=4, size=32)
    assert main(run_args(uri, str(tmp_path / "out"), weights_path)) == 0
    results = check_exactly_once(str(tmp_path / "out"), rows=2, iterations=4)
    attempts = [r["attempt"] for r in results]  # the killed worker's other call dies with it
    assert 2 in attempts and set(attempts) <= {1, 2}
    assert len(kills) == 3  # the lost call's worker, then the two workers at the end
    meta = json.loads(read_bytes(f"{tmp_path}/out/run.json"))
    assert meta["counts"]["retried"] == attempts.count(2) and meta["counts"]["ok"] == 2


def patch_pool_get(monkeypatch: Any, dies: Any) -> list[Any]:
    """The driver's ray.get, through which `dies(out)` may turn a call's results or a ping's
    info into the RayError it returns; the actors ray.kill was given, returned."""
    real_get, real_kill = ray.get, ray.kill
    kills: list[Any] = []

    def get(ref: Any, *args: Any, **kwargs: Any) -> Any:
        out = real_get(ref, *args, **kwargs)
        error = dies(out)
        if error is not None:
            raise error
        return out

    def kill(actor: Any, *args: Any, **kwargs: Any) -> None:
        kills.append(actor)
        real_kill(actor, *args, **kwargs)

    monkeypatch.setattr("workflows.batch.pool.ray.get", get)
    monkeypatch.setattr("workflows.batch.pool.ray.kill", kill)
    return kills


def test_a_worker_that_dies_starting_is_replaced_at_no_pairs_cost(
    ray_s3, tmp_path, examples, weights_path, monkeypatch
) -> None:
    """A worker that dies before it has started (its node lost: Ray can place a replacement
    on a node it has not yet found dead) is replaced without a pair's attempt: every pair ends
    ok on its first attempt, nothing counted retried."""
    first: list[Any] = []

    def dies(out: Any) -> Any:
        if isinstance(out, dict) and not first:  # the first ping's info: as if it had died
            first.append(out)
            os.kill(out["pid"], signal.SIGKILL)  # before it answered (its node lost)
            return ray.exceptions.ActorDiedError()  # a system death, not its __init__ raising
        return None

    kills = patch_pool_get(monkeypatch, dies)
    uri = manifest(str(tmp_path / "m.parquet"), examples, rows=2, iterations=4, size=32)
    assert main(run_args(uri, str(tmp_path / "out"), weights_path)) == 0
    results = check_exactly_once(str(tmp_path / "out"), rows=2, iterations=4)
    assert [r["attempt"] for r in results] == [1, 1]
    assert len(kills) == 3  # the one that died starting, then the two workers at the end
    meta = json.loads(read_bytes(f"{tmp_path}/out/run.json"))
    assert meta["counts"]["retried"] == 0 and meta["counts"]["ok"] == 2


@pytest.mark.parametrize("init_failed", [False, True], ids=["system", "init"])
def test_a_worker_that_never_starts_fails_its_pairs_after_the_retries(
    ray_s3, tmp_path, examples, weights_path, monkeypatch, init_failed
) -> None:
    """Workers whose every ping and call dies: the run neither hangs nor loses a row. A worker
    whose __init__ raised is not replaced before its calls fail; one that died of something
    else is, START_DEATHS_REPLACED times in a row. Either way each pair is tried 1 +
    --max-retries times and ends in an error result that says so; the run exits 3 (rows
    failed)."""
    from workflows.batch.pool import START_DEATHS_REPLACED

    def dies(out: Any) -> Any:
        return ray.exceptions.RayActorError(actor_init_failed=init_failed)

    kills = patch_pool_get(monkeypatch, dies)
    uri = manifest(str(tmp_path / "m.parquet"), examples, rows=2, iterations=4, size=32)
    out = str(tmp_path / "out")
    assert main(run_args(uri, out, weights_path, "--max-retries", "1")) == EXIT_FAILED_ROWS
    results = table(f"{out}/results.parquet")
    assert [r["status"] for r in results] == ["error", "error"]
    assert all(r["attempt"] == 2 and "worker died 2 times" in r["error"] for r in results)
    started_again = 2 * START_DEATHS_REPLACED  # two slots
    # kills: the replacements of workers dead starting, of those whose calls died (at most
    # one per call: 2 pairs x 2 attempts), and the two at the end
    assert len(kills) - 2 - (0 if init_failed else started_again) in range(1, 5)
