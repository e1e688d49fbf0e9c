"""`nst stylize CONTENT STYLE -o OUT.png`: one pair, image plus loss table."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from manifests.schema import AUTO_MASK
from nst_ops.optimize import StyleResult
from nst_ops.recorder import Progress
from nst_ops.segments import plan
from workflows.errors import InputError
from workflows.extractors import ExtractorCache, check_model_layers, pick_device
from workflows.images import encode_image, image_format, to_png
from workflows.pair import PairInput, load_pair, stylize_loaded
from workflows.params_cli import add_model_flags, add_param_flags, params_from_args
from workflows.storage import StorageOptions, check_writable, parse_storage_options, write_bytes
from workflows.tables import loss_table, write_parquet
from workflows.weights import resolve_weights


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "stylize",
        help="stylize one content image with one style image",
        description="Gatys et al. (2015) style transfer of one pair; writes OUT and a loss table.",
    )
    p.add_argument("content", metavar="CONTENT", help="content image (path or fsspec URI)")
    p.add_argument("style", metavar="STYLE", help="style image (path or fsspec URI)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png",
                   help="output image; its extension sets the format: .png (also without one), "
                   ".jpg/.jpeg, .webp (quality 95), .tif/.tiff, .bmp")  # fmt: skip
    p.add_argument(
        "--losses", default=None, metavar="PATH", help="loss table (default: OUT.losses.parquet)"
    )
    p.add_argument("--content-mask", default=None,
                   help=f"colour-coded mask of CONTENT (Luan), or {AUTO_MASK} (with --style-mask "
                   f"{AUTO_MASK}: computed, see --mask-regions; written as "
                   "OUT.content_mask.png and OUT.style_mask.png)")  # fmt: skip
    p.add_argument("--style-mask", default=None,
                   help=f"colour-coded mask of STYLE (Luan), or {AUTO_MASK}")  # fmt: skip
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_flags(p)
    add_param_flags(p)
    p.set_defaults(func=main)


def _stem(output: str) -> str:
    return output.rsplit(".", 1)[0] if "." in output.rsplit("/", 1)[-1] else output


def default_losses_path(output: str) -> str:
    return _stem(output) + ".losses.parquet"


def auto_mask_paths(output: str) -> tuple[str, str]:
    """Where `auto` masks go: OUT.content_mask.png and OUT.style_mask.png."""
    return _stem(output) + ".content_mask.png", _stem(output) + ".style_mask.png"


def _check_outputs(args: argparse.Namespace, options: StorageOptions) -> str:
    """Refuse, before any work, masks given alone and outputs that cannot be written; return
    the loss table's URI."""
    if bool(args.content_mask) != bool(args.style_mask):
        raise InputError("--content-mask and --style-mask go together: give both or neither")
    if (args.content_mask == AUTO_MASK) != (args.style_mask == AUTO_MASK):
        raise InputError(f"--content-mask {AUTO_MASK} needs --style-mask {AUTO_MASK}, and the "
                         "other way round")  # fmt: skip
    try:
        image_format(args.output)
    except InputError as e:
        raise InputError(f"-o {e}") from None
    losses_uri = args.losses or default_losses_path(args.output)
    masks = auto_mask_paths(args.output) if args.content_mask == AUTO_MASK else ()
    for uri in (args.output, losses_uri, *masks):  # before the work, whose result would be lost
        check_writable(uri, options)
    return losses_uri


def main(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    check_model_layers(args.model, params)  # before any download or image load
    options = parse_storage_options(args.storage_options)
    losses_uri = _check_outputs(args, options)
    device = pick_device(args.device)
    weights = resolve_weights(args.model, args.weights, options)
    extractors = ExtractorCache(weights, device, args.precision, args.compile)
    pair = PairInput(args.content, args.style, params, args.content_mask, args.style_mask)

    def on_progress(progress: Progress) -> None:
        bar.n = progress.iteration
        bar.set_postfix(loss=f"{progress.total_loss:.4g}", refresh=False)
        bar.refresh()

    loaded = load_pair(pair, extractors, options, args.max_image_pixels, callback=on_progress)
    total = sum(segment.params.iterations for segment in plan(params))  # Luan's two stages: 2×
    bar = tqdm(total=total, disable=args.quiet, unit="it", file=sys.stderr)
    try:  # the bar starts once the inputs are loaded: a bad input leaves no empty bar
        (result,) = stylize_loaded([loaded], extractors)
    finally:
        bar.close()
    write_bytes(args.output, encode_image(result.image, args.output), options)
    write_parquet(loss_table(result.losses), losses_uri, options)
    if loaded.auto_masks is not None:
        for uri, mask in zip(auto_mask_paths(args.output), loaded.auto_masks, strict=True):
            write_bytes(uri, to_png(mask), options)
        if not args.quiet:
            print(f"masks ({params.mask_regions} regions, {loaded.auto_mask_s:.1f} s): "
                  + " and ".join(auto_mask_paths(args.output)), file=sys.stderr)  # fmt: skip
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(_summary(args.output, losses_uri, result), file=sys.stderr)
    return 0


def _summary(output: str, losses_uri: str, result: StyleResult) -> str:
    """The closing line: what was written, the loss, and any one-off compile time (a single
    pair cannot amortise it: --compile off skips it)."""
    losses = result.losses.total_loss
    line = (
        f"wrote {output} and {losses_uri}: {result.iterations_run} iterations, "
        f"total loss {losses[0]:.4g} -> {losses[-1]:.4g}"
    )
    if result.compile_s > 0:
        line += (
            f"; compiling took {result.compile_s:.1f} s of it (once per image shape and "
            "process; --compile off skips it)"
        )
    return line
