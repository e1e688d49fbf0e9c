"""All file access goes through fsspec (s3fs for s3://), with the user's storage options.

Storage options may hold credentials: they are passed to fsspec only, never logged or written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from workflows.errors import InputError, StorageError

StorageOptions = dict[str, Any]
T = TypeVar("T")

# How long reads and writes keep retrying an unreachable store (seconds); see `configure`.
_retry = {"seconds": float(os.environ.get("NST_STORAGE_RETRY_S", "60"))}
_NOT_TRANSIENT = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    InputError,
)


def configure(retry_seconds: float) -> None:
    """Set the retry budget of this process (driver and each worker call it)."""
    _retry["seconds"] = retry_seconds


def _transient(error: BaseException) -> bool:
    """Connection-type failures worth retrying (not: missing files, permissions, bad input)."""
    if isinstance(error, _NOT_TRANSIENT):
        return False
    names = {c.__module__.split(".")[0] for c in type(error).__mro__}
    return isinstance(error, (OSError, TimeoutError)) or bool(names & {"botocore", "aiohttp"})


def with_retries(uri: str, action: Callable[[], T]) -> T:
    """Run `action`, retrying transient storage failures with exponential backoff (0.5 s → 8 s)
    until the budget is spent; then StorageError naming the URI (never the credentials)."""
    deadline = time.monotonic() + _retry["seconds"]
    delay = 0.5
    while True:
        try:
            return action()
        except Exception as e:
            if not _transient(e):
                raise
            if time.monotonic() + delay > deadline:
                raise StorageError(
                    f"{uri}: storage unreachable for {_retry['seconds']:g}s ({type(e).__name__})"
                ) from None
            time.sleep(delay)
            delay = min(8.0, delay * 2)


def parse_storage_options(text: str | None) -> StorageOptions:
    """`--storage-options` JSON → dict (never echoed back: it may contain secrets)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise InputError("--storage-options: not valid JSON") from None
    if not isinstance(value, dict):
        raise InputError("--storage-options: must be a JSON object")
    return value


def filesystem(uri: str, options: StorageOptions | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for a URI or local path."""
    protocol = uri.split("://", 1)[0] if "://" in uri else "file"
    opts = dict(options or {}) if protocol in ("s3", "s3a") else {}
    if protocol in ("s3", "s3a") and "AWS_ENDPOINT_URL" in os.environ:
        opts.setdefault("endpoint_url", os.environ["AWS_ENDPOINT_URL"])
    try:
        fs, path = url_to_fs(uri, **opts)
    except (ImportError, ValueError) as e:  # gs:// without gcsfs, an unknown protocol
        raise InputError(f"{uri}: {str(e).splitlines()[0]}") from None
    return fs, str(path)


def list_names(uri: str, options: StorageOptions | None = None) -> list[str]:
    """The names of the entries directly in folder `uri` (fresh, with retries); [] when it
    does not exist."""
    fs, path = filesystem(uri, options)
    try:
        listing = with_retries(uri, lambda: fs.ls(path, detail=False, refresh=True))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p.rstrip("/").rsplit("/", 1)[-1] for p in listing]


def read_bytes(uri: str, options: StorageOptions | None = None) -> bytes:
    """Whole object; InputError naming the URI when it does not exist or is unreadable;
    StorageError when the store stays unreachable (after retries)."""
    fs, path = filesystem(uri, options)

    def read() -> bytes:
        with fs.open(path, "rb") as f:
            data: bytes = f.read()
        return data

    try:
        return with_retries(uri, read)
    except FileNotFoundError:
        raise InputError(f"{uri}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{uri}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{uri}: permission denied") from None


def write_bytes(uri: str, data: bytes, options: StorageOptions | None = None) -> None:
    """Write a whole object (retrying transient failures; see `with_retries`)."""
    fs, path = filesystem(uri, options)

    def write() -> None:
        if isinstance(fs, LocalFileSystem):
            fs.makedirs(fs._parent(path), exist_ok=True)
        with fs.open(path, "wb") as f:
            f.write(data)

    with_retries(uri, write)


def check_folder(uri: str, flag: str, options: StorageOptions | None = None) -> None:
    """InputError naming `flag` when the local folder `uri` cannot be one: it, or a folder
    above it, is a file (checked before any work; nothing is created). Remote stores have no
    folders to check."""
    fs, path = filesystem(uri, options)
    if not isinstance(fs, LocalFileSystem):
        return
    at = _existing(path)
    if not os.path.isdir(at):
        where = "is a file" if at == os.path.abspath(path) else f"{at} is a file"
        raise InputError(f"{flag} {uri}: {where}; a folder is needed there")


def _existing(path: str) -> str:
    """`path`, or the nearest folder above it that exists, as an absolute path."""
    at = os.path.abspath(path)
    while not os.path.lexists(at) and os.path.dirname(at) != at:
        at = os.path.dirname(at)
    return at


def check_writable(uri: str, options: StorageOptions | None = None) -> None:
    """InputError naming `uri` when a local file cannot be written there (checked before work
    whose result would be lost): its folder is made, the file opened for appending and, if it
    did not exist, removed again. Remote stores are not probed (no stray objects)."""
    fs, path = filesystem(uri, options)
    if not isinstance(fs, LocalFileSystem):
        return
    existed, parent = os.path.lexists(path), fs._parent(path)
    above = _existing(parent)
    if not os.path.isdir(above):
        raise InputError(f"{uri}: output not writable ({above} is a file)")
    try:
        fs.makedirs(parent, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as e:
        raise InputError(f"{uri}: output not writable ({e.strerror or e})") from None
    if not existed:
        os.remove(path)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])
