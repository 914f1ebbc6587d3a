"""Numbers written with MNIST digits, for training and judging the number reader (core.numbers.reader).

Each number has one pen: half are drawn with a round brush along the digits' skeletons, as a canvas
draws a stroke (`core.numbers.pen`); the others keep the digits' strokes, re-drawn with the digit models' pen
(`core.data.redraw_with_pen`) or as MNIST scanned them, made solid and maybe broader. Each digit is
slanted, sized and set on its own baseline; it is placed beside the one
before it at a chosen gap where the two come closest: separated, overlapping (their boxes overlap
across the page but the ink does not touch) or touching. The line of 1-8 digits is then put on the
Number canvas (white on black) or photographed (dark ink on unevenly lit, noisy paper, blurred, saved
as JPEG), and read back through the same cleaning as any image (`core.preprocess.clean_ink`), so the
reader learns from what it will be shown. Training numbers use MNIST's training digits only;
validation and test numbers its test digits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter

from core.config import NUMBER_CANVAS
from core.data import Split, to_pixels
from core.digits.augment import PEN_STEPS, redraw_with_pen
from core.numbers.pen import draw_strokes, path_extent, pen_path

GAP_KINDS = ("separated", "overlapping", "touching")
CANVAS_MEDIUM, PHOTO = "canvas", "photo"  # where a number is written
PHOTO_SHARE = 0.3  # of the numbers, photographed rather than drawn on the canvas
LENGTHS = (1, 8)  # digits in a number, both included
PEN_SHARE = 0.8  # of the digits, re-drawn with the pen; the rest keep MNIST's scanned strokes
DIGIT_HEIGHT = 48  # px a digit is set at, before the line is fitted to the canvas or the paper
HEIGHTS = (0.8, 1.05)  # each digit's height, as a share of DIGIT_HEIGHT
SLANT = (-0.25, 0.25)  # horizontal shear
THICKER = (0.5, 0.35, 0.15)  # chances of strokes 0, 1 or 2 px broader at DIGIT_HEIGHT
BRUSH_SHARE = 0.5  # of the numbers, drawn with a round brush along the digits' skeletons
BRUSH = (0.06, 0.2)  # its width, as a share of DIGIT_HEIGHT
WHITE, CLEAR = (255, 255, 255, 255), (0, 0, 0, 0)
SOLID = (0.15, 0.55)  # ink levels stretched to 0..1: a pen's stroke is solid, MNIST's scans are not
BASELINE = 0.15  # of DIGIT_HEIGHT: how far a digit may sit above or below the others
GAPS = {  # px at the closest rows, as shares of DIGIT_HEIGHT
    "separated": (0.12, 0.45),
    "overlapping": (0.0, 0.08),
    "touching": (-0.06, -0.01),
}
INK = 0.3  # pixels at least this bright (0..1) are ink when finding where two digits come closest
FILL = (0.35, 0.9)  # share of the canvas's room that the line's larger side fills
MARGIN = 0.06  # of the canvas, kept clear around the number
PHOTO_SIZE = ((900, 1400), (320, 520))  # width and height ranges of a photo
PAPER = (150, 235)  # brightness of the paper, from its darker side to its lighter
PHOTO_INK = (15, 70)
NOISE = (3, 9)  # standard deviation of the sensor noise
BLUR = (0.4, 1.2)  # px, Gaussian
JPEG_QUALITY = (70, 92)


@dataclass
class WrittenNumber:
    text: str
    image: Image.Image
    kinds: list[str]  # of each gap


def pen_digits(images: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """MNIST model inputs (N, 1, 28, 28), PEN_SHARE of them re-drawn with the pen: (N, 28, 28) in 0..1."""
    images = images.clone()
    redraw = torch.from_numpy(rng.random(len(images)) < PEN_SHARE)
    steps = torch.from_numpy(rng.integers(PEN_STEPS[0], PEN_STEPS[1] + 1, int(redraw.sum())))
    images[redraw] = redraw_with_pen(images[redraw], steps)
    return to_pixels(images[:, 0]).clamp(0, 1).numpy()


def _crop(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(ink > INK)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _slanted(image: Image.Image, slant: float) -> Image.Image:
    w, h = image.size
    pad = int(abs(slant) * h) + 1
    return image.transform(
        (w + 2 * pad, h),
        Image.Transform.AFFINE,
        (1, slant, -pad - slant * h / 2, 0, 1, 0),
        Image.Resampling.BILINEAR,
    )


def _shaped(digit: np.ndarray, height: float, slant: float, thicker: int) -> np.ndarray:
    """A 28x28 digit cropped to its ink, slanted, resized to `height` px and its strokes made
    `thicker` px broader, as a canvas pen draws them: solid: (height, w) in 0..1."""
    sheared = _slanted(Image.fromarray((_crop(digit) * 255).astype(np.uint8)), slant)
    width = max(2, round(sheared.width * height / sheared.height))
    sized = sheared.resize((width, round(height)), Image.Resampling.BILINEAR)
    for _ in range(thicker):  # a broader pen, a pixel at a time
        sized = sized.filter(ImageFilter.MaxFilter(3))
    ink = np.asarray(sized, np.float32) / 255
    return _crop(np.clip((ink - SOLID[0]) / (SOLID[1] - SOLID[0]), 0, 1))  # solid strokes, soft edges


def _brushed(digit: np.ndarray, height: float, slant: float, brush: float) -> np.ndarray | None:
    """A 28x28 digit drawn `height` px high with a round brush `brush` px wide along its skeleton
    (core.numbers.pen), slanted: (h, w) in 0..1; None when it has no skeleton to follow."""
    path = pen_path((digit * 255).astype(np.uint8))
    if not path.any():
        return None
    span_y, span_x = path_extent(path)
    size = (int(np.ceil(height * span_x / span_y + brush)) + 2, int(np.ceil(height + brush)) + 2)
    drawn = draw_strokes(path, height, brush, size, (1, 1), WHITE, CLEAR).getchannel("A")
    return _crop(np.asarray(_slanted(drawn, slant), np.float32) / 255)


def _layers(digits: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Each digit at its own height and slant, all with one pen: a round brush along the skeleton
    (BRUSH_SHARE of the numbers), or the strokes as they are, made solid and maybe broader."""
    heights, slants = DIGIT_HEIGHT * rng.uniform(*HEIGHTS, len(digits)), rng.uniform(*SLANT, len(digits))
    if rng.random() < BRUSH_SHARE:
        brush = rng.uniform(*BRUSH) * DIGIT_HEIGHT
        brushed = [_brushed(d, h, s, brush) for d, h, s in zip(digits, heights, slants, strict=True)]
        if all(layer is not None for layer in brushed):
            return brushed
    thicker = int(rng.choice(len(THICKER), p=THICKER))
    return [_shaped(d, h, s, thicker) for d, h, s in zip(digits, heights, slants, strict=True)]


