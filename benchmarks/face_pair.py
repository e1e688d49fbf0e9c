"""The face pair of benchmarks.photo_quality (issue 33): a colour portrait styled by a
black-and-white one, with masks drawn by hand as polygons in Luan et al.'s palette.

content: scikit-image's `astronaut` (Eileen Collins, NASA, public domain); style: its `camera`
(the cameraman, CC0 by Lav Varshney), both 512 × 512. Regions, by mask colour: red the face's
skin, yellow the hair, blue the clothing (suit, collar ring and helmet; coat, gloves and
shirt), white the rest (backdrop, flag, model shuttle; sky, grass, buildings, tripod). The
polygons below were read off the images on a 16-px grid. Writes examples/face/{content.jpg,
style.jpg, content_seg.png, style_seg.png}:

    python -m benchmarks.face_pair [--out examples/face]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.common import REPO

RED, YELLOW, BLUE, WHITE = (255, 0, 0), (255, 255, 0), (0, 0, 255), (255, 255, 255)
Polygon = list[tuple[int, int]]

ASTRONAUT: list[tuple[tuple[int, int, int], Polygon]] = [  # painted in order
    (BLUE, [(18, 512), (20, 420), (25, 360), (35, 300), (50, 262), (80, 230), (112, 208),
            (112, 185), (122, 165), (148, 150), (175, 146), (215, 150), (255, 160), (290, 178),
            (305, 210), (305, 240), (330, 262), (350, 285), (360, 315), (362, 345), (385, 343),
            (420, 342), (455, 355), (485, 385), (500, 415), (508, 450), (512, 470),
            (512, 512)]),
    (YELLOW, [(153, 110), (150, 80), (158, 52), (178, 32), (205, 18), (235, 14), (262, 20),
              (285, 38), (298, 62), (302, 90), (298, 115), (288, 130), (275, 135), (268, 110),
              (268, 92), (258, 84), (240, 80), (222, 80), (205, 84), (192, 92), (190, 110),
              (186, 130), (175, 132), (160, 125)]),
    (RED, [(192, 92), (205, 84), (222, 80), (240, 80), (258, 84), (268, 92), (270, 110),
           (268, 130), (262, 150), (252, 168), (240, 182), (226, 188), (212, 182), (200, 168),
           (193, 150), (188, 130), (190, 110)]),
]  # fmt: skip
CAMERAMAN: list[tuple[tuple[int, int, int], Polygon]] = [
    (BLUE, [(0, 512), (0, 245), (15, 225), (45, 195), (80, 168), (110, 142), (130, 115),
            (150, 102), (162, 110), (172, 125), (180, 150), (188, 178), (200, 192), (215, 200),
            (245, 205), (262, 205), (275, 190), (290, 172), (318, 168), (332, 180), (330, 210),
            (310, 228), (296, 245), (290, 268), (275, 290), (245, 305), (205, 312), (185, 330),
            (160, 350), (143, 390), (145, 450), (150, 512)]),
    (YELLOW, [(160, 110), (165, 90), (180, 72), (200, 64), (225, 64), (245, 72), (262, 88),
              (270, 105), (268, 122), (255, 128), (235, 128), (215, 130), (195, 128),
              (180, 126), (168, 122)]),
    (RED, [(180, 126), (195, 128), (215, 130), (235, 128), (255, 128), (268, 124), (258, 140),
           (255, 150), (258, 160), (250, 168), (245, 180), (240, 190), (228, 196), (212, 195),
           (200, 188), (190, 175), (180, 160), (178, 140)]),
]  # fmt: skip


Regions = list[tuple[tuple[int, int, int], Polygon]]


def draw_mask(size: tuple[int, int], regions: Regions) -> Image.Image:
    """A colour-coded mask: white, then each polygon filled with its colour, in order."""
    mask = Image.new("RGB", size, WHITE)
    draw = ImageDraw.Draw(mask)
    for colour, polygon in regions:
        draw.polygon(polygon, fill=colour)
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "examples" / "face")
    args = parser.parse_args()
    from skimage import data  # test extras; only this script needs it

    args.out.mkdir(parents=True, exist_ok=True)
    content = Image.fromarray(data.astronaut()).convert("RGB")  # type: ignore[no-untyped-call]
    style = Image.fromarray(data.camera()).convert("RGB")  # type: ignore[no-untyped-call]
    content.save(args.out / "content.jpg", quality=95)
    style.save(args.out / "style.jpg", quality=95)
    draw_mask(content.size, ASTRONAUT).save(args.out / "content_seg.png")
    draw_mask(style.size, CAMERAMAN).save(args.out / "style_seg.png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
