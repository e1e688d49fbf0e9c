"""`nst manifest sweep` and `nst manifest validate` (local paths and s3://)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pyarrow as pa

from manifests.manifest import ManifestError, check_schema, index_columns
from manifests.schema import AUTO_MASK, MASK_COLUMNS, URI_COLUMNS
from manifests.sweep import parse_grid, parse_tag, sweep_table
from nst_ops.params import ParamError, StyleParams
from nst_ops.vgg import MODELS
from workflows.batch.manifest import Manifest
from workflows.errors import InputError
from workflows.extractors import check_model_layers
from workflows.images import decode_image
from workflows.params_cli import add_max_pixels_flag
from workflows.storage import (
    StorageOptions,
    check_writable,
    filesystem,
    parse_storage_options,
    read_bytes,
    write_bytes,
)
from workflows.tables import parquet_bytes, read_parquet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def expand_images(
    specs: list[str], options: StorageOptions | None = None, flag: str = "--content"
) -> list[str]:
    """Files, directories/prefixes (every image inside, recursively) and globs → sorted URIs.
    Hidden names (`.x`, e.g. macOS's `._photo.jpg` copies, which are no images) are skipped
    inside a directory and by a glob, as a shell's `*` does; a file named outright is kept.
    ManifestError naming `flag` and the spec when one matches no image."""
    found: list[str] = []
    for spec in specs:
        fs, path = filesystem(spec, options)
        if any(c in path for c in "*?["):
            paths = [p for p in fs.glob(path) if not _hidden(p, _fixed_part(path))]
        elif fs.isdir(path):
            paths = [p for p in fs.find(path) if not _hidden(p, path)]
        elif fs.exists(path):
            paths = [path]
        else:
            raise ManifestError(f"{flag} {spec}: no such file, directory or prefix")
        images = [p for p in paths if p.lower().endswith(IMAGE_SUFFIXES) or p == path]
        if not images:
            raise ManifestError(
                f"{flag} {spec}: no images there (looked for {', '.join(IMAGE_SUFFIXES)}; "
                "hidden names skipped)"
            )
        found += sorted(_uri(fs, spec, p) for p in images)
    return list(dict.fromkeys(found))


def _one_image(spec: str, options: StorageOptions | None, flag: str) -> str:
    """The URI of the one image file `spec` names (a local path made absolute)."""
    found = expand_images([spec], options, flag)
    if len(found) != 1:
        raise ManifestError(f"{flag} {spec}: expected one image file, found {len(found)}")
    return found[0]


def _fixed_part(pattern: str) -> str:
    """The folder of a glob before its first wildcard ("a/b/*/c*.jpg" → "a/b")."""
    head = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)]
    return head.rsplit("/", 1)[0]


def _hidden(path: str, root: str) -> bool:
    """Whether a name of `path` below `root` starts with '.'."""
    below = path[len(root.rstrip("/")) :].strip("/")
    return any(part.startswith(".") for part in below.split("/"))


def _uri(fs: Any, spec: str, path: str) -> str:
    return fs.unstrip_protocol(path) if "://" in spec else path


def sweep_main(args: argparse.Namespace) -> int:
    options = parse_storage_options(args.storage_options)
    grids = [parse_grid(g) for g in args.grid]
    tags = [parse_tag(t) for t in args.tag]
    check_writable(args.output, options)
    if bool(args.content_mask) != bool(args.style_mask):
        print("error: --content-mask and --style-mask go together", file=sys.stderr)
        return 2
    auto = (args.content_mask == AUTO_MASK, args.style_mask == AUTO_MASK)
    if auto[0] != auto[1]:
        print(f"error: --content-mask {AUTO_MASK} needs --style-mask {AUTO_MASK}, and the "
              "other way round", file=sys.stderr)  # fmt: skip
        return 2
    masks = (AUTO_MASK, AUTO_MASK) if all(auto) else None
    try:
        contents = expand_images(args.content, options, "--content")
        styles = expand_images(args.style, options, "--style")
        if (
            args.content_mask and masks is None
        ):  # absolute, as the images: the manifest works from any folder
            masks = (
                _one_image(args.content_mask, options, "--content-mask"),
                _one_image(args.style_mask, options, "--style-mask"),
            )
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = sweep_table(contents, styles, grids, masks, tags)
    new_rows = table.num_rows
    if args.append:
        table = _append_to(args.output, table, options)
    write_bytes(args.output, parquet_bytes(table), options)
    added = len(contents) * len(styles)
    print(
        f"wrote {args.output}: {table.num_rows} rows ({len(contents)} content x {len(styles)} "
        f"style x {new_rows // added} settings{' appended' if args.append else ''})",
        file=sys.stderr,
    )
    return 0


def _append_to(uri: str, table: pa.Table, options: StorageOptions) -> pa.Table:
    """Existing manifest at `uri` (if any) followed by `table`; columns unified, nulls = default."""
    fs, path = filesystem(uri, options)
    if not fs.exists(path):
        return table
    try:
        existing = read_parquet(uri, options)
        check_schema(existing.schema)
        existing = existing.drop_columns(index_columns(existing.schema))  # a pandas index
        return pa.concat_tables([existing, table], promote_options="permissive")
    except pa.ArrowException as e:
        raise InputError(f"--append {uri}: {str(e).splitlines()[0]}") from None
    except ManifestError as e:
        raise InputError(f"--append {uri}: not a manifest ({e})") from None


def validate_main(args: argparse.Namespace) -> int:
    options = parse_storage_options(args.storage_options)
    try:
        manifest = Manifest(args.manifest, options, None)
    except ManifestError as e:
        print(f"error: manifest: {e}", file=sys.stderr)
        return 1
    with manifest:
        if manifest.note:
            print(manifest.note, file=sys.stderr)
        rows, bad = _validate_rows(manifest, args, options)
    print(f"{rows} rows, {bad} with errors", file=sys.stderr)
    return 1 if bad else 0


def _validate_rows(
    manifest: Manifest, args: argparse.Namespace, options: StorageOptions
) -> tuple[int, int]:
    """Print each row's problems; (rows, rows with problems)."""
    bad = rows = 0
    seen: dict[str, str | None] = {}
    for row in manifest.rows():
        rows += 1
        problems = [row.error] if row.error else []
        if args.model and row.params is not None:
            problems += _model_problems(args.model, row.params)
        if args.check_uris:
            problems += _unusable_uris(row.values, options, seen, args.max_image_pixels)
        for problem in problems:
            print(f"row {row.row}: {problem}")
        bad += bool(problems)
    return rows, bad


def _model_problems(model: str, params: StyleParams) -> list[str]:
    """The layers of `params` that `model` lacks (as `nst run --model` would report them)."""
    try:
        check_model_layers(model, params)
    except ParamError as e:
        return [str(e)]
    return []


def _unusable_uris(
    values: dict[str, Any], options: StorageOptions, seen: dict[str, str | None], max_pixels: int
) -> list[str]:
    """Each URI of the row that is missing or no usable image (what the run's worker would say),
    each distinct file read once (`seen`: URI → its problem, or None)."""
    problems = []
    for column in URI_COLUMNS:
        uri = values.get(column)
        if not uri or (column in MASK_COLUMNS and uri == AUTO_MASK):
            continue
        if uri not in seen:
            try:  # a draft decode: the header and a small image, as cheap as it gets
                decode_image(read_bytes(uri, options), uri, max_pixels, draft_size=64)
                seen[uri] = None
            except InputError as e:
                seen[uri] = str(e)
        if seen[uri] is not None:
            problems.append(f"{column}: {seen[uri]}")
    return problems


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("manifest", help="make and check manifests")
    sub = p.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")
    sweep = sub.add_parser("sweep", help="cartesian product of images and parameter grids")
    sweep.add_argument("--content", nargs="+", required=True, help="files, dirs/prefixes, globs")
    sweep.add_argument("--style", nargs="+", required=True, help="files, dirs/prefixes, globs")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="sweep a StyleParams field; list items joined by + (repeatable)",
    )
    sweep.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE",
                       help="a tag_NAME column with VALUE in every row (repeatable)")  # fmt: skip
    sweep.add_argument("--content-mask", default=None,
                       help=f"mask URI (one content only), or {AUTO_MASK} (every row; with "
                       f"--style-mask {AUTO_MASK}: computed by the worker)")  # fmt: skip
    sweep.add_argument("--style-mask", default=None,
                       help=f"mask URI (one style only), or {AUTO_MASK}")  # fmt: skip
    sweep.add_argument("-o", "--output", required=True, help="manifest to write (path or URI)")
    sweep.add_argument("--append", action="store_true", help="append to an existing manifest")
    sweep.add_argument("--storage-options", default=None, metavar="JSON")
    sweep.set_defaults(func=sweep_main)
    check = sub.add_parser("validate", help="check every row; prints row-numbered errors")
    check.add_argument("manifest", help="manifest (path or URI)")
    check.add_argument(
        "--check-uris",
        action="store_true",
        help="also read every image and mask (each file once): missing or unusable ones are "
        "row errors",
    )
    check.add_argument(
        "--model", choices=MODELS, default=None, help="also check the layers against this model"
    )
    add_max_pixels_flag(check)
    check.add_argument("--storage-options", default=None, metavar="JSON")
    check.set_defaults(func=validate_main)