def row_edges(layer: np.ndarray, top: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Leftmost and rightmost ink column of each row of a line `height` tall (NaN where none)."""
    left, right = np.full(height, np.nan), np.full(height, np.nan)
    inked = layer > INK
    rows = np.nonzero(inked.any(1))[0]
    left[top + rows] = inked[rows].argmax(1)
    right[top + rows] = layer.shape[1] - 1 - inked[rows, ::-1].argmax(1)
    return left, right


def place_after(prev_right: np.ndarray, left: np.ndarray, distance: float) -> int:
    """The x of a layer whose ink comes `distance` px after the previous ink at the closest row."""
    both = ~np.isnan(prev_right) & ~np.isnan(left)
    if not both.any():
        return max(0, round(np.nanmax(prev_right) + distance))
    return max(0, round(np.max(prev_right[both] - left[both]) + 1 + distance))


def write_line(digits: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """28x28 digits (0..1) written left to right with `kind` gaps: a (h, w) line in 0..1, and the
    kind of each gap as it turned out (a gap meant to overlap may end up separated)."""
    layers = _layers(digits, rng)
    tall = max(layer.shape[0] for layer in layers) + round(2 * BASELINE * DIGIT_HEIGHT)
    tops = [int(rng.integers(0, tall - layer.shape[0] + 1)) for layer in layers]
    xs, kinds, right, last_box_end = [], [], None, 0
    for layer, top in zip(layers, tops, strict=True):
        left_edge, right_edge = row_edges(layer, top, tall)
        if right is None:
            xs.append(0)
        else:
            xs.append(place_after(right, left_edge, rng.uniform(*GAPS[kind]) * DIGIT_HEIGHT))
            overlaps = xs[-1] + np.nanmin(left_edge) <= last_box_end
            kinds.append("touching" if kind == "touching" else "overlapping" if overlaps else "separated")
        shifted = right_edge + xs[-1]
        right = shifted if right is None else np.fmax(right, shifted)
        last_box_end = xs[-1] + np.nanmax(right_edge)
    line = np.zeros((tall, max(x + layer.shape[1] for x, layer in zip(xs, layers, strict=True))), np.float32)
    for x, top, layer in zip(xs, tops, layers, strict=True):
        region = line[top : top + layer.shape[0], x : x + layer.shape[1]]
        np.maximum(region, layer, out=region)
    return line, kinds


def _fitted(line: np.ndarray, room: tuple[float, float], rng: np.random.Generator) -> Image.Image:
    scale = min(room[0] / line.shape[1], room[1] / line.shape[0]) * rng.uniform(*FILL)
    size = (max(1, round(line.shape[1] * scale)), max(1, round(line.shape[0] * scale)))
    return Image.fromarray((line * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)


def on_canvas(line: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """White ink on the Number canvas's black, anywhere it fits."""
    room = (NUMBER_CANVAS[0] * (1 - 2 * MARGIN), NUMBER_CANVAS[1] * (1 - 2 * MARGIN))
    number = _fitted(line, room, rng)
    canvas = Image.new("L", NUMBER_CANVAS, 0)
    canvas.paste(
        number,
        (
            int(rng.integers(0, NUMBER_CANVAS[0] - number.width + 1)),
            int(rng.integers(0, NUMBER_CANVAS[1] - number.height + 1)),
        ),
    )
    return canvas


def photographed(line: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Dark ink on unevenly lit, noisy paper, slightly blurred, through JPEG."""
    width, height = (int(rng.integers(*PHOTO_SIZE[0])), int(rng.integers(*PHOTO_SIZE[1])))
    number = _fitted(line, (width * (1 - 2 * MARGIN), height * (1 - 2 * MARGIN)), rng)
    mask = np.zeros((height, width), np.float32)
    x, y = int(rng.integers(0, width - number.width + 1)), int(rng.integers(0, height - number.height + 1))
    mask[y : y + number.height, x : x + number.width] = np.asarray(number, np.float32) / 255
    light = np.linspace(*(PAPER if rng.random() < 0.5 else PAPER[::-1]), width)[None, :]
    paper = light + rng.normal(0, rng.uniform(*NOISE), (height, width))
    pixels = paper * (1 - mask) + rng.uniform(*PHOTO_INK) * mask
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(*BLUR))
    )
    saved = io.BytesIO()
    image.save(saved, "JPEG", quality=int(rng.integers(*JPEG_QUALITY)))
    return Image.open(saved)


def write_number(
    digits: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    kind: str | None = None,
    medium: str | None = None,
) -> WrittenNumber:
    """A number of the given digits (N, 28, 28), gaps of one `kind` and on one `medium` (random when None)."""
    kind = kind or GAP_KINDS[rng.integers(len(GAP_KINDS))]
    medium = medium or (PHOTO if rng.random() < PHOTO_SHARE else CANVAS_MEDIUM)
    line, kinds = write_line(digits, kind, rng)
    image = photographed(line, rng) if medium == PHOTO else on_canvas(line, rng)
    return WrittenNumber("".join(str(int(d)) for d in labels), image, kinds)


def random_numbers(split: Split, count: int, seed: int) -> list[WrittenNumber]:
    """`count` numbers of LENGTHS digits drawn at random from an MNIST split, any kind and medium;
    only the digits used are re-drawn."""
    rng = np.random.default_rng(seed)
    chosen = [
        rng.integers(0, len(split), int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))) for _ in range(count)
    ]
    used = np.unique(np.concatenate(chosen))
    drawn = pen_digits(split.images[torch.from_numpy(used)], rng)
    at = {int(index): i for i, index in enumerate(used)}
    labels = split.labels.numpy()
    return [write_number(drawn[[at[int(i)] for i in c]], labels[c], rng) for c in chosen]
