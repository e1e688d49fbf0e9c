"""The `nst` console script: subcommands, error handling and exit statuses.

Exit status: 0 ok; 1 fatal; 2 bad arguments or unusable input (one-line error naming the path
or parameter; `--debug` adds the traceback); 3 a batch finished with failed rows.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from nst_ops.params import ParamError
from workflows.errors import InputError, StorageError

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_FAILED_ROWS = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    from workflows import manifest_cli, report, run, stylize

    parser = argparse.ArgumentParser(prog="nst", description="Neural style transfer in batch.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stylize.add_parser(sub)
    run.add_parser(sub)
    manifest_cli.add_parser(sub)
    report.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (ParamError, InputError) as e:
        return _fail(args, f"error: {_flagify(e)}", EXIT_USAGE)
    except StorageError as e:
        return _fail(args, f"storage error: {e}", EXIT_FATAL)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130)


def _flagify(e: Exception) -> str:
    """ParamError('style_weight: ...') → '--style-weight: ...' on the command line."""
    if isinstance(e, ParamError):
        return f"--{e.field.replace('_', '-')}: {str(e).split(': ', 1)[1]}"
    return str(e)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(message.splitlines()[0] if message else "error", file=sys.stderr)
    return code


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
