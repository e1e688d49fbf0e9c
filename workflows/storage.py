"""All file access goes through fsspec (s3fs for s3://), with the user's storage options.

Storage options may hold credentials: they are passed to fsspec only, never logged or written.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from workflows.errors import InputError

StorageOptions = dict[str, Any]


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
    return url_to_fs(uri, **opts)


def read_bytes(uri: str, options: StorageOptions | None = None) -> bytes:
    """Whole object; InputError naming the URI when it does not exist or is unreadable."""
    fs, path = filesystem(uri, options)
    try:
        with fs.open(path, "rb") as f:
            data: bytes = f.read()
    except FileNotFoundError:
        raise InputError(f"{uri}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{uri}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{uri}: permission denied") from None
    return data


def write_bytes(uri: str, data: bytes, options: StorageOptions | None = None) -> None:
    fs, path = filesystem(uri, options)
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(data)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def open_url(uri: str, mode: str = "rb", options: StorageOptions | None = None) -> Any:
    fs, path = filesystem(uri, options)
    return fs.open(path, mode)
