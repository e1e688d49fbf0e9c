"""Hostile and broken input: every case is a per-row error with a clear message (or works),
the rest of the run finishes, nothing is written outside --output; `nst manifest validate`
reports what it can up front."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from workflows.cli import main


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def save(image: Image.Image, path: Path, **kw: Any) -> str:
    image.save(path, **kw)
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, examples: Path) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    photo = Image.open(examples / "content/tubingen.jpg").convert("RGB")
    png = io.BytesIO()
    photo.save(png, "PNG")
    files = {
        "good": str(examples / "content/tubingen.jpg"),
        "style": str(examples / "style/wave.jpg"),
        "missing": str(d / "missing.jpg"),
        "empty": save_bytes(d / "empty.jpg", b""),
        "trunc_jpg": save_bytes(
            d / "trunc.jpg", (examples / "content/tubingen.jpg").read_bytes()[:900]
        ),
        "trunc_png": save_bytes(d / "trunc.png", png.getvalue()[:100]),
        "text": save_bytes(d / "notes.jpg", b"this is not a picture\n" * 20),
        "cmyk": save(photo.convert("CMYK"), d / "cmyk.jpg"),
        "grey16": save(
            Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257), d / "g16.png"
        ),
        "rgba": save(photo.convert("RGBA"), d / "rgba.png"),
        "palette": save(photo.convert("P"), d / "palette.png"),
        "bomb": save_bytes(d / "bomb.png", bomb_png(40000, 40000)),
        "huge": save(photo.resize((6000, 4500)), d / "huge.jpg", quality=70),
        "mask_none": save(Image.new("RGB", (40, 30), (128, 0, 0)), d / "mask_none.png"),
        "mask_small": save(Image.new("RGB", (17, 11), (255, 255, 255)), d / "mask_small.png"),
        "mask_white": save(Image.new("RGB", (384, 288), (255, 255, 255)), d / "mask_white.png"),
        "outside": str(d.parent / "escaped"),
    }
    return files


def save_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


# (name, row overrides, expected: "ok" or a piece of the error message)
def cases(f: dict[str, str]) -> list[tuple[str, dict[str, Any], str]]:
    g = {"content_uri": f["good"], "style_uri": f["style"]}
    masks = {"content_mask_uri": f["mask_white"], "style_mask_uri": f["mask_white"]}
    return [
        ("missing object", {**g, "content_uri": f["missing"]}, "missing.jpg: no such file"),
        ("zero-byte file", {**g, "content_uri": f["empty"]}, "empty.jpg: empty file"),
        ("truncated jpeg", {**g, "style_uri": f["trunc_jpg"]}, "trunc.jpg: truncated or corrupt"),
        ("truncated png", {**g, "content_uri": f["trunc_png"]}, "trunc.png: truncated or corrupt"),
        ("text named .jpg", {**g, "content_uri": f["text"]}, "notes.jpg: not an image file"),
        ("cmyk jpeg", {**g, "content_uri": f["cmyk"]}, "ok"),
        ("16-bit png", {**g, "content_uri": f["grey16"]}, "ok"),
        ("rgba png", {**g, "style_uri": f["rgba"]}, "ok"),
        ("palette png", {**g, "content_uri": f["palette"]}, "ok"),
        ("decompression bomb", {**g, "content_uri": f["bomb"]}, "bomb.png:"),
        ("huge legal image", {**g, "content_uri": f["huge"]}, "ok"),
        ("mask without palette colours", {**g, **masks, "content_mask_uri": f["mask_none"]},
         "mask_none.png: content mask has no pixel of any palette colour"),
        ("mask of another size", {**g, **masks, "content_mask_uri": f["mask_small"]}, "ok"),
        ("mask that is not an image", {**g, **masks, "style_mask_uri": f["text"]},
         "notes.jpg: not an image file"),
        ("only one mask", {**g, "content_mask_uri": f["mask_white"]},
         "content_mask_uri: given without style_mask_uri: give both masks or neither"),
        ("unknown layer", {**g, "style_layers": ["relu1_1", "relu6_1"]}, "unknown layer 'relu6_1'"),
        ("layer beyond vgg16", {**g, "style_layers": ["relu5_4"]}, "style_layers: unknown layer 'relu5_4' for vgg16"),
        ("negative weight", {**g, "style_weight": -1.0}, "style_weight: must be >= 0"),
        ("nan weight", {**g, "content_weight": float("nan")}, "content_weight: must be finite"),
        ("zero iterations", {**g, "iterations": 0}, "iterations: must be between 1 and 100000"),
        ("absurd iterations", {**g, "iterations": 10**9}, "iterations: must be between 1 and 100000"),
        ("layer weights length", {**g, "style_layer_weights": [1.0]}, "has 1 values for 5"),
        ("path traversal id", {**g, "pair_id": "../escaped"}, "pair_id '../escaped' must match"),
        ("slash id", {**g, "pair_id": "a/b"}, "pair_id 'a/b' must match"),
        ("duplicate id 1", {**g, "pair_id": "twice"}, "ok"),
        ("duplicate id 2", {**g, "pair_id": "twice", "seed": 3}, "duplicate pair_id 'twice' (first at row"),
        ("too small for relu5_1", {**g, "image_size": 16}, "too small for layer relu5_1"),
        ("coarsest scale too small", {**g, "image_size": 32, "iterations": 2, "scales": [16, 32]},
         "at the coarsest scale is too small for layer relu5_1"),
    ]  # fmt: skip


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    columns = {k: [r.get(k) for r in rows] for k in keys}
    pq.write_table(pa.table(columns), path)
    return str(path)


def test_every_hostile_row_fails_alone_with_a_clear_message(ray_cluster, tmp_path, inputs,
                                                            weights_path) -> None:  # fmt: skip
    table = cases(inputs)
    assert len(table) >= 20
    rows = [{"image_size": 32, "iterations": 1} | overrides for _, overrides, _ in table]
    manifest = write_manifest(tmp_path / "m.parquet", rows)
    output = tmp_path / "out"
    code = main(["run", "--manifest", manifest, "--output", str(output), "--model", "vgg16",
                 "--weights", str(weights_path), "--quiet", "--yardstick-size", "0"])  # fmt: skip
    assert code == 3
    results = pq.read_table(output / "results.parquet").to_pylist()
    assert len(results) == len(table)
    for (name, _, expected), result in zip(table, results, strict=True):
        if expected == "ok":
            assert result["status"] == "ok", f"{name}: {result['error']}"
        else:
            assert result["status"] == "error", name
            assert expected in result["error"], f"{name}: {result['error']}"
            assert "\n" not in result["error"] and "Traceback" not in result["error"]
    assert not Path(inputs["outside"]).exists()
    assert not (tmp_path / "escaped").exists()
    every = [p.resolve() for p in output.rglob("*")]
    assert all(str(p).startswith(str(output.resolve())) for p in every)


def test_validate_reports_what_it_can_up_front(tmp_path, inputs, capsys) -> None:
    table = cases(inputs)
    manifest = write_manifest(tmp_path / "m.parquet", [o for _, o, _ in table])
    assert main(["manifest", "validate", manifest, "--check-uris", "--model", "vgg16"]) == 1
    out = capsys.readouterr().out
    for number, (name, _, expected) in enumerate(table, start=1):
        up_front = name in {"missing object", "unknown layer", "negative weight", "nan weight",
                            "zero iterations", "absurd iterations", "layer weights length",
                            "path traversal id", "slash id", "duplicate id 2",
                            "layer beyond vgg16", "zero-byte file", "truncated jpeg",
                            "truncated png", "text named .jpg", "decompression bomb",
                            "mask that is not an image", "only one mask"}  # fmt: skip
        line = next((x for x in out.splitlines() if x.startswith(f"row {number}: ")), "")
        if up_front:
            assert expected.split(": ", 1)[-1][:20] in line, f"{name}: {line!r}"
        if expected == "ok":  # CMYK, 16-bit, huge legal images … are usable: no false alarm
            assert not line, f"{name}: {line!r}"
    beyond = next(
        n for n, (name, _, _) in enumerate(table, start=1) if name == "layer beyond vgg16"
    )
    assert f"row {beyond}: style_layers: unknown layer 'relu5_4' for vgg16; valid: " in out


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"content_uri": pa.array([], pa.string()), "style_uri": pa.array([], pa.string())}),
         "the manifest has no rows"),
        (pa.table({"content_uri": ["a"], "style_uri": ["b"], "iterations": ["many"]}),
         "column 'iterations' has type string, expected int64"),
        (pa.table({"content_uri": ["a"]}), "missing required column 'style_uri'"),
    ],
)  # fmt: skip
def test_whole_manifest_errors_before_any_work(tmp_path, table, message, capsys) -> None:
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    assert main(["run", "--manifest", str(path), "--output", str(tmp_path / "o"),
                 "--weights", "random"]) == 1  # fmt: skip
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
