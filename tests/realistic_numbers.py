"""Numbers of 2-8 digits written with MNIST test digits, built at test time and seeded: each digit
re-drawn along its skeleton with a round pen (as tests/realistic.py does for one digit), set beside
the previous one at a chosen gap at their closest rows, then put on the Number canvas or photographed
on paper.

Gap kinds, by the geometry that results: "separated" (the digits' boxes do not overlap across the
page), "overlapping" (the boxes overlap but the ink does not touch, like a 7 leaning over a 1) and
"touching" (the ink of two digits runs together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from core.numbers.pen import draw_strokes, path_extent, pen_path
from core.numbers.written import place_after, row_edges
from tests.drawings import WIDE, encode
from tests.realistic import FAST_PNG

WHITE, CLEAR, BLACK = (255, 255, 255, 255), (0, 0, 0, 0), (0, 0, 0, 255)
HEIGHT = 120  # px a digit is drawn at before the number is fitted to the canvas
MARGIN = 0.06  # of the canvas, kept clear around the number
GAPS = {  # px between the digits at their closest rows, as shares of the digit height
    "separated": (0.12, 0.45),
    "overlapping": (0.02, 0.08),
}
TOUCH = (-0.35, -0.1)  # overlap of the ink at the closest rows, in brush widths


@dataclass
class WrittenNumber:
    text: str
    image: bytes
    kinds: list[str]  # of each gap, by the resulting geometry


def _layer(digit: np.ndarray, height: float, brush: float) -> Image.Image:
    """One digit in white on a transparent image just large enough."""
    path = pen_path(digit)
    span_y, span_x = path_extent(path)
    width = height * span_x / span_y
    size = (int(np.ceil(width + brush)) + 2, int(np.ceil(height + brush)) + 2)
    return draw_strokes(path, height, brush, size, (1, 1), WHITE, CLEAR)


def write_number(
    digits: np.ndarray, labels: list[int], kind: str, rng: np.random.Generator
) -> tuple[Image.Image, list[str]]:
    """The digits (28x28 uint8 each) written left to right in white on a transparent strip."""
    brush = float(rng.uniform(0.06, 0.2) * HEIGHT)
    heights = [HEIGHT * rng.uniform(0.9, 1.1) for _ in labels]
    layers = [_layer(d, h, brush) for d, h in zip(digits, heights, strict=True)]
    tall = max(layer.height for layer in layers) + int(0.1 * HEIGHT)
    tops = [int(rng.uniform(0, tall - layer.height)) for layer in layers]
    xs, kinds, right = [0.0], [], None
    boxes = []
    for i, (layer, top) in enumerate(zip(layers, tops, strict=True)):
        left_edge, right_edge = row_edges(np.asarray(layer.getchannel("A")) / 255, top, tall)
        if i:
            lo, hi = (
                (TOUCH[0] * brush, TOUCH[1] * brush)
                if kind == "touching"
                else [s * HEIGHT for s in GAPS[kind]]
            )
            xs.append(place_after(right, left_edge, rng.uniform(lo, hi)))
            touching = kind == "touching"
            overlap = xs[-1] + np.nanmin(left_edge) < boxes[-1][1]
            kinds.append("touching" if touching else ("overlapping" if overlap else "separated"))
        shifted = right_edge + xs[-1]
        right = shifted if right is None else np.fmax(right, shifted)
        boxes.append((xs[-1] + np.nanmin(left_edge), xs[-1] + np.nanmax(right_edge)))
    width = int(max(x + layer.width for x, layer in zip(xs, layers, strict=True))) + 1
    strip = Image.new("RGBA", (width, tall), CLEAR)
    for x, top, layer in zip(xs, tops, layers, strict=True):
        strip.alpha_composite(layer, (int(round(x)), top))
    return strip, kinds


def _fit(strip: Image.Image, size: tuple[int, int]) -> Image.Image:
    room = (size[0] * (1 - 2 * MARGIN), size[1] * (1 - 2 * MARGIN))
    scale = min(room[0] / strip.width, room[1] / strip.height, 1.0)
    return strip.resize(
        (max(1, int(strip.width * scale)), max(1, int(strip.height * scale))), Image.Resampling.LANCZOS
    )


def on_canvas(strip: Image.Image, rng: np.random.Generator) -> bytes:
    """White ink on the Number mode's black 700x220 canvas, anywhere it fits."""
    number = _fit(strip, WIDE)
    canvas = Image.new("RGBA", WIDE, BLACK)
    x = int(rng.uniform(0, WIDE[0] - number.width))
    y = int(rng.uniform(0, WIDE[1] - number.height))
    canvas.alpha_composite(number, (x, y))
    return encode(canvas, "PNG", compress_level=FAST_PNG)


def photographed(strip: Image.Image, rng: np.random.Generator) -> bytes:
    """Dark ink on unevenly lit, noisy paper, slightly blurred, saved as JPEG."""
    from tests.realistic import _paper

    size = (int(rng.uniform(900, 1400)), int(rng.uniform(320, 520)))
    number = _fit(strip, (size[0], int(size[1] * rng.uniform(0.6, 1.0))))
    mask = np.zeros((size[1], size[0], 1), np.float32)
    x, y = int(rng.uniform(0, size[0] - number.width)), int(rng.uniform(0, size[1] - number.height))
    mask[y : y + number.height, x : x + number.width, 0] = (
        np.asarray(number.getchannel("A"), np.float32) / 255
    )
    ink = rng.uniform(15, 70) * np.array([1.0, 1.0, rng.uniform(1.0, 1.8)])
    paper = _paper(size, rng)
    pixels = paper * (1 - mask) + ink * mask + rng.normal(0, rng.uniform(3, 9), paper.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    return encode(image, "JPEG", quality=int(rng.uniform(70, 92)))


def number_set(
    digits: np.ndarray, labels: np.ndarray, count: int, length: int, kind: str, medium: str, seed: int
) -> list[WrittenNumber]:
    """`count` numbers of `length` pen-like MNIST digits, written with `kind` gaps, on the canvas or
    photographed (`medium`)."""
    from tests.realistic import pen_like_indices

    rng = np.random.default_rng(seed)
    pool = pen_like_indices(digits, count * length, rng)
    out = []
    for k in range(count):
        chosen = pool[k * length : (k + 1) * length]
        strip, kinds = write_number(digits[chosen], [int(labels[i]) for i in chosen], kind, rng)
        image = on_canvas(strip, rng) if medium == "canvas" else photographed(strip, rng)
        out.append(WrittenNumber("".join(str(int(labels[i])) for i in chosen), image, kinds))
    return out
