"""What `nst stylize` writes: where it may (checked before any work), in the format -o names,
and the closing line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("output", "losses", "message"),
    [
        ("taken/o.png", None, "taken/o.png: output not writable ({tmp}/taken is a file)"),
        ("taken/sub/o.png", None, "taken/sub/o.png: output not writable ({tmp}/taken is a file)"),
        ("o.png", "folder", "folder: output not writable (Is a directory)"),
    ],
)  # fmt: skip
def test_unwritable_output_exits_2_before_any_work(
    output: str, losses: str | None, message: str, tmp_path: Path, examples, nst
) -> None:
    (tmp_path / "taken").write_text("a file where a folder would go")
    (tmp_path / "folder").mkdir()
    extra = [] if losses is None else ["--losses", str(tmp_path / losses)]
    result = nst(
        "stylize", str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg"),
        "-o", str(tmp_path / output), *extra, "--weights", str(tmp_path / "no-such.pth"),
    )  # fmt: skip
    assert result.returncode == 2  # an error about the weights would mean work had begun
    assert result.stderr.strip() == f"error: {tmp_path}/{message.format(tmp=tmp_path)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "taken"]  # no probe left


def test_output_extension_sets_the_image_format(tmp_path: Path, weights_path: Path, examples,
                                                nst) -> None:  # fmt: skip
    """-o's extension picks the format (a .jpg holding PNG bytes used to be written); one the
    writer does not know is refused before any work."""
    from PIL import Image

    base = [str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg"),
            "--model", "vgg16", "--weights", str(weights_path), "--quiet", "--image-size", "32",
            "--iterations", "2", "--device", "cpu"]  # fmt: skip
    formats = {"a.jpg": "JPEG", "b.JPEG": "JPEG", "c.webp": "WEBP", "d.tif": "TIFF",
               "e.bmp": "BMP", "f.png": "PNG", "g": "PNG"}  # fmt: skip
    first = None
    for name, kind in formats.items():
        assert nst("stylize", *base, "-o", str(tmp_path / name)).returncode == 0
        with Image.open(tmp_path / name) as image:
            assert (image.format, image.size, image.mode) == (kind, (32, 24), "RGB")
            pixels = np.asarray(image, dtype=np.float64)
        first = pixels if first is None else first  # the same pixels, up to JPEG/WebP's loss
        assert np.abs(pixels - first).mean() < 8.0
    result = nst("stylize", *base, "-o", str(tmp_path / "h.xyz"))
    assert (result.returncode, result.stderr.strip()) == (2, (
        f"error: -o {tmp_path}/h.xyz: cannot write .xyz images; use one of .png, .jpg, .jpeg, "
        ".webp, .tif, .tiff, .bmp"))  # fmt: skip
    assert not list(tmp_path.glob("h*"))


def test_summary_says_what_compiling_cost(tmp_path: Path, examples, nst, monkeypatch) -> None:
    """One pair cannot amortise a compile: the closing line says its time (eager: nothing)."""
    import dataclasses

    import workflows.stylize as stylize_cli
    from workflows.pair import stylize_loaded as real

    args = ("stylize", str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg"),
            "-o", str(tmp_path / "o.png"), "--weights", "random", "--image-size", "32",
            "--iterations", "2")  # fmt: skip
    eager = nst(*args).stderr.strip().splitlines()[-1]
    assert eager.startswith(f"wrote {tmp_path}/o.png and ") and "compiling took" not in eager
    monkeypatch.setattr(stylize_cli, "stylize_loaded",
                        lambda *a: [dataclasses.replace(r, compile_s=12.34) for r in real(*a)])  # fmt: skip
    line = nst(*args).stderr.strip().splitlines()[-1]
    assert line.endswith("; compiling took 12.3 s of it (once per image shape and process; "
                         "--compile off skips it)")  # fmt: skip
