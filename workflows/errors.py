"""Error types that the CLI turns into one-line messages, and the exit statuses of `nst`."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from nst_ops.params import ParamError

# Exit statuses of every `nst` command (README): 0 ok; 1 fatal (manifest, output or cluster
# unusable; nothing ran); 2 bad arguments or unusable input; 3 a batch finished with failed rows.
EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_FAILED_ROWS = 0, 1, 2, 3


class InputError(Exception):
    """Unusable input (an image, a mask, weights, a manifest row): exit 2 / a per-row error.

    The message names the offending file, row or parameter and fits on one line.
    """


class StorageError(Exception):
    """Storage was unreachable or refused an operation after retries."""


class ClusterError(Exception):
    """No Ray cluster at the address given (or found): the run cannot start (exit 1)."""


def guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; unusable input and storage failures become one line on stderr and their
    exit status (`args.debug`: with the traceback)."""
    try:
        return command(args)
    except (ParamError, InputError) as e:
        return _fail(args, f"error: {_flagify(e)}", EXIT_USAGE)
    except StorageError as e:
        return _fail(args, f"storage error: {e}", EXIT_FATAL)
    except OSError as e:  # a local file or folder the command could not read or write
        where = f"{e.filename}: " if e.filename else ""
        return _fail(args, f"error: {where}{e.strerror or e}", EXIT_USAGE)
    except TypeError as e:  # a storage option the filesystem's session does not take
        options_given = bool(getattr(args, "storage_options", None))
        if not options_given or "unexpected keyword argument" not in str(e):
            raise
        return _fail(args, f"error: --storage-options: {e}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130)


def _flagify(e: Exception) -> str:
    """ParamError('style_weight: ...') → '--style-weight: ...' on the command line (a field
    already named as a flag, '--grid', is kept)."""
    if isinstance(e, ParamError) and not e.field.startswith("-"):
        return f"--{e.field.replace('_', '-')}: {str(e).split(': ', 1)[1]}"
    return str(e)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(message.splitlines()[0] if message else "error", file=sys.stderr)
    return code
