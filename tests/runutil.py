"""Helpers of the `nst run` tests: a manifest over the bundled examples on a local folder or
on S3 (moto), the CLI call, and reading a table back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from workflows.batch.config import RunConfig, WorkerConfig
from workflows.cli import main
from workflows.storage import read_bytes, write_bytes
from workflows.tables import parquet_bytes

ITERATIONS = 2


def put(local: Path, uri: str) -> str:
    write_bytes(uri, local.read_bytes())
    return uri


def table(uri: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(read_bytes(uri))).to_pylist()
    return rows


def make_manifest(store: str, examples: Path, weights: Path) -> tuple[str, str]:
    content = put(examples / "content/tubingen.jpg", f"{store}/in/tubingen.jpg")
    wave = put(examples / "style/wave.jpg", f"{store}/in/wave.jpg")
    starry = put(examples / "style/starry_night.jpg", f"{store}/in/starry.jpg")
    put(Path(__file__), f"{store}/in/notes.jpg")  # a text file named .jpg
    photo = {
        "content_uri": put(examples / "photo/content.jpg", f"{store}/in/photo.jpg"),
        "style_uri": put(examples / "photo/style.jpg", f"{store}/in/photo_style.jpg"),
        "content_mask_uri": put(examples / "photo/content_seg.png", f"{store}/in/c_seg.png"),
        "style_mask_uri": put(examples / "photo/style_seg.png", f"{store}/in/s_seg.png"),
        "photo_weight": 1e4,
        "tag_group": "photo",
    }
    common = {"image_size": 32, "iterations": ITERATIONS}
    rows: list[dict[str, Any]] = [
        {"content_uri": content, "style_uri": wave, "tag_group": "a"} | common,
        {"content_uri": content, "style_uri": starry, "tag_group": "a", "style_weight": 10.0}
        | common,
        {"content_uri": content, "style_uri": wave, "tag_group": "b", "optimizer": "adam"} | common,
        {"content_uri": content, "style_uri": f"{store}/in/missing.jpg", "tag_group": "b"} | common,
        {"content_uri": f"{store}/in/notes.jpg", "style_uri": wave, "tag_group": "c"} | common,
        {"content_uri": content, "style_uri": wave, "tag_group": "c", "iterations": 0},
        photo | common,
    ]
    manifest = f"{store}/manifest.parquet"
    columns = {k: [r.get(k) for r in rows] for r in rows for k in r}
    write_bytes(manifest, parquet_bytes(pa.table(columns)))
    weights_uri = put(weights, f"{store}/weights/vgg16.pth")
    return manifest, weights_uri


def nst_run(manifest: str, output: str, weights: str, *extra: str) -> int:
    return main(["run", "--manifest", manifest, "--output", output, "--model", "vgg16",
                 "--weights", weights, "--quiet", *extra])  # fmt: skip


def worker_config(output: str, **run: Any) -> WorkerConfig:
    """A worker's settings as `nst run` would derive them, with RunConfig fields `run`."""
    return RunConfig("manifest.parquet", output, **run).worker([])
