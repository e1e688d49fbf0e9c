"""Error types that the CLI turns into one-line messages and exit statuses."""

from __future__ import annotations


class InputError(Exception):
    """Unusable input (an image, a mask, weights, a manifest row): exit 2 / a per-row error.

    The message names the offending file, row or parameter and fits on one line.
    """


class StorageError(Exception):
    """Storage was unreachable or refused an operation after retries."""


class ClusterError(Exception):
    """No Ray cluster at the address given (or found): the run cannot start (exit 1)."""
