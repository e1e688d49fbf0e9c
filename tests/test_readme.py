"""The README is the user's manual: every flag of every `nst` command is in it, and its
Parameters table lists every StyleParams field with its real default."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

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
