"""The installed package's version (`nst --version`, run.json's package_version)."""

from __future__ import annotations


def package_version() -> str:
    """nst-batch's version as installed (pyproject.toml), or `unknown` where it is not."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nst-batch")
    except PackageNotFoundError:
        return "unknown"
