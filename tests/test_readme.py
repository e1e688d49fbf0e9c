"""The README is the user's manual: every flag of every `nst` command is in it, and its
Parameters table lists every StyleParams field with its real default."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from conftest import REPO

from manifests.fields import field_specs, parse_value
from workflows.cli import build_parser

README = (REPO / "README.md").read_text()


def flags(parser: argparse.ArgumentParser, command: str = "nst") -> Iterator[tuple[str, str]]:
    """(command, --flag) for every long option of `parser` and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from flags(sub, f"{command} {name}")
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                yield command, option


def test_every_flag_is_documented() -> None:
    """Parameter flags are documented by the Parameters table (their field names); every other
    flag by name."""
    found = list(flags(build_parser()))
    assert ("nst run", "--pairs-per-gpu") in found and ("nst stylize", "--tv-weight") in found
    missing = [
        f"{command} {flag}"
        for command, flag in found
        if flag[2:].replace("-", "_") not in field_specs() and flag not in README
    ]
    assert not missing


def test_parameters_table_has_every_field_with_its_default() -> None:
    table = README.split("## Parameters")[1].split("\n## ")[0]
    cells = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| name")
    }
    assert list(cells) == list(field_specs())  # every field, in the order of StyleParams
    for name, spec in field_specs().items():
        assert parse_value(name, cells[name]) == spec.default, name


def _analysis() -> str:
    return README.split("## Analysing runs")[1].split("\n## ")[0]


def _blocks(kind: str) -> list[str]:
    """The ```kind code blocks of the README's "Analysing runs" section, in order."""
    return [part.split("```")[0] for part in _analysis().split(f"```{kind}\n")[1:]]


def _statements(block: str) -> list[str]:
    lines = [line for line in block.splitlines() if not line.lstrip().startswith("--")]
    return [s for s in "\n".join(lines).split(";") if s.strip()]


def test_analysis_examples_name_the_shipped_run() -> None:
    """What the examples read exists in a fresh clone: the shipped run, no runs/ folder."""
    assert (REPO / "examples/runs/layers/results.parquet").is_file()
    code = "".join(_blocks("python") + _blocks("sql"))
    assert "examples/runs/layers" in code and "'runs/" not in code and '"runs/' not in code


def test_notebook_example_runs_as_written(monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    exec(_blocks("python")[0], {})
    printed = capsys.readouterr().out
    assert "relu1_1+relu2_1+relu3_1" in printed and "iterations_change" in printed


def test_worked_example_prints_the_output_shown(monkeypatch) -> None:
    """The worked example's query gives, on the shipped run, exactly the table the README
    shows beneath it."""
    import duckdb

    monkeypatch.chdir(REPO)
    (query,) = _statements(_blocks("sql")[0])
    shown = _blocks("text")[0].rstrip("\n")
    assert duckdb.execute(query).df().to_string(index=False) == shown


def test_duckdb_examples_run_as_written(monkeypatch) -> None:
    """The paired query gives paired_effects' numbers; each normalised curve starts at 1;
    the shipped run has no errors."""
    import duckdb

    from workflows.analysis import load_run, paired_effects

    monkeypatch.chdir(REPO)
    paired, curves, errors = (duckdb.execute(s).fetchall() for s in _statements(_blocks("sql")[1]))
    effects = paired_effects(load_run("examples/runs/layers")[0], "style_layers")
    assert [(layers, n) for layers, n, _, _ in paired] == [(v, 2) for v in sorted(effects["value"])]
    for layers, _, change, better in paired:
        row = effects[effects["value"] == layers].iloc[0]
        assert change == pytest.approx(row["style_change"]) and better == row["style_better"]
    assert len({layers for layers, _, _ in curves}) == 3 and errors == []
    assert {value for _, iteration, value in curves if iteration == 0} == {1.0}


def test_duckdb_over_s3_recipe(s3_endpoint: str) -> None:
    """The fsspec recipe for DuckDB over s3:// (no httpfs download), on moto: the shipped
    run's results uploaded to a bucket, the recipe run with that endpoint."""
    import s3util

    from workflows.storage import filesystem, write_bytes

    recipe = _blocks("python")[1]
    uri = "s3://bucket/runs/sweep-001/results.parquet"
    s3util.reset(s3_endpoint)  # an empty server, and no s3fs instance of an earlier one
    filesystem("s3://bucket")[0].mkdir("bucket")
    write_bytes(uri, (REPO / "examples/runs/layers/results.parquet").read_bytes())
    scope: dict[str, object] = {}
    exec(recipe.replace("http://127.0.0.1:9000", s3_endpoint), scope)
    con = scope["con"]
    assert con.sql(  # type: ignore[attr-defined]
        "select status, count(*) from 's3://bucket/runs/sweep-001/results.parquet' group by 1"
    ).fetchall() == [("ok", 6)]


PLACEHOLDERS = ("YOUR-", "123456789012", "ami-")


def test_cluster_placeholders_are_marked_and_listed() -> None:
    """Every line of cluster/*.yaml with a placeholder says EDIT, or its parent line does;
    the README lists the files to edit."""
    for path in sorted((REPO / "cluster").glob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not any(p in line for p in PLACEHOLDERS) or "EDIT" in line:
                continue
            indent = len(line) - len(line.lstrip())
            parent = next(
                (x for x in reversed(lines[:i]) if x.strip() and len(x) - len(x.lstrip()) < indent),
                "",
            )
            assert "EDIT" in parent, f"{path.name}:{i + 1}: {line.strip()}"
        assert f"`cluster/{path.name}`:" in README, path.name


def test_runtime_env_installs_the_package_dependencies() -> None:
    """cluster/runtime_env.yaml, which the README's `ray job submit` names, parses as a
    runtime env and installs pyproject's dependencies (ray excluded: the cluster runs it)."""
    import tomllib
    import yaml

    assert "--runtime-env cluster/runtime_env.yaml" in README
    env = yaml.safe_load((REPO / "cluster/runtime_env.yaml").read_text())
    assert set(env) == {"pip", "env_vars"}
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert env["pip"] == [d for d in deps if not d.startswith("ray")]
    assert all(isinstance(v, str) for v in env["env_vars"].values())
