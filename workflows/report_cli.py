"""`nst report --run URI -o DIR`: an offline HTML report of a run (index.html + PNG figures)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workflows.params_cli import at_least
from workflows.report.build import build_report
from workflows.storage import check_folder, parse_storage_options


def main(args: argparse.Namespace) -> int:
    options = parse_storage_options(args.storage_options)
    out = Path(args.output)
    check_folder(str(out), "-o")  # before the run's tables are fetched
    lines = build_report(args.run, out, options, args.max_pairs)
    print("\n".join(lines))
    print(f"report: {Path(args.output) / 'index.html'}", file=sys.stderr)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("report", help="HTML report of a run", description=__doc__)
    p.add_argument("--run", required=True, help="the run's --output (path or URI)")
    p.add_argument("-o", "--output", required=True, help="local folder for index.html + PNGs")
    p.add_argument("--max-pairs", type=at_least(int, 0), default=12,
                   help="(content, style) pairs sampled for contact sheets (0: none)")  # fmt: skip
    p.add_argument("--storage-options", default=None, metavar="JSON")
    p.set_defaults(func=main)
