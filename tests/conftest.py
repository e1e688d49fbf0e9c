"""Shared fixtures. Real VGG16 weights and test images come from `$NST_SHARED` (default
`../shared` beside the repository); tests that need them skip with a clear reason otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NST_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "models" / "vgg16-hed-features.pth"
ARTISTIC = SHARED / "data" / "artistic"
PHOTO = SHARED / "data" / "photo"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: set NST_SHARED to the shared data folder")
    return path


@pytest.fixture(scope="session")
def weights_path() -> Path:
    return _need(WEIGHTS)


@pytest.fixture(scope="session")
def vgg16_state(weights_path: Path) -> dict[str, torch.Tensor]:
    from workflows.weights import trunk_state_dict

    return trunk_state_dict(weights_path.read_bytes(), str(weights_path))


@pytest.fixture(scope="session")
def artistic() -> Path:
    return _need(ARTISTIC)


@pytest.fixture(scope="session")
def photo_dir() -> Path:
    return _need(PHOTO)


@pytest.fixture(scope="session")
def examples() -> Path:
    return REPO / "examples"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need CUDA: skipped, with the reason, where there is none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run benchmarks/gpu_check.sh on one)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with fake credentials in the environment."""
    import s3util

    with s3util.moto_server() as endpoint:
        yield endpoint


def _local_ray() -> Iterator[None]:
    import ray

    if ray.is_initialized():  # a timed-out test's thread left a driver behind: do not cascade
        ray.shutdown()
    # "local": a new Ray even where a killed `ray start` left /tmp/ray/ray_current_cluster
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray per test module, with 2 fake GPUs."""
    yield from _local_ray()


@pytest.fixture(scope="module")
def ray_s3(s3_endpoint: str) -> Iterator[None]:
    """Local Ray started after moto: its workers inherit the (fake) AWS environment, as a real
    cluster's nodes have their own."""
    yield from _local_ray()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a test's inputs and outputs live: a local folder, then an S3 bucket (moto)."""
    if request.param == "local":
        yield str(tmp_path / "store")
        return
    import s3util

    from workflows.storage import filesystem

    s3util.reset(request.getfixturevalue("s3_endpoint"))
    fs, _ = filesystem("s3://bucket")
    fs.mkdir("bucket")
    yield "s3://bucket"


@pytest.fixture
def nst(capsys: pytest.CaptureFixture[str]):
    """Run the `nst` CLI in-process: a CompletedProcess of (exit status, stdout, stderr)."""
    import subprocess

    from workflows.cli import main

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        try:
            code = main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return run
