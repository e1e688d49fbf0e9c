"""Image decoding: modes, EXIF orientation, bomb guard, broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from workflows.errors import InputError
from workflows.images import decode_image, resize_long_side, to_png, to_tensor


def encode(image: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("RGB", "JPEG")],
)
def test_modes_become_rgb(mode: str, fmt: str) -> None:
    image = Image.new("RGB", (20, 10), (200, 40, 10)).convert(mode)
    out = decode_image(encode(image, fmt), "x")
    assert out.mode == "RGB" and out.size == (20, 10)


def test_16_bit_grey_png_is_rescaled_not_clipped() -> None:
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    out = decode_image(encode(Image.fromarray(arr)), "grey16.png")
    assert abs(int(np.asarray(out)[0, 0, 0]) - 128) <= 1


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(decode_image(encode(image), "a.png"))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (30, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = decode_image(encode(image, "JPEG", exif=exif), "rot.jpg")
    assert out.size == (10, 30)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"hello, I am text\n" * 10, "not an image"),
        (encode(Image.new("RGB", (64, 64)), "PNG")[:60], "truncated or corrupt"),
    ],
)
def test_broken_files_name_the_file(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=f"^bad.img: {message}"):
        decode_image(data, "bad.img")


def test_bomb_is_refused() -> None:
    data = encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(InputError, match="3000x3000 pixels exceeds the limit of 1000000"):
        decode_image(data, "bomb.png", max_pixels=1_000_000)


def test_resize_long_side_and_roundtrip() -> None:
    image = Image.new("RGB", (300, 200), (10, 20, 30))
    small = resize_long_side(image, 60)
    assert small.size == (60, 40)
    tensor = to_tensor(small)
    assert tensor.shape == (3, 40, 60)
    back = Image.open(io.BytesIO(to_png(tensor)))
    assert np.asarray(back)[0, 0].tolist() == [10, 20, 30]
