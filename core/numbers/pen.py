"""A round pen drawn along a digit's skeleton, as a stroke on a canvas draws it.

The pen follows the skeleton of the digit enlarged PEN_SCALE times: traced on the 28 px digit, the
skeleton is a staircase of whole pixels, and re-drawn ten times larger it zig-zags and sprouts forks
that no pen stroke has. Used by the number reader's training numbers (core.numbers.written) and by the
tests' realistic drawings.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from core.preprocess import EIGHT_NEIGHBOURS
from core.thinning import thin_to_lines

SUPERSAMPLE = 2  # draw at 2x, then downsample: anti-aliased edges like a browser canvas
MIN_PIECE = 3  # px of a 28 px skeleton
PEN_SCALE = 3
INK_THRESHOLD = 100  # of 255: the pixels that are the stroke being thinned
FORWARD = [(0, 1), (1, -1), (1, 0), (1, 1)]  # one of each pair of neighbours: every link is drawn once


def skeleton(digit: np.ndarray, scale: int = 1) -> np.ndarray:
    """Zhang-Suen thinning (core.thinning) of a (28, 28) uint8 digit enlarged `scale` times (bicubic)
    -> boolean 1-px skeleton of the enlarged digit."""
    if scale > 1:
        side = digit.shape[0] * scale
        digit = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    ink = torch.from_numpy(digit > INK_THRESHOLD).float()[None, None]  # (1, 1, H, W)
    return _drop_specks(thin_to_lines(ink)[0, 0].bool().numpy(), MIN_PIECE * scale)


def _drop_specks(skel: np.ndarray, min_piece: int) -> np.ndarray:
    """Remove skeleton pieces smaller than `min_piece` px: a pen stroke leaves no isolated dots."""
    pieces, _ = ndimage.label(skel, structure=EIGHT_NEIGHBOURS)
    sizes = np.bincount(pieces.ravel())
    return (sizes >= min_piece)[pieces] & skel


def pen_path(digit: np.ndarray) -> np.ndarray:
    """The line a pen follows to draw the digit: its skeleton at PEN_SCALE times the size."""
    return skeleton(digit, PEN_SCALE)


def draw_strokes(path: np.ndarray, height: float, brush: float, size: tuple[int, int], top_left, ink, bg):
    """Draw a pen path scaled to `height` px with a round brush; returns an RGBA image."""
    ys, xs = np.nonzero(path)
    y0, x0 = ys.min(), xs.min()
    span = max(ys.max() - y0, 1)
    scale = height / span * SUPERSAMPLE
    w, h = size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE
    image = Image.new("RGBA", (w, h), bg)
    draw = ImageDraw.Draw(image)
    r = brush * SUPERSAMPLE / 2
    ox, oy = top_left[0] * SUPERSAMPLE + r, top_left[1] * SUPERSAMPLE + r

    def at(y, x):
        return ox + (x - x0) * scale, oy + (y - y0) * scale

    points = set(zip(ys.tolist(), xs.tolist(), strict=True))
    for y, x in points:
        cx, cy = at(y, x)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=ink)
        for dy, dx in FORWARD:
            if (y + dy, x + dx) in points:
                draw.line([at(y, x), at(y + dy, x + dx)], fill=ink, width=int(2 * r))
    return image.resize(size, Image.Resampling.LANCZOS)


def path_extent(path: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(path)
    return max(ys.max() - ys.min(), 1), max(xs.max() - xs.min(), 1)
