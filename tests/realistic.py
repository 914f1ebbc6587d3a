"""Seeded generator of realistic inputs made from MNIST test digits, built at test time.

Canvas drawings are re-drawn from each digit's skeleton with a round brush of a chosen width,
like a stroke on the app's canvas; photos put dark ink on unevenly lit, noisy paper saved as JPEG.
The pen follows the skeleton of the digit enlarged PEN_SCALE times: traced on the 28 px digit, the
skeleton is a staircase of whole pixels, and re-drawn ten times larger it zig-zags and sprouts forks
that no pen stroke has.
"""

from __future__ import annotations

import itertools

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from core.numbers.pen import draw_strokes, path_extent, pen_path, skeleton
from core.preprocess import EIGHT_NEIGHBOURS
from tests.drawings import encode

CANVAS = 280
CANVAS_STYLES = ("white_on_black", "black_on_transparent", "white_on_transparent")
FAST_PNG = 1  # zlib level: the same pixels as the default 6, in a third of the time
DESK_GREY = (30, 110)  # brightness of the desk past the paper
DESK_SHARE = (0.03, 0.15)  # width of a desk strip, share of the photo's side
MAX_DESK_ROOM = 0.8  # of the room between the digit and that side
CLICK_CLEARANCE = 2  # brush widths between a stray click and the digit
CLICK_TRIES = 50


MIN_COVERAGE = 0.95  # share of a digit's ink its re-drawn skeleton must cover


def pen_like(digit: np.ndarray) -> bool:
    """True when the skeleton, thickened to a pen's width, covers the digit: re-drawing it is faithful.

    Digits with filled loops or blobs fail: their skeleton is a stub that no longer shows the digit.
    """
    ink = digit > 100
    pen = ndimage.binary_dilation(skeleton(digit), EIGHT_NEIGHBOURS, iterations=2)  # a pen's width
    return (ink & pen).sum() >= MIN_COVERAGE * ink.sum()


def pen_like_indices(digits: np.ndarray, count: int, rng: np.random.Generator) -> list[int]:
    """`count` random indices of pen-like digits."""
    order = rng.permutation(len(digits))
    return list(itertools.islice((int(i) for i in order if pen_like(digits[i])), count))  # stops at count


def canvas_png(
    digit: np.ndarray, style: str, rng: np.random.Generator, stray_click: bool = False
) -> bytes | None:
    """A 280x280 RGBA canvas drawing: height 25-85% of the canvas, anywhere, thin or thick pen.

    With `stray_click`, the pen also touched the canvas once, somewhere clear of the digit; None when
    the digit leaves no such spot.
    """
    path = pen_path(digit)
    span_y, span_x = path_extent(path)
    height = rng.uniform(0.25, 0.85) * CANVAS
    brush = float(np.clip(rng.uniform(0.05, 0.2) * height, 3, 40))
    height = min(height, (CANVAS - brush) * span_y / span_x)  # a wide digit must fit across
    width = height * span_x / span_y
    top_left = (rng.uniform(0, max(0, CANVAS - width - brush)), rng.uniform(0, CANVAS - height - brush))
    white, black = (255, 255, 255, 255), (0, 0, 0, 255)
    ink, bg = {
        "white_on_black": (white, black),
        "black_on_transparent": (black, (0, 0, 0, 0)),
        "white_on_transparent": (white, (0, 0, 0, 0)),
    }[style]
    image = draw_strokes(path, height, brush, (CANVAS, CANVAS), top_left, ink, bg)
    if stray_click and not _click(image, _drawn_box(top_left, width, height, brush), brush, ink, rng):
        return None
    return encode(image, "PNG", compress_level=FAST_PNG)


def _drawn_box(top_left: tuple[float, float], width: float, height: float, brush: float) -> tuple[float, ...]:
    """(x0, y0, x1, y1) of what draw_strokes inks from `top_left`: the path's box plus the brush."""
    return top_left[0], top_left[1], top_left[0] + width + brush, top_left[1] + height + brush


