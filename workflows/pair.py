"""One (content, style, params) pair: load inputs, stylize, and return the result. Shared by
`nst stylize` and the Ray workers of `nst run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from nst_ops.optimize import Pair, StyleResult, stylize_batch
from nst_ops.params import StyleParams
from nst_ops.recorder import ProgressCallback
from nst_ops.vgg import VGGFeatures, check_layers, layer_names
from nst_ops.yardstick import DEFAULTS as YARDSTICK_PARAMS
from nst_ops.yardstick import Yardstick, yardstick
from workflows.errors import InputError
from workflows.host import keep_freed_memory
from workflows.images import DEFAULT_MAX_PIXELS, decode_image, resize_long_side, to_tensor
from workflows.storage import StorageOptions, read_bytes
from workflows.weights import ResolvedWeights


def pick_device(name: str) -> torch.device:
    """cpu | cuda | cuda:N | auto (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


@dataclass
class ExtractorCache:
    """VGG trunks built from one set of weights, one per (pooling, depth), kept for the life of
    the process so that a worker loads the network once, not once per pair. Creating one sets
    the process up for its device: TF32 on CUDA; on the CPU, freed memory is kept for reuse
    (workflows.host: 20% faster iterations at 512 px)."""

    weights: ResolvedWeights
    device: torch.device
    precision: str = "fp32"
    built: dict[tuple[str, int], VGGFeatures] = field(default_factory=dict)
    builds: int = 0

    def __post_init__(self) -> None:
        if self.device.type == "cuda":
            tf32 = self.precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        else:
            keep_freed_memory()

    def get(self, params: StyleParams) -> VGGFeatures:
        layers = params.content_layers + params.style_layers
        try:
            check_layers(self.weights.model, layers)
        except ValueError as e:
            raise InputError(f"layers: {e}") from None
        depth = max(layer_names(self.weights.model).index(n) for n in layers)
        key = (params.pooling, depth)
        if key not in self.built:
            deepest = layer_names(self.weights.model)[depth]
            extractor = VGGFeatures(
                self.weights.model,
                [deepest],
                self.weights.state_dict,
                params.pooling,
                precision=self.precision,
            ).to(self.device)
            if self.device.type == "cuda":
                extractor = extractor.to(memory_format=torch.channels_last)
            self.built[key] = extractor
            self.builds += 1
        return self.built[key]


@dataclass(frozen=True)
class PairInput:
    content_uri: str
    style_uri: str
    params: StyleParams
    content_mask_uri: str | None = None
    style_mask_uri: str | None = None


@dataclass(frozen=True)
class PairOutcome:
    result: StyleResult
    yardstick: Yardstick | None
    iterations_to_target: int | None


@dataclass(frozen=True)
class LoadedPair:
    """A pair's tensors at working size (`pair`) and the decoded originals (for the
    yardstick, which measures at its own size)."""

    pair: Pair
    content_image: Image.Image
    style_image: Image.Image
    source: PairInput


def load_pair(
    pair: PairInput,
    extractors: ExtractorCache,
    options: StorageOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    yardstick_size: int = 0,
    callback: ProgressCallback | None = None,
) -> LoadedPair:
    """Read, decode, resize and check a pair's images and masks. InputError when unusable."""
    p = pair.params
    extractor = extractors.get(p)
    style_side = max(16, round(p.image_size * p.style_scale))
    content_image = _decode(
        pair.content_uri, options, max_pixels, max(p.image_size, yardstick_size)
    )
    style_image = _decode(pair.style_uri, options, max_pixels, max(style_side, yardstick_size))
    content = to_tensor(resize_long_side(content_image, p.image_size))
    style = to_tensor(resize_long_side(style_image, style_side))
    factor = min(p.scale_sizes) / p.image_size
    for uri, image in ((pair.content_uri, content), (pair.style_uri, style)):
        _check_size(uri, image, extractor, factor)
    content_mask = _load_mask(pair.content_mask_uri, p.image_size, options, max_pixels)
    style_mask = _load_mask(pair.style_mask_uri, style_side, options, max_pixels)
    tensors = Pair(content, style, p, content_mask, style_mask, callback)
    return LoadedPair(tensors, content_image, style_image, pair)


def stylize_loaded(pairs: list[LoadedPair], extractors: ExtractorCache) -> list[StyleResult]:
    """Stylize pairs that form one batch (nst_ops.optimize.batch_groups) together."""
    try:
        return stylize_batch([p.pair for p in pairs], extractors.get(pairs[0].pair.params))
    except ValueError as e:  # masks are checked when the optimisation starts
        source = pairs[0].source
        if str(e).startswith("content mask"):
            raise InputError(f"{source.content_mask_uri}: {e}") from None
        if str(e).startswith("masks:"):
            raise InputError(str(e)) from None
        raise


def measure(
    loaded: LoadedPair, result: StyleResult, extractors: ExtractorCache, yardstick_size: int
) -> PairOutcome:
    """The outcome of a stylized pair; with yardstick_size > 0 its yardstick (nst_ops.yardstick)
    with the same weights."""
    value = None
    if yardstick_size > 0:
        value = yardstick(
            extractors.get(YARDSTICK_PARAMS),
            result.image,
            to_tensor(resize_long_side(loaded.content_image, yardstick_size)),
            to_tensor(resize_long_side(loaded.style_image, yardstick_size)),
            yardstick_size,
        )
    reached = result.iterations_run if result.reached_target else None
    return PairOutcome(result, value, reached)


def run_pair(
    pair: PairInput,
    extractors: ExtractorCache,
    options: StorageOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    callback: ProgressCallback | None = None,
    yardstick_size: int = 0,
) -> PairOutcome:
    """Load, resize and stylize one pair; with yardstick_size > 0 also evaluate the yardstick.
    InputError for unusable inputs."""
    loaded = load_pair(pair, extractors, options, max_pixels, yardstick_size, callback)
    (result,) = stylize_loaded([loaded], extractors)
    return measure(loaded, result, extractors, yardstick_size)


def _decode(
    uri: str, options: StorageOptions | None, max_pixels: int, draft: int | None = None
) -> Image.Image:
    return decode_image(read_bytes(uri, options), uri, max_pixels, draft)


def _load_mask(
    uri: str | None, long_side: int, options: StorageOptions | None, max_pixels: int
) -> torch.Tensor | None:
    """Colour-coded mask → (3, h, w) at about the working size (nearest: keeps palette colours)."""
    if not uri:
        return None
    image = _decode(uri, options, max_pixels)
    w, h = image.size
    scale = min(1.0, 2 * long_side / max(w, h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = image.resize(size, Image.Resampling.NEAREST)
    return to_tensor(image)


def _check_size(uri: str, image: torch.Tensor, extractor: VGGFeatures, factor: float) -> None:
    """Each pooling halves the image: the deepest layer needs a short side of 2^pools px, also
    at the coarsest of the `scales` (`factor` = coarsest / image_size)."""
    need = 2 ** sum(name.startswith("pool") for name in extractor.names)
    h, w = image.shape[-2:]
    small_h, small_w = max(1, round(h * factor)), max(1, round(w * factor))
    if min(small_h, small_w) < need:
        where = "at working size" if factor == 1 else "at the coarsest scale"
        raise InputError(
            f"{uri}: {small_w}x{small_h} px {where} is too small for layer "
            f"{extractor.names[-1]} (short side must be >= {need} px; raise image_size, "
            "style_scale or the coarsest scale)"
        )
