"""`StyleParams`: every per-pair parameter, its default and its validation, written once.

Field names are the project's vocabulary: they are also the CLI flags (`--content-weight`),
the Parquet manifest columns (`content_weight`) and the results-table columns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from nst_ops.param_checks import ParamError as ParamError  # re-exported: callers catch it here
from nst_ops.param_checks import (
    check_choice,
    check_integer,
    check_layers,
    check_number,
)
from nst_ops.vgg import block_channels

# Documented limits: a manifest row outside them is rejected before any work starts.
MAX_ITERATIONS = 100_000
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 4096
MAX_MASK_REGIONS = 9  # one colour of Luan's palette (nst_ops.masks.COLOURS) per region

# Each choice set once, as the Literal the field is typed with; the tuples (validation) and
# the flags' metavars (manifests.fields) are derived from it.
Optimizer = Literal["lbfgs", "adam"]
Init = Literal["content", "random", "style"]
Pooling = Literal["max", "avg"]
PreserveColor = Literal["none", "luminance"]
PhotoPostprocess = Literal["auto", "none", "guided", "affine", "smooth", "match"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
INITS: tuple[str, ...] = get_args(Init)
POOLINGS: tuple[str, ...] = get_args(Pooling)
PRESERVE_COLORS: tuple[str, ...] = get_args(PreserveColor)
POSTPROCESSES: tuple[str, ...] = get_args(PhotoPostprocess)
# A photo pair's default α is (PHOTO_CONTENT_SIZE / image_size)²: 1 at 256 px, where the photo
# defaults were measured (benchmarks/RESULTS.md). J_content is a sum over the positions of
# relu4_2 and grows with the pixel count while J_style (Gram means) and Luan's λ·Φ keep their
# balance, so a fixed α would weigh the content 4× more at 512 px than at 256 px.
PHOTO_CONTENT_SIZE = 256


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class StyleParams:
    """Per-pair parameters of Gatys et al. (2015) style transfer. Immutable and validated."""

    content_weight: float | None = field(
        default=None,
        metadata=_help(
            "alpha: weight of J_content; none = 1, or with photo_weight > 0 "
            f"({PHOTO_CONTENT_SIZE}/image_size)^2, the same content/style balance at every size"
        ),
    )
    style_weight: float = field(default=1000.0, metadata=_help("beta: weight of J_style"))
    tv_weight: float = field(default=0.0, metadata=_help("weight of the total-variation term"))
    content_layers: tuple[str, ...] = field(
        default=("relu4_2",), metadata=_help("layers of J_content")
    )
    style_layers: tuple[str, ...] = field(
        default=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        metadata=_help("layers of J_style"),
    )
    style_layer_weights: tuple[float, ...] | None = field(
        default=None,
        metadata=_help(
            "w_l per style layer; none = equal 1/len(style_layers), or with photo_weight > 0 "
            "Luan's proportional to 1/N_l^2 (N_l channels)"
        ),
    )
    optimizer: Optimizer = field(
        default="lbfgs", metadata=_help("L-BFGS (Armijo line search) or Adam")
    )
    learning_rate: float = field(
        default=0.02, metadata=_help("Adam step size, in pixel units of the [0,1] image")
    )
    iterations: int = field(
        default=500, metadata=_help("objective+gradient evaluations (forward+backward)")
    )
    init: Init = field(default="content", metadata=_help("the image the optimisation starts from"))
    seed: int = field(default=0, metadata=_help("seed of random init"))
    image_size: int = field(default=512, metadata=_help("long side of the output, px"))
    style_scale: float = field(
        default=1.0, metadata=_help("style image long side relative to image_size")
    )
    pooling: Pooling = field(default="max", metadata=_help("VGG's pooling layers"))
    target_loss: float | None = field(
        default=None, metadata=_help("stop as soon as total loss <= this")
    )
    preserve_color: PreserveColor = field(
        default="none", metadata=_help("luminance: keep the content's colours (Gatys et al. 2016)")
    )
    photo_weight: float = field(
        default=0.0, metadata=_help("lambda: matting-Laplacian photorealism weight (Luan: 1e4)")
    )
    photo_two_stage: bool = field(
        default=True, metadata=_help("with photo_weight > 0: iterations without, then with it")
    )
    photo_postprocess: PhotoPostprocess = field(
        default="auto",
        metadata=_help(
            "auto (match with photo_weight > 0, else none) | none | guided (guided filter) | "
            "affine (Luan's smooth local affine) | smooth (FastPhotoStyle's closed form) | "
            "match (each mask region's colour distribution moved to its style region's, the "
            "change smoothed along the content's edges), each guided by the content image"
        ),
    )
    mask_color_match: float = field(
        default=1.0,
        metadata=_help(
            "with the match post-process: how far (0-1) each mask region's colour distribution "
            "moves to its style region's (without masks: the image's to the style's); "
            "0 = no change"
        ),
    )
    # 3: the best mean IoU against Luan's hand masks among 2, 3 and 4 (benchmarks/RESULTS.md)
    mask_regions: int = field(
        default=3,
        metadata=_help(
            "with content_mask_uri and style_mask_uri 'auto': how many regions "
            f"(2-{MAX_MASK_REGIONS}) nst_ops.automask finds in the content (in the style: one "
            "more), each matched to its nearest style region"
        ),
    )
    ema_decay: float = field(
        default=0.0, metadata=_help("Adam only: return an EMA of the image with this decay")
    )
    scales: tuple[int, ...] | None = field(
        default=None,
        metadata=_help("coarse-to-fine long sides ending at image_size, or one count N < 16"),
    )

    def __post_init__(self) -> None:
        for name in ("content_layers", "style_layers", "style_layer_weights", "scales"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                if isinstance(value, str):
                    value = tuple(v for v in value.split(",") if v)
                object.__setattr__(self, name, tuple(value))
        _validate(self)
        # Photo defaults (Luan et al. 2017), resolved here so that tables record what ran
        photo = self.photo_weight > 0
        if self.photo_postprocess == "auto":
            object.__setattr__(self, "photo_postprocess", "match" if photo else "none")
        if self.content_weight is None:
            alpha = (PHOTO_CONTENT_SIZE / self.image_size) ** 2 if photo else 1.0
            object.__setattr__(self, "content_weight", alpha)
        if photo and self.style_layer_weights is None:
            inverse = [1.0 / block_channels(name) ** 2 for name in self.style_layers]
            weights = tuple(w / sum(inverse) for w in inverse)  # Luan's: ∝ 1/N_l²
            object.__setattr__(self, "style_layer_weights", weights)

    @property
    def layer_weights(self) -> tuple[float, ...]:
        """w_l for each style layer (equal 1/len when style_layer_weights is None)."""
        if self.style_layer_weights is None:
            return tuple(1.0 / len(self.style_layers) for _ in self.style_layers)
        return self.style_layer_weights

    @property
    def scale_sizes(self) -> tuple[int, ...]:
        """Long sides of the multi-scale schedule (a count N: image_size/2^(N-1) … image_size)."""
        if self.scales is None:
            return (self.image_size,)
        if len(self.scales) == 1 and self.scales[0] < MIN_IMAGE_SIZE:
            n = self.scales[0]
            return tuple(max(MIN_IMAGE_SIZE, self.image_size >> k) for k in range(n - 1, -1, -1))
        return self.scales

    def replace(self, **changes: Any) -> StyleParams:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with lists for tuple fields (Parquet/JSON friendly)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def param_fields() -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(StyleParams)


# Fields in which the pairs of one batch (pairs-per-gpu) may differ: per-image weights,
# optimizer settings, start and stopping. All other fields must be equal (`batch_key`).
PER_IMAGE_FIELDS = frozenset({
    "content_weight", "style_weight", "tv_weight", "style_layer_weights", "learning_rate",
    "ema_decay", "init", "seed", "target_loss", "style_scale", "photo_postprocess",
    "mask_color_match",
})  # fmt: skip

# Fields that define a pair's objective: the function its final segment minimises, given its
# content, style and masks (image_size and style_scale through the images' sizes). The other
# fields change only how it is minimised (optimizer, start, stopping, coarse scales, Luan's
# stage 1) or what is done with the result (post-process): rows that differ only in those
# minimise the same function, so their totals compare (workflows.targets).
OBJECTIVE_FIELDS = (
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "style_layer_weights", "image_size", "style_scale", "pooling", "preserve_color",
    "photo_weight", "mask_regions",
)  # fmt: skip


def batch_key(params: StyleParams) -> tuple[tuple[str, Any], ...]:
    """Pairs with equal keys (and equal content size) can be optimised as one batch."""
    return tuple(
        (f.name, getattr(params, f.name)) for f in param_fields() if f.name not in PER_IMAGE_FIELDS
    )


def _validate(p: StyleParams) -> None:
    _validate_losses(p)
    check_choice("optimizer", p.optimizer, OPTIMIZERS)
    check_number("learning_rate", p.learning_rate, positive=True)
    check_integer("iterations", p.iterations, 1, MAX_ITERATIONS)
    check_choice("init", p.init, INITS)
    check_integer("seed", p.seed, 0, 2**63 - 1)
    check_integer("image_size", p.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    check_number("style_scale", p.style_scale, positive=True)
    if not 0.05 <= p.style_scale <= 8:
        raise ParamError("style_scale", f"must be between 0.05 and 8, got {p.style_scale}")
    check_choice("pooling", p.pooling, POOLINGS)
    if p.target_loss is not None:
        check_number("target_loss", p.target_loss)
    check_choice("preserve_color", p.preserve_color, PRESERVE_COLORS)
    check_number("photo_weight", p.photo_weight)
    if not isinstance(p.photo_two_stage, bool):
        raise ParamError("photo_two_stage", f"must be true or false, got {p.photo_two_stage!r}")
    check_choice("photo_postprocess", p.photo_postprocess, POSTPROCESSES)
    check_number("mask_color_match", p.mask_color_match)
    if p.mask_color_match > 1:
        raise ParamError("mask_color_match", f"must be <= 1, got {p.mask_color_match}")
    check_integer("mask_regions", p.mask_regions, 2, MAX_MASK_REGIONS)
    check_number("ema_decay", p.ema_decay)
    if p.ema_decay >= 1:
        raise ParamError("ema_decay", f"must be < 1, got {p.ema_decay}")
    if p.ema_decay > 0 and p.optimizer != "adam":
        raise ParamError("ema_decay", "applies to optimizer adam only")
    _scales(p)


def _validate_losses(p: StyleParams) -> None:
    """The loss weights and layers."""
    if p.content_weight is not None:
        check_number("content_weight", p.content_weight)
    for name in ("style_weight", "tv_weight"):
        check_number(name, getattr(p, name))
    check_layers("content_layers", p.content_layers)
    check_layers("style_layers", p.style_layers)
    if p.style_layer_weights is not None:
        if len(p.style_layer_weights) != len(p.style_layers):
            raise ParamError(
                "style_layer_weights",
                f"has {len(p.style_layer_weights)} values for {len(p.style_layers)} style_layers",
            )
        for w in p.style_layer_weights:
            check_number("style_layer_weights", w)


def _scales(p: StyleParams) -> None:
    if p.scales is None:
        return
    if not p.scales:
        raise ParamError("scales", "needs at least one size (or leave it empty for none)")
    for v in p.scales:
        check_integer("scales", v, 1, MAX_IMAGE_SIZE)
    if len(p.scales) == 1 and p.scales[0] < MIN_IMAGE_SIZE:
        if p.iterations < p.scales[0]:
            raise ParamError("scales", f"{p.scales[0]} scales need >= that many iterations")
        return
    sizes = p.scales
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[-1] != p.image_size:
        raise ParamError(
            "scales", f"must increase and end at image_size {p.image_size}; got {list(sizes)}"
        )
    if sizes[0] < MIN_IMAGE_SIZE:
        raise ParamError("scales", f"sizes must be >= {MIN_IMAGE_SIZE}; got {list(sizes)}")
    if p.iterations < len(sizes):
        raise ParamError("scales", f"{len(sizes)} scales need >= that many iterations")