def _click(image: Image.Image, box: tuple[float, ...], brush: float, ink, rng: np.random.Generator) -> bool:
    """Draw a dot of the brush's size at a random spot at least CLICK_CLEARANCE brushes from the box
    (x0, y0, x1, y1); False where no such spot turns up."""
    r = brush / 2
    for _ in range(CLICK_TRIES):
        x, y = rng.uniform(r, CANVAS - r, 2)
        gap = max(box[0] - x, x - box[2], box[1] - y, y - box[3])
        if gap >= CLICK_CLEARANCE * brush + r:
            ImageDraw.Draw(image).ellipse([x - r, y - r, x + r, y + r], fill=ink)
            return True
    return False


def _paper(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Off-white paper (H, W, 3) float with a lighting gradient, a shadow and sensor noise."""
    w, h = size
    tone = rng.uniform(200, 245) * np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 0.98)])
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 - rng.uniform(0.15, 0.35) * (np.cos(angle) * xx + np.sin(angle) * yy)
    cy, cx = rng.uniform(0, 1, 2) * [h, w] / max(w, h)
    shadow = 1 - rng.uniform(0.0, 0.2) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05)
    return tone * (light * shadow)[..., None]


def _show_desk(paper: np.ndarray, digit_box: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """A dark desk past one to four of the paper's edges; no strip reaches the digit's box (x0, y0,
    x1, y1)."""
    h, w, _ = paper.shape
    x0, y0, x1, y1 = digit_box
    out = paper.copy()
    desk = rng.uniform(*DESK_GREY) * np.array([1.0, 0.85, 0.7])
    rooms, lengths = (x0, y0, w - x1, h - y1), (w, h, w, h)
    left, top, right, bottom = (
        int(min(rng.uniform(*DESK_SHARE) * length, MAX_DESK_ROOM * room))
        for length, room in zip(lengths, rooms, strict=True)
    )
    strips = [np.s_[:, :left], np.s_[:top], np.s_[:, w - right :], np.s_[h - bottom :]]
    for k in rng.permutation(len(strips))[: rng.integers(1, len(strips) + 1)]:
        out[strips[k]] = desk
    return out


def photo_jpeg(digit: np.ndarray, rng: np.random.Generator, desk: bool = False) -> bytes:
    """Dark ink on uneven paper, digit small (20-45% of the height) and off-centre, noisy, JPEG.

    With `desk`, the desk shows past some of the paper's edges.
    """
    size = (int(rng.uniform(320, 640)), int(rng.uniform(240, 480)))
    path = pen_path(digit)
    span_y, span_x = path_extent(path)
    height = rng.uniform(0.2, 0.45) * size[1]
    brush = max(2.0, rng.uniform(0.06, 0.14) * height)
    height = min(height, (size[0] - brush) * span_y / span_x)  # a wide digit must fit across
    width = height * span_x / span_y
    top_left = (rng.uniform(0, size[0] - width - brush), rng.uniform(0, size[1] - height - brush))
    strokes = draw_strokes(path, height, brush, size, top_left, (255, 255, 255, 255), (0, 0, 0, 0))
    mask = np.asarray(strokes.getchannel("A"), dtype=np.float32)[..., None] / 255
    ink = rng.uniform(15, 70) * np.array([1.0, 1.0, rng.uniform(1.0, 1.8)])
    paper = _paper(size, rng)
    if desk:
        paper = _show_desk(paper, _drawn_box(top_left, width, height, brush), rng)
    pixels = paper * (1 - mask) + ink * mask + rng.normal(0, rng.uniform(3, 9), paper.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.4)))
    return encode(image, "JPEG", quality=int(rng.uniform(60, 90)))


def blank_images(rng: np.random.Generator) -> dict[str, bytes]:
    """Nothing drawn: empty canvases of each style, white, and blank paper photos."""
    size = (CANVAS, CANVAS)
    images = {
        "black_canvas": encode(Image.new("RGBA", size, (0, 0, 0, 255)), "PNG"),
        "transparent_canvas": encode(Image.new("RGBA", size, (0, 0, 0, 0)), "PNG"),
        "white_canvas": encode(Image.new("RGB", size, (255, 255, 255)), "PNG"),
    }
    for i in range(5):
        paper = _paper((480, 360), rng) + rng.normal(0, 6, (360, 480, 3))
        photo = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
        images[f"blank_paper_{i}"] = encode(photo, "JPEG", quality=75)
    return images
