"""The `nst` console script: subcommands, error handling and exit statuses.

Exit status (workflows.errors): 0 ok; 1 fatal; 2 bad arguments or unusable input (one-line error
naming the path or parameter; `--debug` adds the traceback); 3 a batch finished with failed rows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from workflows.errors import guarded
from workflows.version import package_version


def build_parser() -> argparse.ArgumentParser:
    from workflows import manifest_cli, report_cli, run, stylize
    from workflows.params_cli import show_defaults

    parser = argparse.ArgumentParser(prog="nst", description="Neural style transfer in batch.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"nst-batch {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stylize.add_parser(sub)
    run.add_parser(sub)
    manifest_cli.add_parser(sub)
    report_cli.add_parser(sub)
    return show_defaults(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.func, args)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
