"""Sweeps (`manifests.sweep`, `nst manifest sweep`): the grid's cartesian product, folders and
globs of images, tags, --append, absolute mask paths, and the one-line errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.manifest import ManifestError, iter_rows
from manifests.sweep import parse_grid, sweep_table
from nst_ops.params import ParamError
from workflows.cli import main
from workflows.manifest_cli import expand_images
from workflows.storage import filesystem, write_bytes


def test_sweep_is_cartesian_product_with_list_params() -> None:
    grids = [
        parse_grid("style_weight=1e2,1e3,1e4"),
        parse_grid("style_layers=relu1_1+relu2_1,relu1_1+relu4_2+relu5_2"),
    ]
    table = sweep_table(["c1", "c2"], ["s1"], grids)
    assert table.num_rows == 2 * 1 * 3 * 2
    assert table.schema.field("style_layers").type == pa.list_(pa.string())
    assert ["relu1_1", "relu4_2", "relu5_2"] in table["style_layers"].to_pylist()
    assert sorted(set(table["style_weight"].to_pylist())) == [100.0, 1000.0, 10000.0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("bogus=1", "unknown field 'bogus'"), ("style_weight", "expected name=v1"),
     ("iterations=x", "cannot parse 'x' as int")],
)  # fmt: skip
def test_bad_grids(spec: str, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        parse_grid(spec)


def test_invalid_combination_rejected() -> None:
    with pytest.raises(ParamError, match="iterations"):
        sweep_table(["c"], ["s"], [parse_grid("iterations=0")])


@pytest.mark.parametrize(
    ("grids", "message"),
    [
        (["style_weight=abc"], "--grid: style_weight: cannot parse 'abc' as float"),
        (["bogus=1"], "--grid: unknown field 'bogus'; valid: content_weight, style_weight, "),
        (["iterations=0"], "--grid: iterations: must be between 1 and 100000, got 0"),
        (["style_weight=1", "style-weight=2", "seed=1"], "--grid: style_weight swept twice"),
    ],
)  # fmt: skip
def test_sweep_cli_errors_name_the_grid(grids, message, examples, tmp_path, capsys) -> None:
    command = ["manifest", "sweep", "--content", str(examples / "content"), "--style",
               str(examples / "style/wave.jpg"), "-o", str(tmp_path / "m.parquet")]  # fmt: skip
    for grid in grids:
        command += ["--grid", grid]
    assert main(command) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert not (tmp_path / "m.parquet").exists()


def test_sweep_cli_no_images_names_the_flag(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    command = ["manifest", "sweep", "--content", str(tmp_path / "empty"), "--style",
               str(tmp_path / "empty"), "-o", str(tmp_path / "m.parquet")]  # fmt: skip
    assert main(command) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --content {tmp_path}/empty: no images there (looked for .jpg, .jpeg, .png, "
        ".webp, .bmp, .tif, .tiff; hidden names skipped)"
    )


@pytest.fixture(params=["local", "s3"])
def folder(request: pytest.FixtureRequest, tmp_path) -> str:
    """A folder (local, or an S3 prefix on moto) holding images, hidden files and a note."""
    if request.param == "local":
        root = str(tmp_path / "imgs")
    else:
        import s3util

        s3util.reset(request.getfixturevalue("s3_endpoint"))
        filesystem("s3://bucket")[0].mkdir("bucket")
        root = "s3://bucket/imgs"
    for name in ["a.jpg", "sub/B.PNG", "._a.jpg", ".thumbs/c.jpg", "notes.txt"]:
        write_bytes(f"{root}/{name}", b"bytes")
    return root


def test_sweep_expands_folders_and_globs_skipping_hidden_names(folder: str) -> None:
    """A folder gives its images recursively, a glob its matching images; hidden names (macOS
    `._x.jpg` copies, `.thumbs/`) are skipped unless named outright."""
    assert expand_images([folder]) == [f"{folder}/a.jpg", f"{folder}/sub/B.PNG"]
    assert expand_images([f"{folder}/*"]) == [f"{folder}/a.jpg"]
    assert expand_images([f"{folder}/.thumbs/*"]) == [f"{folder}/.thumbs/c.jpg"]
    named = [f"{folder}/._a.jpg", f"{folder}/notes.txt", f"{folder}/a.jpg"]
    assert expand_images(named) == named  # each kept, in the order given
    with pytest.raises(ManifestError, match=r"^--style .*/sub/\*\.jpg: no images there"):
        expand_images([f"{folder}/sub/*.jpg"], flag="--style")


def test_sweep_tags_label_every_row(examples, tmp_path, capsys) -> None:
    """--tag NAME=VALUE gives each row a tag_NAME string column; with --append, blocks of one
    manifest carry their own labels (null where a block did not set one)."""
    out = str(tmp_path / "m.parquet")
    base = ["manifest", "sweep", "--content", str(examples / "content"), "--style",
            str(examples / "style/wave.jpg"), "-o", out]  # fmt: skip
    assert main([*base, "--grid", "seed=1,2", "--tag", "group=a", "--tag", "tag_who=me"]) == 0
    assert main([*base, "--grid", "seed=3", "--tag", "group=b", "--append"]) == 0
    table = pq.read_table(out)
    assert table.schema.field("tag_group").type == pa.string()
    assert [(r["seed"], r["tag_group"], r["tag_who"]) for r in table.to_pylist()] == [
        (1, "a", "me"), (2, "a", "me"), (3, "b", None)]  # fmt: skip
    assert [r.tags for r in iter_rows(table.to_batches())][2] == {
        "tag_group": "b", "tag_who": None}  # fmt: skip
    capsys.readouterr()
    assert main([*base, "--grid", "tag_group=a,b"]) == 2
    assert "unknown field 'tag_group' (a tag takes --tag NAME=VALUE)" in capsys.readouterr().err
    for tags, message in ((["bad name=x"], "expected name=value"),
                          (["a=1", "tag_a=2"], "tag_a given twice")):  # fmt: skip
        assert main([*base, *(a for t in tags for a in ("--tag", t))]) == 2
        assert capsys.readouterr().err.strip().startswith(f"error: --tag: {message}")


def test_sweep_to_an_unwritable_place_is_one_line(examples, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("a file where a folder would go")
    out = tmp_path / "file" / "sub" / "m.parquet"
    command = ["manifest", "sweep", "--content", str(examples / "content"), "--style",
               str(examples / "style/wave.jpg"), "-o", str(out)]  # fmt: skip
    assert main(command) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {out}: output not writable ({tmp_path}/file is a file)"
    )


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        (b"junk", "Could not open Parquet input source"),
        (pa.table({"content_uri": ["a"], "style_uri": ["b"], "iterations": ["many"]}),
         "not a manifest (column 'iterations' has type string, expected int64)"),
    ],
)  # fmt: skip
def test_sweep_append_to_what_is_no_manifest_is_one_line(
    existing: bytes | pa.Table, message: str, examples, tmp_path, capsys
) -> None:
    out = tmp_path / "m.parquet"
    if isinstance(existing, bytes):
        out.write_bytes(existing)
    else:
        pq.write_table(existing, out)
    before = out.read_bytes()
    command = ["manifest", "sweep", "--content", str(examples / "content"), "--style",
               str(examples / "style/wave.jpg"), "-o", str(out), "--append"]  # fmt: skip
    assert main(command) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --append {out}: ") and message in line
    assert out.read_bytes() == before


def test_sweep_appends_to_a_manifest_with_narrower_ints(examples, tmp_path) -> None:
    out = tmp_path / "m.parquet"
    pq.write_table(pa.table({"content_uri": ["a"], "style_uri": ["b"],
                             "iterations": pa.array([5], pa.int32())}), out)  # fmt: skip
    command = ["manifest", "sweep", "--content", str(examples / "content"), "--style",
               str(examples / "style/wave.jpg"), "--grid", "iterations=3", "-o", str(out),
               "--append"]  # fmt: skip
    assert main(command) == 0
    assert pq.read_table(out).column("iterations").to_pylist() == [5, 3]


def test_sweep_writes_absolute_mask_paths(examples, tmp_path, monkeypatch) -> None:
    """Relative --content/--style/--*-mask paths become absolute: the manifest works from any
    folder (validated here from another one)."""
    monkeypatch.chdir(examples.parent)
    out = tmp_path / "m.parquet"
    assert main(["manifest", "sweep", "--content", "examples/photo/content.jpg", "--style",
                 "examples/photo/style.jpg", "--content-mask", "examples/photo/content_seg.png",
                 "--style-mask", "examples/photo/style_seg.png", "-o", str(out)]) == 0  # fmt: skip
    (row,) = pq.read_table(out).to_pylist()
    for column, name in (("content_uri", "content.jpg"), ("content_mask_uri", "content_seg.png"),
                         ("style_mask_uri", "style_seg.png")):  # fmt: skip
        assert row[column] == str(examples / "photo" / name)
    monkeypatch.chdir(tmp_path)
    assert main(["manifest", "validate", str(out), "--check-uris"]) == 0


def test_sweep_mask_that_is_not_one_file_is_one_line(examples, tmp_path, capsys) -> None:
    command = ["manifest", "sweep", "--content", str(examples / "photo/content.jpg"), "--style",
               str(examples / "photo/style.jpg"), "-o", str(tmp_path / "m.parquet"),
               "--content-mask", str(examples / "photo"), "--style-mask",
               str(examples / "photo/style_seg.png")]  # fmt: skip
    assert main(command) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: --content-mask {examples / 'photo'}: expected one image file, found 4"
    assert not (tmp_path / "m.parquet").exists()
