"""A real S3-protocol endpoint for tests: moto's ThreadedMotoServer on 127.0.0.1 with fake
credentials (as s3fs's own tests do). Only loopback traffic."""

from __future__ import annotations

import logging
import os
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_running: list[Any] = []  # moto servers started here (restarted ones included)

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """Start the server and point the AWS environment at it; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _running.append(server)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*FAKE_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(FAKE_ENV | {"AWS_ENDPOINT_URL": endpoint})
    try:
        yield endpoint
    finally:
        for running in [s for s in _running if s.get_host_and_port()[1] == port]:
            running.stop()
            _running.remove(running)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def reset(endpoint: str) -> None:
    """Empty the server (between tests) and drop s3fs's cached instances and listings."""
    import s3fs

    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    s3fs.S3FileSystem.clear_instance_cache()


@contextmanager
def outage(endpoint: str, seconds: float | None) -> Iterator[Any]:
    """Stop the moto server (its data stays in memory) and start it again on the same port,
    after `seconds`, or when the caller calls the yielded function (seconds=None)."""
    import time

    from moto.server import ThreadedMotoServer

    port = int(endpoint.rsplit(":", 1)[1])
    servers = [s for s in _running if s.get_host_and_port()[1] == port]
    servers[-1].stop()
    _running.remove(servers[-1])

    def restart() -> None:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        _running.append(server)

    if seconds is not None:
        time.sleep(seconds)
        restart()
        yield None
    else:
        yield restart
