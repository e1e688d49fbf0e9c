"""The driver's bookkeeping, no Ray needed: grouping streamed rows into batches for
--pairs-per-gpu, recording rows that never ran, and the local copies of remote manifests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from manifests.manifest import ManifestRow, parse_row
from workflows.batch import scheduler
from workflows.batch.manifest import Manifest
from workflows.batch.scheduler import RunCounts, _Batcher
from workflows.errors import StorageError
from workflows.storage import write_bytes
from workflows.tables import parquet_bytes


def rows(*iterations: int) -> list[ManifestRow]:
    base = {"content_uri": "c.jpg", "style_uri": "s.jpg", "image_size": 32}
    return [parse_row(i + 1, base | {"iterations": n, "seed": i}) for i, n in enumerate(iterations)]


def test_full_groups_leave_at_once_and_flush_empties_the_rest() -> None:
    batcher = _Batcher(size=2, limit=10)
    out = [b for r in rows(5, 7, 5, 7, 9) for b in batcher.add(r)]
    assert [[r.row for r in b] for b in out] == [[1, 3], [2, 4]]
    assert [[r.row for r in b] for b in batcher.flush()] == [[5]]
    assert batcher.waiting == 0 and batcher.flush() == []


def test_waiting_rows_are_bounded_by_the_limit() -> None:
    batcher = _Batcher(size=4, limit=4)  # five different keys: none ever fills up
    out = [b for r in rows(1, 2, 2, 3, 4, 5) for b in batcher.add(r)]
    assert [[r.row for r in b] for b in out] == [[2, 3]]  # the largest group leaves, partial
    assert batcher.waiting == 4
    assert sorted(r.row for b in batcher.flush() for r in b) == [1, 4, 5, 6]


def test_per_image_fields_do_not_split_a_group() -> None:
    base = {"content_uri": "c.jpg", "style_uri": "s.jpg", "image_size": 32}
    varied: list[dict[str, object]] = [
        {"style_weight": 10.0}, {"learning_rate": 0.1, "init": "random"},
        {"style_layer_weights": [1.0, 1, 1, 1, 1]}, {"target_loss": 5.0},
    ]  # fmt: skip
    batcher = _Batcher(size=4, limit=16)
    out = [b for i, v in enumerate(varied) for b in batcher.add(parse_row(i + 1, base | v))]
    assert [len(b) for b in out] == [4]


def test_a_row_error_that_cannot_be_recorded_stops_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver records a bad row's error itself; when the store is unreachable for the
    retry budget, the run stops rather than wait it out again for every later row. A local
    error (no retry mends it) is reported and the run goes on."""
    failures: list[Exception] = [
        StorageError("s3://b/out/pairs/x/result.parquet: storage unreachable for 3s (ConnectionError)"),
        PermissionError(13, "Permission denied"),
    ]  # fmt: skip

    def write_result(*args: Any) -> None:
        raise failures.pop(0)

    monkeypatch.setattr(scheduler, "write_result", write_result)
    row = parse_row(7, {"content_uri": "c.jpg", "style_uri": "s.jpg", "iterations": 0})
    assert row.error is not None
    counts = RunCounts()
    with pytest.raises(
        StorageError,
        match=r"unreachable for 3s \(ConnectionError\); stopped the run: .* \(the 0 pairs finished ok",
    ):
        scheduler._record_failure(None, row, row.error, 0, counts)  # type: ignore[arg-type]
    scheduler._record_failure(None, row, row.error, 0, counts)  # type: ignore[arg-type]
    assert "could not write the error result of row 7: " in capsys.readouterr().err
    assert counts.failed == 2


def test_copies_left_by_killed_drivers_are_removed(tmp_path, monkeypatch) -> None:
    """A driver killed outright (SIGKILL, a preempted node) cannot remove its manifest copy:
    the next remote manifest read on the machine removes copies whose driver is gone, keeps
    those of live drivers, and leaves one it may not remove (another user's)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    orphan, live, theirs = (tmp_path / f"nst-manifest-{pid}.parquet"
                            for pid in (f"{gone}-x1", f"{os.getpid()}-x1", f"{gone}-x2"))  # fmt: skip
    for path in (orphan, live, theirs):
        path.write_bytes(b"a driver's copy")
    unlink = Path.unlink

    def refused(path: Path, missing_ok: bool = False) -> None:
        if path == theirs:
            raise PermissionError(13, "Permission denied", str(path))
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    write_bytes(
        "memory://nst/m.parquet",
        parquet_bytes(pa.table({"content_uri": ["c.jpg"], "style_uri": ["s.jpg"]})),
    )
    with Manifest("memory://nst/m.parquet", None, None) as manifest:
        assert Path(manifest.local).parent == tmp_path and manifest.num_rows == 1
    assert not orphan.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, theirs.name])
