"""Reading a manifest from any fsspec URI: copied locally once (a store outage cannot break the
stream later), schema checked on open, rows parsed and streamed (manifests.manifest)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from manifests.manifest import ManifestError, ManifestRow, check_schema, index_columns, iter_rows
from workflows.errors import InputError
from workflows.storage import StorageOptions, filesystem, read_bytes


@dataclass(frozen=True)
class Shard:
    """One of `count` drivers' part of a manifest: rows index, index+count, index+2*count…
    (1-based row numbers, `index` from 1), so that every shard gets a mix of a sweep's rows."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'K/N' → Shard(K, N); ValueError (one line) unless 1 <= K <= N."""
        k, sep, n = text.partition("/")
        if sep and k.strip().isdigit() and n.strip().isdigit():
            shard = cls(int(k), int(n))
            if 1 <= shard.index <= shard.count:
                return shard
        raise ValueError(f"expected K/N with 1 <= K <= N (e.g. 1/4), got {text!r}")

    def holds(self, row: int) -> bool:
        """Whether manifest row `row` (1-based) is this shard's."""
        return (row - 1) % self.count == self.index - 1

    def size(self, rows: int) -> int:
        """How many of a manifest's first `rows` rows are this shard's."""
        return len(range(self.index, rows + 1, self.count))

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Manifest:
    """A manifest on any fsspec URI: schema checked on open, rows streamed on each iteration
    (with a `shard`, only its rows; every row is still parsed, so that a duplicate pair_id is
    told apart the same way by every shard's driver)."""

    def __init__(
        self,
        uri: str,
        options: StorageOptions | None,
        limit: int | None,
        shard: Shard | None = None,
    ) -> None:
        self.uri, self.limit, self.shard = uri, limit, shard
        self.local, self.temporary = _local_copy(uri, options)  # an outage cannot break it later
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        uri, limit = self.uri, self.limit
        try:
            meta = pq.ParquetFile(self.local)
            self.num_rows = meta.metadata.num_rows
            schema = meta.schema_arrow
        except (OSError, ValueError) as e:
            raise ManifestError(f"{uri}: not a readable Parquet file ({e})") from None
        if limit is not None:
            self.num_rows = min(self.num_rows, limit)
        self.tag_fields = check_schema(schema)
        self.ignored = index_columns(schema)
        self.columns = [n for n in schema.names if n not in self.ignored]
        self.gives_ids = "pair_id" in schema.names  # else every id is derived from the inputs
        if self.num_rows == 0:
            raise ManifestError(f"{uri}: the manifest has no rows")

    @property
    def shard_rows(self) -> int:
        """The rows `rows()` yields: all (up to the limit), or the shard's part of them."""
        return self.num_rows if self.shard is None else self.shard.size(self.num_rows)

    @property
    def note(self) -> str | None:
        """A line saying which columns are ignored (a pandas index), or None."""
        if not self.ignored:
            return None
        names = ", ".join(repr(n) for n in self.ignored)
        return f"note: {self.uri}: ignoring column {names} (a pandas index; write with index=False)"

    def close(self) -> None:
        """Remove the local copy of a remote manifest."""
        if self.temporary:
            Path(self.local).unlink(missing_ok=True)

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def rows(self) -> Iterator[ManifestRow]:
        batches = pq.ParquetFile(self.local).iter_batches(batch_size=1024, columns=self.columns)
        for row in iter_rows(batches):
            if self.limit is not None and row.row > self.limit:
                return
            if self.shard is None or self.shard.holds(row.row):
                yield row


def _local_copy(uri: str, options: StorageOptions | None) -> tuple[str, bool]:
    """(a local path of the manifest, whether it is a temporary copy): remote manifests are
    downloaded once, with retries."""
    fs, path = filesystem(uri, options)
    if isinstance(fs, LocalFileSystem):
        if not fs.exists(path):
            raise ManifestError(f"{uri}: no such file")
        return str(path), False
    try:
        data = read_bytes(uri, options)
    except InputError as e:
        raise ManifestError(str(e)) from None
    _remove_orphans(Path(tempfile.gettempdir()))
    handle, local = tempfile.mkstemp(prefix=f"nst-manifest-{os.getpid()}-", suffix=".parquet")
    with os.fdopen(handle, "wb") as f:
        f.write(data)
    return local, True


def _remove_orphans(folder: Path) -> None:
    """Remove the copies that killed drivers left (SIGKILL, a preempted node: no `close`);
    a copy's name holds its driver's process id, and a live process's copy stays."""
    for path in folder.glob("nst-manifest-*-*.parquet"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                path.unlink(missing_ok=True)
            except OSError:  # another user's, in a shared temp folder: theirs to remove
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
