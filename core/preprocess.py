"""Turn any drawing or photo into an MNIST-style 28x28 input.

MNIST's recipe: white ink on black, the digit scaled so its longer side is 20 px (aspect kept),
then placed in 28x28 with its centre of mass at the centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from core import images  # images.open_image looked up at each call: tests count the files it decodes
from core.data import standardise
from core.images import ImageSource
from core.nets import IMAGE_SIDE

DIGIT_BOX = 20  # MNIST fits each digit in a 20x20 box
WORK_SIDE = 112  # images are reduced to this (4x the output) first: plenty for a 20 px digit
BACKGROUND_GRID = 6  # background is estimated per cell of a 6x6 grid
BACKGROUND_PERCENTILE = 0.2  # a cell's background: its 20th-percentile brightness
OUTLIER_MARGIN = 0.3  # cells brighter than the typical cell by this much hold ink, not background
MIN_CONTRAST = 0.12  # ink must stand out by this much (0..1) or the image is blank
INK_THRESHOLD = 0.25  # share of the strongest ink below which pixels count as background
TRIM_MASS = 0.003  # share of ink mass cut from each side when cropping (stray specks)
MAX_INK_AREA = 0.6  # more of the frame than this "inked" means noise or a texture, not a digit
MAX_EDGES_PER_ROW = 12  # a row crosses a digit's edges a few times, noise's dozens of times
TARGET_STROKE_PX = 2.4  # stroke width of an MNIST digit in the 28x28 frame
MAX_STROKE_RATIO = 1.6  # thicker strokes than this times the target are thinned
EDGE_RUN = 0.25  # ink along this share of a frame side, from a corner, is a paper or desk edge
EDGE_LEVEL = 0.5  # a desk is darker than the paper by half the ink's contrast, or more
EDGE_RIM = 2  # px around a desk edge that its blur reaches
FULL_SPAN = 0.95  # share of a side that a desk edge covers when it crosses the whole frame
MIN_DIGIT_AREA = 0.002  # share of the frame that even a small digit inks
STRAY_GRID = 28  # ink is split into pieces on a grid this coarse: fast, and it bridges small gaps
MAX_BLOB_SPAN = 3.0  # a piece at most this many times as long as it is wide is a blob: a dot, a speck
# MNIST's centres of mass sit at pixel (14, 14) on average, spread +-0.29 by whole-pixel shifts
# (measured on its test set), not at the frame's middle 13.5.
MNIST_CENTRE = IMAGE_SIDE / 2
LOW_CONFIDENCE = 0.6
# A mark that is no digit: a blob (MAX_BLOB_SPAN) whose box is nearly square (a dot, a tap, even one
# that slid a little), or a stroke this many times wider than tall (a dash; MNIST's widest digits are
# 2.0 times their height). A short 1 is a blob too, but a tall one.
MAX_DOT_ELONGATION = 1.6
# A round dot fills pi/4 of its box. Squarish drawn digits fill 0.35 of theirs (median, realistic
# set), 0.72 at most: past this share the blob test decides, below it no mark is a dot.
MIN_DOT_FILL = 0.6
MAX_DIGIT_FLATNESS = 2.5
# A dash is one pen width tall (at most 1.8 stroke widths measured, round caps and all); MNIST's
# flattest test digits are 3.7 stroke widths tall or more.
MAX_DASH_HEIGHT = 2.5
DOT = "a dot or a tap, too small to be a digit"
DASH = "a flat dash"
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)  # pieces connect across corners too
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
UINT16_MAX = 65535.0
# Where a 16- or 32-bit greyscale image's values run to, by its mode: the smallest range that holds
# them (a 16-bit image in mode I tops out at 65535, a float image at 1.0 or 255).
NOMINAL_TOPS = {"I": (255.0, UINT16_MAX, 2.0**32 - 1), "F": (1.0, 255.0, UINT16_MAX)}


@dataclass
class Preprocessed:
    """The model input and what each step made of the image (all 2-D float arrays in 0..1)."""

    tensor: torch.Tensor | None  # (1, 1, 28, 28), MNIST-normalised; None when blank
    image28: np.ndarray  # (28, 28) white ink on black
    blank: bool  # no digit to classify: nothing drawn, or a mark that is not a digit
    stages: dict[str, np.ndarray] = field(default_factory=dict)
    not_a_digit: str | None = None  # why a mark was found but is no digit (DOT, DASH)


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _unit_float(image: Image.Image) -> Image.Image:
    """A 16- or 32-bit greyscale image as mode F in 0..1, its contrast kept: values over their
    nominal top (65535 for 16 bits, as 255 for 8 bits), or over their own span when none fits."""
    values = np.asarray(image.convert("F"), dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    tops = (UINT16_MAX,) if image.mode.startswith("I;16") else NOMINAL_TOPS[image.mode]
    top = next((t for t in tops if high <= t), None)
    if low >= 0 and top is not None:
        low, high = 0.0, top
    span = high - low
    return Image.fromarray((values - low) / span if span > 0 else np.zeros_like(values))


def to_ink(image: Image.Image, box: tuple[int, int] = (WORK_SIDE, WORK_SIDE)) -> np.ndarray:
    """(H, W) float32 in 0..1 where ink is bright, whatever the input's mode and polarity; reduced
    to fit `box` (width, height)."""
    if image.mode in HIGH_DEPTH_MODES:
        image = _unit_float(image)
    image = _reduce(image, box)
    if _has_transparency(image):
        alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
        if alpha.min() < 0.5:  # a transparent background: the alpha channel is the drawing
            return alpha
    if image.mode == "F":
        grey = np.array(image, dtype=np.float32)
    else:
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    # Most of the frame is background: light background means dark ink, so invert.
    return 1.0 - grey if np.median(grey) > 0.5 else grey


def _reduce(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    if image.width <= box[0] and image.height <= box[1]:
        return image
    if image.mode not in ("L", "LA", "RGB", "RGBA", "F"):  # F: 0..1, from _unit_float
        image = image.convert("RGBA" if _has_transparency(image) else "RGB")
    image = image.copy()
    image.thumbnail(box, Image.Resampling.BOX)
    return image


def _remove_background(ink: torch.Tensor) -> torch.Tensor:
    """Subtract a smooth per-cell background estimate: evens out lighting and paper tone."""
    h, w = ink.shape
    ch, cw = -(-h // BACKGROUND_GRID), -(-w // BACKGROUND_GRID)
    pad = (0, cw * BACKGROUND_GRID - w, 0, ch * BACKGROUND_GRID - h)
    padded = F.pad(ink[None], pad, mode="replicate")[0]
    blocks = padded.view(BACKGROUND_GRID, ch, BACKGROUND_GRID, cw).permute(0, 2, 1, 3).flatten(2)
    cells = blocks.quantile(BACKGROUND_PERCENTILE, dim=2)
    # A cell that a thick stroke fills reads as "background" ink: replace such outliers.
    typical = cells.median()
    spread = (cells - typical).abs().median()
    cells = torch.where(cells > typical + max(3 * spread, OUTLIER_MARGIN), typical, cells)[None, None]
    background = F.interpolate(cells, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    return (ink - background).clamp(min=0)


def _corner_runs(line: torch.Tensor) -> torch.Tensor:
    """Of a 1-D bool line, the ink runs that start at either end and span EDGE_RUN of it."""
    head, tail = (int(ink.int().cumprod(0).sum()) for ink in (line, line.flip(0)))
    runs = torch.zeros_like(line)
    if head >= EDGE_RUN * len(line):
        runs[:head] = True
    if tail >= EDGE_RUN * len(line):
        runs[len(line) - tail :] = True
    return runs


def _touches_frame(mask: torch.Tensor) -> bool:
    return bool(mask[[0, -1]].any() or mask[:, [0, -1]].any())


def _pieces(occupied: torch.Tensor, bridge: int = 0) -> torch.Tensor:
    """Label the 8-connected pieces of a bool grid, joined across gaps of up to 2 x `bridge` cells:
    0 where empty, else a piece id (float, 1, 2, ...)."""
    bridged = _max_filter(occupied.float(), bridge) > 0 if bridge else occupied
    labels, _ = ndimage.label(bridged.numpy(), structure=EIGHT_NEIGHBOURS)
    return torch.from_numpy(labels).float() * occupied


def _frame_edges(ink: torch.Tensor) -> torch.Tensor:
    """Mask of what runs along the frame from a corner: the desk past the paper's edge in a photo.

    Kept only if a digit's worth of ink is left besides (else the "edge" took the digit, as in a
    tight crop or when a dark corner of the paper reaches it), and that ink stands clear of the
    frame or the runs span whole sides (the bar of a tightly cropped 5 runs from a corner).
    """
    paper = ink.quantile(BACKGROUND_PERCENTILE)
    mask = ink > paper + EDGE_LEVEL * (ink.max() - paper)
    seed = torch.zeros_like(mask)
    whole_sides = True
    for side in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
        runs = _corner_runs(mask[side])
        seed[side] |= runs
        whole_sides &= not runs.any() or bool(mask[side].float().mean() >= FULL_SPAN)
    if not seed.any():
        return seed
    labels = _pieces(mask)
    edge = torch.isin(labels, labels[seed])  # the pieces the runs belong to
    rest = mask & ~edge
    digit_left = float(rest.float().mean()) >= MIN_DIGIT_AREA
    if not digit_left or (_touches_frame(rest) and not whole_sides):
        return torch.zeros_like(mask)
    return _max_filter(edge.float(), EDGE_RIM).bool()  # with the rim its blur reaches


def _span_and_width(piece: torch.Tensor) -> tuple[int, float]:
    """Longer side of a bool piece's bounding box, and its mean stroke width, in pixels."""
    rows, cols = piece.any(1).nonzero(), piece.any(0).nonzero()
    span = max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1
    return span, _stroke_width(piece.float())


