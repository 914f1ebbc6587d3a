"""Simple drawings every model reads with certainty, shared by the app and CLI tests."""

import io

from PIL import Image, ImageDraw

CANVAS = 280
WHITE, BLACK = (255, 255, 255, 255), (0, 0, 0, 255)


def seven(mode="RGBA", bg=BLACK, ink=WHITE, box=(60, 40, 200, 240), width=18) -> Image.Image:
    """A 280x280 drawing of a 7 with its bar at the top of `box`."""
    image = Image.new(mode, (CANVAS, CANVAS), bg)
    left, top, right, bottom = box
    ImageDraw.Draw(image).line([(left, top), (right, top), (left + 50, bottom)], fill=ink, width=width)
    return image


def one() -> Image.Image:
    image = Image.new("RGBA", (CANVAS, CANVAS), BLACK)
    ImageDraw.Draw(image).line([(150, 40), (140, 240)], fill=WHITE, width=18)
    return image


def encode(image: Image.Image, fmt="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pen(points: list[tuple[int, int]], width: int = 18) -> Image.Image:
    """A canvas stroke through `points` with a round pen, as the app's canvas draws it: white on black."""
    image = Image.new("RGBA", (CANVAS, CANVAS), BLACK)
    draw = ImageDraw.Draw(image)
    if len(points) > 1:
        draw.line(points, fill=WHITE, width=width)
    for x, y in points:  # round caps and joints
        draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=WHITE)
    return image


def flagged_one(rng) -> Image.Image:
    """A 1 as many Europeans write it: an upright stem whose long flag reaches low to the left.
    `rng` (numpy Generator) varies the place, size, slant and pen, within one style."""
    stem_x, top = rng.uniform(130, 175), rng.uniform(35, 70)
    bottom = top + rng.uniform(150, 190)
    slant = rng.uniform(-12, 12)
    flag = (stem_x + slant - rng.uniform(80, 110), top + rng.uniform(40, 70))
    return pen([flag, (stem_x + slant, top), (stem_x - slant, bottom)], int(rng.integers(14, 24)))
