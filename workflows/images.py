"""Reading and writing images: any fsspec URI, EXIF orientation applied, every common mode
converted to RGB, Pillow's decompression-bomb limit kept, resized by the long side.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from workflows.errors import InputError
from workflows.storage import StorageOptions, read_bytes

DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's default bomb limit


def decode_image(
    data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Bytes → PIL RGB image; InputError naming `name` on anything unusable. With draft_size,
    JPEGs are decoded at the smallest scale still ≥ that size (big photos stay cheap)."""
    if not data:
        raise InputError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            w, h = image.size
            if w * h > max_pixels:
                raise InputError(
                    f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels} "
                    "(decompression-bomb guard; raise it with --max-image-pixels)"
                )
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image = ImageOps.exif_transpose(image)
            image.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{name}: refused as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: truncated or corrupt image ({e})") from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB. Alpha is composited over white; 16/32-bit grey rescaled to 8-bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(w, h) scaled so the long side is `long_side` px, keeping the aspect ratio."""
    w, h = size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def resize_long_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the long side is `size` px (Lanczos), keeping the aspect ratio."""
    new = long_side_size(image.size, size)
    return image if new == image.size else image.resize(new, Image.Resampling.LANCZOS)


def load_image(
    uri: str,
    long_side: int,
    options: StorageOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Tensor:
    """Read `uri` and return (3, H, W) float32 RGB in [0,1] with max(H, W) = long_side."""
    image = decode_image(read_bytes(uri, options), uri, max_pixels)
    return to_tensor(resize_long_side(image, long_side))


def to_tensor(image: Image.Image) -> Tensor:
    arr = np.array(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


# An output file's extension → the Pillow format written and its options (JPEG and WebP at
# quality 95). No extension: PNG.
_FORMATS: dict[str, tuple[str, dict[str, int]]] = {
    ".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}),
    ".webp": ("WEBP", {"quality": 95}), ".tif": ("TIFF", {}), ".tiff": ("TIFF", {}),
    ".bmp": ("BMP", {}),
}  # fmt: skip


def image_format(name: str) -> str:
    """The format `encode_image` writes for the file name or URI `name`, by its extension (any
    case; none: PNG). InputError naming `name` for an extension it does not write."""
    base = name.split("?")[0].rsplit("/", 1)[-1]
    extension = "." + base.rsplit(".", 1)[1].lower() if "." in base else ".png"
    if extension not in _FORMATS:
        raise InputError(
            f"{name}: cannot write {extension} images; use one of {', '.join(_FORMATS)}"
        )
    return extension


def encode_image(image: Tensor, name: str = "image.png") -> bytes:
    """(3, H, W) in [0,1] → 8-bit (rounded) file bytes in the format of `name`'s extension."""
    arr = (image.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    kind, options = _FORMATS[image_format(name)]
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format=kind, **options)
    return buf.getvalue()


def to_png(image: Tensor) -> bytes:
    """(3, H, W) in [0,1] → PNG bytes (8-bit, rounded)."""
    return encode_image(image)