def _drop_strays(ink: torch.Tensor) -> torch.Tensor:
    """Remove blobs apart from the digit: a stray click on the canvas, a speck on the paper.

    A piece of a digit is a stroke, longer than it is wide; a dot is about as long as it is wide.
    The longest piece always stays.
    """
    h, w = ink.shape
    cell = -(-max(h, w) // STRAY_GRID)
    rows, cols = -(-h // cell), -(-w // cell)
    mass = F.pad(ink, (0, cols * cell - w, 0, rows * cell - h)).view(rows, cell, cols, cell).sum((1, 3))
    labels = _pieces(mass > 0, bridge=1)
    ids = labels.unique()
    ids = ids[ids > 0]  # 0 marks the empty cells
    if len(ids) < 2:
        return ink
    full = labels.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[:h, :w]
    inked = ink > 0
    shapes = {float(i): _span_and_width((full == i) & inked) for i in ids}
    longest = max(shapes, key=lambda i: shapes[i][0])
    strays = [i for i, (span, width) in shapes.items() if i != longest and span <= MAX_BLOB_SPAN * width]
    return ink.masked_fill(torch.isin(full, torch.tensor(strays)), 0) if strays else ink


def _trimmed_bounds(profile: torch.Tensor) -> tuple[int, int]:
    cumulative = profile.cumsum(0) / profile.sum()
    start = int((cumulative < TRIM_MASS).sum())
    end = int((cumulative < 1 - TRIM_MASS).sum()) + 1
    return start, max(end, start + 1)


def _max_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(x[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0]


def _erode(x: torch.Tensor, radius: int) -> torch.Tensor:
    # Zero padding first: the crop is tight, so strokes touch its sides and must wear away there too.
    return -_max_filter(-F.pad(x, (radius,) * 4), radius)[radius:-radius, radius:-radius]


def _stroke_width(mask: torch.Tensor) -> float:
    """Mean stroke width of a binary mask: 2 x area / boundary length."""
    boundary = mask - _erode(mask, 1)
    return float(2 * mask.sum() / boundary.sum().clamp(min=1))


def _normalise_stroke(digit: torch.Tensor) -> torch.Tensor:
    """Thicken thin pens and thin fat ones so the 20 px digit gets MNIST-like strokes."""
    width = _stroke_width((digit > 0).float())
    target = TARGET_STROKE_PX * max(digit.shape) / DIGIT_BOX
    if width < target:
        radius = round((target - width) / 2)
        # Padding first lets the dilated strokes grow past the old crop.
        return _max_filter(F.pad(digit, (radius,) * 4), radius) if radius else digit
    if width > MAX_STROKE_RATIO * target:
        radius = round((width - MAX_STROKE_RATIO * target) / 2)
        return _erode(digit, radius) if radius else digit
    return digit


def _centre_by_mass(digit: torch.Tensor) -> torch.Tensor:
    """Place a (h, w) digit in 28x28 with its centre of mass at the centre."""
    h, w = digit.shape
    cy, cx = ndimage.center_of_mass(digit.numpy()) if digit.sum() > 0 else (0.0, 0.0)
    top = int(np.clip(round(MNIST_CENTRE - cy), 0, IMAGE_SIDE - h))
    left = int(np.clip(round(MNIST_CENTRE - cx), 0, IMAGE_SIDE - w))
    out = torch.zeros(IMAGE_SIDE, IMAGE_SIDE)
    out[top : top + h, left : left + w] = digit
    return out


def _looks_like_noise(mask: torch.Tensor) -> bool:
    """Ink over most of the frame, or rows that cross ink edges dozens of times, is no digit."""
    inked_rows = mask.any(1)
    if not inked_rows.any():
        return True
    edges = (mask[:, 1:] != mask[:, :-1]).sum(1)[inked_rows].float().mean()
    digits_across = max(1.0, mask.shape[1] / mask.shape[0])  # a wide image may hold a number
    return float(mask.float().mean()) > MAX_INK_AREA or float(edges) > MAX_EDGES_PER_ROW * digits_across


def _blank(stages: dict, not_a_digit: str | None = None) -> Preprocessed:
    return Preprocessed(None, np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.float32), True, stages, not_a_digit)


def _not_a_digit(mark: torch.Tensor) -> str | None:
    """DOT or DASH when the cropped ink is one of those marks, else None.

    A digit is a stroke longer than it is wide, never much wider than tall: a short 1 passes, a tap
    (a blob whatever the pen) or a flat dash does not."""
    height, width = mark.shape
    if width > MAX_DIGIT_FLATNESS * height:
        return DASH
    inked = mark > 0
    if max(height, width) >= MAX_DOT_ELONGATION * min(height, width):
        # Elongated: a short flat stroke is a dash, however few pen widths long.
        flat = width > height and height <= MAX_DASH_HEIGHT * _stroke_width(inked.float())
        return DASH if flat else None
    if inked.float().mean() < MIN_DOT_FILL:
        return None  # open like the strokes of a digit: the cheap test comes first
    span, stroke = _span_and_width(inked)
    return DOT if span <= MAX_BLOB_SPAN * stroke else None


def clean_ink(
    image: Image.Image, box: tuple[int, int] = (WORK_SIDE, WORK_SIDE)
) -> tuple[torch.Tensor | None, dict]:
    """The image's ink, reduced to fit `box`, in 0..1: uneven lighting, a desk past the paper's edge
    and stray specks removed. None when nothing is drawn or it is noise; stages for display."""
    ink_np = to_ink(image, box)
    stages = {"ink": ink_np}
    ink = torch.from_numpy(np.ascontiguousarray(ink_np))
    ink = _remove_background(ink).masked_fill(_frame_edges(ink), 0)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        return None, stages
    ink = ((ink / peak - INK_THRESHOLD) / (1 - INK_THRESHOLD)).clamp(0, 1)
    if _looks_like_noise(ink > 0):
        stages["cleaned"] = ink.numpy()
        return None, stages
    ink = _drop_strays(ink)
    stages["cleaned"] = ink.numpy()
    return ink, stages


def to_mnist(ink: torch.Tensor, stages: dict) -> Preprocessed:
    """One digit's cleaned ink -> the MNIST-style 28x28 input (blank for a dot or a dash)."""
    if float(ink.max()) <= 0:
        return _blank(stages)
    top, bottom = _trimmed_bounds(ink.sum(1))
    left, right = _trimmed_bounds(ink.sum(0))
    crop = ink[top:bottom, left:right]
    not_a_digit = _not_a_digit(crop)
    if not_a_digit:
        return _blank(stages, not_a_digit)
    digit = _normalise_stroke(crop)
    stages["cropped"] = digit.numpy()
    scale = DIGIT_BOX / max(digit.shape)
    size = (max(1, round(digit.shape[0] * scale)), max(1, round(digit.shape[1] * scale)))
    small = F.interpolate(digit[None, None], size=size, mode="bilinear", antialias=True)[0, 0]
    small = (small / small.max().clamp(min=1e-6)).clamp(0, 1)
    image28 = _centre_by_mass(small)
    stages["mnist"] = image28.numpy()
    tensor = standardise(image28)[None, None]
    return Preprocessed(tensor, image28.numpy(), False, stages)


def preprocess(source: ImageSource) -> Preprocessed:
    """Any readable image -> MNIST-style input, or blank=True when nothing is drawn."""
    ink, stages = clean_ink(images.open_image(source))
    return _blank(stages) if ink is None else to_mnist(ink, stages)
