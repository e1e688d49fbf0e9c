"""Command-line flags generated from StyleParams (`--content-weight` etc.) and run-level flags
shared by several subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from manifests.fields import field_specs, format_value, parse_value
from nst_ops.evaluation import COMPILE_CHOICES, DEFAULT_COMPILE
from nst_ops.params import StyleParams
from nst_ops.vgg import DEFAULT_PRECISION, MODELS, PRECISIONS
from workflows.images import DEFAULT_MAX_PIXELS
from workflows.weights import DEFAULT_MODEL, DEFAULT_WEIGHTS


def add_param_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per StyleParams field; help shows the dataclass default. Lists: comma-separated."""
    group = parser.add_argument_group("style parameters (StyleParams; per pair)")
    for spec in field_specs().values():
        metavar = "|".join(spec.choices) if spec.choices else spec.kind.upper()
        if spec.kind.endswith("_list"):
            metavar = "A,B,..."
        group.add_argument(
            spec.flag,
            dest=f"param_{spec.name}",
            metavar=metavar,
            default=None,
            help=f"{spec.help} (default: {format_value(spec.default)})",
        )


def params_from_args(args: argparse.Namespace) -> StyleParams:
    """StyleParams from the flags given; ParamError (naming the field) when invalid."""
    given: dict[str, Any] = {}
    for name in field_specs():
        text = getattr(args, f"param_{name}")
        if text is not None:
            given[name] = parse_value(name, text)
    return StyleParams(**given)


def at_least(kind: Callable[[str], float], low: float, above: bool = False) -> Callable[[str], Any]:
    """An argparse type: a `kind` (int | float) value >= low (> low with `above`)."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not (value > low if above else value >= low):  # nan fails both
            relation = "more than" if above else "at least"
            raise argparse.ArgumentTypeError(f"must be {relation} {low:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"
    return parse


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Run-level network settings (not per pair)."""
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=MODELS, help="VGG variant")
    parser.add_argument(
        "--weights",
        default=DEFAULT_WEIGHTS,
        help="imagenet (torchvision download) | random (smoke tests only) | URI of a "
        "torchvision-format state dict (local, file://, s3://, https://)",
    )
    parser.add_argument(
        "--storage-options",
        default=None,
        metavar="JSON",
        help="fsspec storage options for s3:// etc. (never logged)",
    )
    parser.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=PRECISIONS,
        help="fp32 | tf32 (CUDA TF32 matmuls) | bf16 (autocast VGG, losses in fp32)",
    )
    parser.add_argument(
        "--compile",
        default=DEFAULT_COMPILE,
        choices=COMPILE_CHOICES,
        help="run each iteration as captured graphs (torch.compile; CUDA graphs on a GPU): "
        "auto = on for CUDA, off for the CPU (compiling costs ~20 s per image shape and batch "
        "size, once per worker; see compile_s)",
    )
    add_max_pixels_flag(parser)


def add_max_pixels_flag(parser: argparse.ArgumentParser) -> None:
    """--max-image-pixels (nst stylize, nst run, nst manifest validate --check-uris)."""
    parser.add_argument(
        "--max-image-pixels",
        type=at_least(int, 1),
        default=DEFAULT_MAX_PIXELS,
        help="decompression-bomb guard: refuse images with more pixels than this",
    )


class DefaultsHelp(argparse.HelpFormatter):
    """Help that ends every option's text with its default, unless the text already gives it
    (or the option has none: None, False, a required flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or action.required
            or default in (None, False, argparse.SUPPRESS)
            or "default" in text
        ):
            return text
        return f"{text} (default: %(default)s)"


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give `parser` and all its subcommands' parsers `DefaultsHelp`; returns it."""
    parser.formatter_class = DefaultsHelp
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                show_defaults(sub)
    return parser
