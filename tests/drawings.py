"""Simple drawings every model reads with certainty, shared by the app and CLI tests."""

import io

import numpy as np
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


WIDE = (700, 220)  # the Number mode's canvas
DIGIT_BOX = 100  # px: the width of a digit's box in DIGIT_STROKES
TOUCHING = {"10": -50, "2026": -26}  # number()'s gap at which each digit's strokes meet the next one's
# Strokes of digits in a 100x160 box (pen points), written as people write them on a canvas.
DIGIT_STROKES = {
    "0": [[(50, 10), (20, 40), (15, 90), (30, 140), (60, 150), (85, 115), (88, 55), (70, 15), (50, 10)]],
    "1": [[(55, 10), (50, 150)]],
    "2": [[(15, 45), (40, 12), (75, 15), (85, 50), (20, 145), (92, 145)]],
    "4": [[(60, 10), (12, 100), (92, 100)], [(70, 45), (70, 155)]],  # two strokes that cross
    "5": [[(25, 5), (88, 5)], [(25, 32), (22, 72), (60, 65), (88, 100), (72, 142), (18, 145)]],  # lifted bar
    "6": [[(75, 10), (30, 60), (18, 115), (45, 150), (80, 130), (75, 90), (35, 90), (22, 110)]],
    "7": [[(10, 10), (92, 10), (40, 152)]],
}


def number(text: str, x0: int = 60, gap: int = 30, width: int = 16, y0: int = 30, size=WIDE) -> Image.Image:
    """`text` written left to right with DIGIT_STROKES, `gap` px between 100 px wide digit boxes
    (negative: the boxes overlap)."""
    image = Image.new("RGBA", size, BLACK)
    draw = ImageDraw.Draw(image)
    for i, char in enumerate(text):
        left = x0 + i * (DIGIT_BOX + gap)
        for stroke in DIGIT_STROKES[char]:
            points = [(left + x, y0 + y) for x, y in stroke]
            draw.line(points, fill=WHITE, width=width, joint="curve")
            for x, y in points:
                draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=WHITE)
    return image


def crossed_seven(rng) -> Image.Image:
    """A 7 with a bar across its stem, as it is written in much of Europe; varied like flagged_one."""
    left, top = rng.uniform(50, 90), rng.uniform(35, 70)
    right, bottom = left + rng.uniform(110, 150), top + rng.uniform(160, 190)
    foot = left + rng.uniform(30, 70)
    width = int(rng.integers(14, 24))
    seven = pen([(left, top), (right, top), (foot, bottom)], width)
    middle = (top + bottom) / 2
    stem_x = right + (foot - right) * (middle - top) / (bottom - top)
    bar = pen([(stem_x - rng.uniform(35, 55), middle), (stem_x + rng.uniform(35, 55), middle)], width)
    return Image.fromarray(np.maximum(np.asarray(seven), np.asarray(bar)))


def slashed_zero(rng) -> Image.Image:
    """A 0 with a slash through it, as programmers write it; varied like flagged_one."""
    cx, cy = rng.uniform(120, 160), rng.uniform(120, 160)
    rx, ry = rng.uniform(45, 65), rng.uniform(80, 100)
    ring = [(cx + rx * np.sin(t), cy - ry * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 24)]
    width = int(rng.integers(14, 24))
    zero = pen(ring, width)
    slash = pen([(cx + rx * 0.9, cy - ry * 0.9), (cx - rx * 0.9, cy + ry * 0.9)], width)
    return Image.fromarray(np.maximum(np.asarray(zero), np.asarray(slash)))
