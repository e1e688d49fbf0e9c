"""`nst stylize` end to end, its help, and its exit statuses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO

from manifests.fields import field_specs
from manifests.schema import LOSS_SCHEMA
from workflows.cli import main


def test_console_entry_point_help_lists_every_param_with_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workflows.cli", "stylize", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    out = result.stdout
    for spec in field_specs().values():
        assert spec.flag in out
    assert "(default: 1000)" in out and "(default: relu4_2)" in out


def test_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"nst-batch {version('nst-batch')}\n"


def test_stylize_writes_image_and_loss_table(tmp_path: Path, weights_path: Path, examples) -> None:
    out = tmp_path / "sub" / "out.png"
    code = main([
        "stylize", str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg"),
        "-o", str(out), "--model", "vgg16", "--weights", str(weights_path), "--quiet",
        "--image-size", "48", "--iterations", "4", "--style-layers", "relu1_1,relu2_1",
        "--tv-weight", "2", "--optimizer", "adam", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    from PIL import Image

    assert Image.open(out).size == (48, 36)
    table = pq.read_table(tmp_path / "sub" / "out.losses.parquet")
    assert table.schema.equals(LOSS_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3, 4]
    for r in rows:
        expected = r["content_loss"] + 1000 * r["style_loss"] + 2 * r["tv_loss"]
        assert r["total_loss"] == pytest.approx(expected, rel=1e-6)
        assert [k for k, _ in r["style_layer_losses"]] == ["relu1_1", "relu2_1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing.jpg", "missing.jpg: no such file"),
        ("empty.jpg", "empty.jpg: empty file"),
        ("text.jpg", "text.jpg: not an image"),
        ("trunc.png", "trunc.png: truncated or corrupt"),
    ],
)
def test_bad_images_exit_2_naming_the_file(
    tmp_path: Path, examples, content: str, message: str, nst
) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a picture\n")
    (tmp_path / "trunc.png").write_bytes(_png_prefix())
    result = nst(
        "stylize", str(tmp_path / content), str(examples / "style/wave.jpg"),
        "-o", str(tmp_path / "o.png"), "--weights", "random", "--image-size", "16",
        "--iterations", "1",
    )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "%|" not in result.stderr  # no empty progress bar: it starts after loading
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.png").exists()


def _png_prefix() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()[:70]


def test_bad_parameter_exits_2_naming_the_flag(tmp_path: Path, examples, nst) -> None:
    result = nst(
        "stylize", str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg"),
        "-o", str(tmp_path / "o.png"), "--style-weight", "-3",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --style-weight: must be >= 0, got -3.0"


def test_layer_the_model_lacks_exits_2_before_loading_weights(
    tmp_path: Path, examples, nst
) -> None:
    result = nst(
        "stylize", str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg"),
        "-o", str(tmp_path / "o.png"), "--model", "vgg16",
        "--weights", str(tmp_path / "no-such-weights.pth"), "--style-layers", "relu1_1,relu5_4",
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --style-layers: unknown layer 'relu5_4' for vgg16; valid: ")
    assert "relu5_3 pool5" in line and "relu5_4" not in line.split("valid: ")[1]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "tpu"], "error: --device tpu: expected cpu, cuda, cuda:N or auto"),
        (["--device", "cuda:x"], "error: --device cuda:x: expected cpu, cuda, cuda:N or auto"),
        (["--style-mask", "m.png"],
         "error: --content-mask and --style-mask go together: give both or neither"),
        (["--max-image-pixels", "0"],
         "nst stylize: error: argument --max-image-pixels: must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_bad_run_setting_exits_2_naming_the_flag(
    flags: list[str], message: str, tmp_path: Path, examples, nst
) -> None:
    result = nst(
        "stylize", str(examples / "content/tubingen.jpg"), str(examples / "style/wave.jpg"),
        "-o", str(tmp_path / "o.png"), *flags,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == message


@pytest.mark.parametrize(
    ("content", "flags", "message"),
    [
        ("foo://bucket/a.jpg", [], "error: foo://bucket/a.jpg: Protocol not known: foo"),
        ("s3://bucket/a.jpg", ["--storage-options", '{"bogus": 1}'],
         "error: --storage-options: AioSession.__init__() got an unexpected keyword argument "
         "'bogus'"),
    ],
)  # fmt: skip
def test_unusable_uri_or_storage_option_is_one_line(
    content: str, flags: list[str], message: str, tmp_path: Path, examples, nst
) -> None:
    result = nst(
        "stylize", content, str(examples / "style/wave.jpg"), "-o", str(tmp_path / "o.png"),
        "--weights", "random", "--image-size", "32", "--iterations", "1", *flags,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == message


def test_device_index_beyond_the_machines_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from workflows.errors import InputError
    from workflows.extractors import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    assert pick_device("cuda") == torch.device("cuda")
    with pytest.raises(
        InputError, match=r"^--device cuda:2: this machine has 2 GPU\(s\), cuda:0 … cuda:1$"
    ):
        pick_device("cuda:2")


def test_debug_shows_traceback(tmp_path: Path, examples, nst) -> None:
    result = nst(
        "--debug", "stylize", "nope.jpg", str(examples / "style/wave.jpg"),
        "-o", str(tmp_path / "o.png"), "--weights", "random",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_photo_masks_and_two_stages(tmp_path: Path, weights_path: Path, examples) -> None:
    photo = examples / "photo"
    out = tmp_path / "photo.png"
    code = main([
        "stylize", str(photo / "content.jpg"), str(photo / "style.jpg"), "-o", str(out),
        "--content-mask", str(photo / "content_seg.png"),
        "--style-mask", str(photo / "style_seg.png"),
        "--model", "vgg16", "--weights", str(weights_path), "--quiet", "--image-size", "64",
        "--iterations", "6", "--photo-weight", "1e6", "--device", "cpu",
    ])  # fmt: skip
    assert code == 0
    rows = pq.read_table(tmp_path / "photo.losses.parquet").to_pylist()
    assert [r["iteration"] for r in rows] == list(range(13))
    assert [r["stage"] for r in rows] == [1] * 6 + [2] * 7
    stage2 = [r["photo_loss"] for r in rows if r["stage"] == 2]
    assert all(r["photo_loss"] > 0 for r in rows)
    assert stage2[-1] < stage2[0]
    alpha = (256 / 64) ** 2  # a photo pair's default α: (256/image_size)²
    for r in rows:  # photo term weighted only in stage 2
        weight = 1e6 if r["stage"] == 2 else 0.0
        expected = alpha * r["content_loss"] + 1000 * r["style_loss"] + weight * r["photo_loss"]
        assert r["total_loss"] == pytest.approx(expected, rel=1e-5)


def test_progress_bar_counts_both_stages(tmp_path: Path, examples, nst) -> None:
    photo = examples / "photo"
    result = nst(
        "stylize", str(photo / "content.jpg"), str(photo / "style.jpg"), "-o",
        str(tmp_path / "o.png"), "--content-mask", str(photo / "content_seg.png"),
        "--style-mask", str(photo / "style_seg.png"), "--weights", "random",
        "--image-size", "32", "--iterations", "3", "--photo-weight", "1e4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts = re.findall(r"\| (\d+)/(\d+) \[", result.stderr)
    assert counts and {total for _, total in counts} == {"6"}  # 3 + 3 evaluations
    assert counts[-1] == ("6", "6")


def test_mask_that_is_not_an_image_exits_2(tmp_path: Path, examples, nst) -> None:
    (tmp_path / "mask.png").write_text("no")
    photo = examples / "photo"
    result = nst(
        "stylize", str(photo / "content.jpg"), str(photo / "style.jpg"),
        "-o", str(tmp_path / "o.png"), "--content-mask", str(tmp_path / "mask.png"),
        "--style-mask", str(photo / "style_seg.png"),
        "--weights", "random", "--quiet", "--image-size", "32", "--iterations", "1",
    )  # fmt: skip
    assert result.returncode == 2
    assert "mask.png: not an image file" in result.stderr.strip().splitlines()[-1]


def test_every_command_help_shows_each_flag_default(capsys) -> None:
    """`--help` of every subcommand ends each option that has a default with it."""
    import argparse

    from workflows.cli import build_parser

    def commands(
        parser: argparse.ArgumentParser, path: list[str]
    ) -> list[tuple[list[str], argparse.ArgumentParser]]:
        found = [(path, parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += commands(sub, [*path, name])
        return found

    checked = 0
    for path, parser in commands(build_parser(), []):
        text = " ".join(parser.format_help().split())  # unwrapped
        for action in parser._actions:
            if (
                action.option_strings
                and action.default not in (None, False, argparse.SUPPRESS)
                and not action.required
            ):
                assert "default" in " ".join((action.help or "").split()) or (
                    f"(default: {action.default})" in text
                ), (path, action.option_strings)
                checked += 1
    assert checked > 15
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for shown in ("--yardstick-size YARDSTICK_SIZE long side of the fixed yardstick evaluation, px (0: off; else at least 16) (default: 256)",
                  "--max-retries MAX_RETRIES retries of a pair whose worker died (default: 2)"):  # fmt: skip
        assert shown in out
