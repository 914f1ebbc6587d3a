"""Reading numbers: the number reader (core.numbers.reader) reads the whole line of ink at once, touching
digits included, and says where each digit lies (its alignment).

The image is cleaned once (lighting, desk, strays: as for one digit), at a working size that keeps a
wide image's height, and the reader reads that ink. The ink's pieces still help where they were
measured to (docs/numbers.md): when they match the digits read one to one, each digit is its piece
and the digit model reads it too; when the reader read a digit too many among narrow pieces, the
pieces win. Touching digits are the reader's, their ink divided by the alignment. Each digit's 28x28
input (shown beside it) is its ink normalised as a drawing is. A single digit is read by the digit
model exactly as the Draw tab reads it, so the two tabs agree, and a dot or a dash is no number.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.checkpoint import CheckpointError
from core.digits.predict import predict
from core.images import ImageSource, open_image
from core.numbers.reader import Line, ReadDigit, ink_column, read_lines, shipped_reader, to_line
from core.preprocess import LOW_CONFIDENCE, Preprocessed, _pieces, clean_ink, to_mnist

NUMBER_WORK = (896, 112)  # working size: a wide image keeps 112 px of height, as one digit has
ONE_DIGIT_WIDTH = 1.1  # a piece up to this times the digits' height wide is one digit, whatever is read in it
UNSURE = 0.9  # a reader this unsure of a digit may have read one too many
PEAK_LEAD = 0.1  # of the distance between two digits' peaks: where the ink is divided, before the second
MINOR_HEIGHT = 0.45  # a piece lower than this share of the tallest belongs to a digit beside it
SIDE_BY_SIDE = 0.5  # pieces overlapping less than this share of the narrower's width stand side by side
MODEL_WEIGHT = 0.5  # of the digit model's probabilities, against the reader's, for a digit apart
NO_READER = "the number reader (models/reader/number-reader.pt) is missing or damaged"


@dataclass
class NumberDigit:
    digit: int
    confidence: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the image's pixels
    processed: Preprocessed
    low_confidence: bool


@dataclass
class NumberReading:
    number: str  # the digits left to right; "" when nothing is written
    digits: list[NumberDigit]
    line: np.ndarray | None = None  # (32, W): what the reader read
    columns: np.ndarray | None = None  # (W / 4, 11): its probabilities per column, blank last

    @property
    def blank(self) -> bool:
        return not self.digits

    @property
    def unread(self) -> bool:
        """Ink was found, but the reader read no digit in it."""
        return self.blank and self.line is not None


def _span(mask: torch.Tensor, axis: int) -> tuple[int, int]:
    """First and last + 1 of the rows (axis 1) or columns (axis 0) a mask covers."""
    covered = mask.any(axis).nonzero()
    return int(covered[0]), int(covered[-1]) + 1


def _size(mask: torch.Tensor, axis: int) -> int:
    first, end = _span(mask, axis)
    return end - first


def looks_like_a_number(processed: Preprocessed) -> bool:
    """True when a lone digit's image holds two or more digit-sized pieces side by side, each less
    than half under its neighbour: a number, which read_number reads and predict does not."""
    cleaned = processed.stages.get("cleaned")
    if cleaned is None or not cleaned.any():
        return False
    pieces = _digit_pieces(_pieces(torch.from_numpy(cleaned) > 0))
    spans = [_span(piece, 0) for piece in pieces]
    return any(
        min(end, next_end) - next_start < SIDE_BY_SIDE * min(end - start, next_end - next_start)
        for (start, end), (next_start, next_end) in itertools.pairwise(spans)
    )


def _digit_pieces(labels: torch.Tensor) -> list[torch.Tensor]:
    """The ink's pieces as masks, left to right, a small one (lower than MINOR_HEIGHT of the tallest:
    a 5's lifted bar, a 7's crossbar) joined to the tall piece it overlaps most across the page."""
    masks = [labels == label for label in labels.unique()[1:].tolist()]
    heights = [_size(m, 1) for m in masks]
    tall = [m for m, h in zip(masks, heights, strict=True) if h >= MINOR_HEIGHT * max(heights)]
    for minor in (m for m, h in zip(masks, heights, strict=True) if h < MINOR_HEIGHT * max(heights)):
        x0, x1 = _span(minor, 0)
        centre = (x0 + x1) / 2
        host = max(
            range(len(tall)),
            key=lambda i: (int(tall[i][:, x0:x1].any(0).sum()), -abs(sum(_span(tall[i], 0)) / 2 - centre)),
        )
        tall[host] = tall[host] | minor
    return sorted(tall, key=lambda m: sum(_span(m, 0)))


@dataclass
class _Part:
    """One digit's ink, and its reader's probabilities (None: the reader missed it)."""

    ink: torch.Tensor
    read: torch.Tensor | None  # (10,)
    apart: bool  # whole pieces of ink, touching no other digit


def _parts(ink: torch.Tensor, line: Line, read: list[ReadDigit]) -> list[_Part]:
    """The read digits' ink, left to right. When the ink falls into as many digit pieces as the
    reader read digits, each digit is its piece (separated digits). When it read more, but no piece is
    wider than one digit is tall, the pieces are the digits and the digit model reads them alone (the
    reader saw a digit too many). Otherwise the alignment divides the ink just before each digit's peak,
    as the reader reads a digit near its left edge: touching digits."""
    pieces = _digit_pieces(_pieces(ink > 0))
    if len(pieces) == len(read):
        return [_Part(ink * piece, d.probabilities, True) for piece, d in zip(pieces, read, strict=True)]
    height = max(_size(p, 1) for p in pieces)
    narrow = all(_size(p, 0) <= ONE_DIGIT_WIDTH * height for p in pieces)
    if len(pieces) < len(read) and narrow and min(d.confidence for d in read) < UNSURE:
        return [_Part(ink * piece, None, True) for piece in pieces]
    peaks = torch.tensor([ink_column(line, d.peak) for d in read], dtype=ink.dtype)
    cuts = peaks[1:] - PEAK_LEAD * (peaks[1:] - peaks[:-1])  # just before the next digit's peak
    owner = torch.bucketize(torch.arange(ink.shape[1], dtype=ink.dtype), cuts)
    parts = [_Part(ink * (owner == i), d.probabilities, False) for i, d in enumerate(read)]
    return [p for p in parts if p.ink.any()]


def _box(part: torch.Tensor, scale: float) -> tuple[int, int, int, int]:
    (x0, x1), (y0, y1) = _span(part, 0), _span(part, 1)
    return round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale)


def _digits(model: nn.Module, parts: list[_Part], scale: float) -> list[NumberDigit]:
    """The digits with their boxes and inputs. A digit that stands apart is also read by the digit
    model, all in one forward pass, and the two readings' probabilities are weighed together
    (MODEL_WEIGHT): for separated digits that beats either alone (docs/numbers.md)."""
    processed = [to_mnist(part.ink, {}) for part in parts]
    apart = [i for i, part in enumerate(parts) if part.apart and not processed[i].blank]
    probabilities = [part.read for part in parts]
    if apart:
        with torch.inference_mode():
            model_probs = model(torch.cat([processed[i].tensor for i in apart])).softmax(1)
        for i, p in zip(apart, model_probs, strict=True):
            mine = probabilities[i]
            probabilities[i] = p if mine is None else (1 - MODEL_WEIGHT) * mine + MODEL_WEIGHT * p
    digits = []
    for part, shown, p in zip(parts, processed, probabilities, strict=True):
        if p is None:  # the reader missed it and the digit model sees no digit (a dot, a dash)
            continue
        confidence, digit = (float(v) for v in p.max(0))
        digits.append(
            NumberDigit(int(digit), confidence, _box(part.ink > 0, scale), shown, confidence < LOW_CONFIDENCE)
        )
    return digits


def _lone_digit(model: nn.Module, image: Image.Image, box) -> list[NumberDigit]:
    single = predict(model, image)
    if single.blank:
        return []
    return [NumberDigit(single.digit, single.confidence, box, single.processed, single.low_confidence)]


def read_number(model: nn.Module, source: ImageSource, reader: nn.Module | None = None) -> NumberReading:
    """The digits written in an image, left to right, read by `reader` (the shipped one by default);
    a lone digit by the digit model `model`."""
    reader = reader or shipped_reader()
    if reader is None:
        raise CheckpointError(NO_READER)
    image = open_image(source)
    ink, _ = clean_ink(image, NUMBER_WORK)
    line = to_line(ink.numpy()) if ink is not None else None
    if line is None:
        return NumberReading("", [])
    [(read, log_probs)] = read_lines(reader, [line.pixels])
    parts, scale = _parts(ink, line, read), ink.shape[1] / image.width
    if len(parts) == 1 and parts[0].read is not None:  # one digit: read as Draw reads it, and only so
        digits = _lone_digit(model, image, _box(parts[0].ink > 0, scale))
    else:
        digits = _digits(model, parts, scale)
        if len(digits) == 1:  # one of two parts was no digit
            digits = _lone_digit(model, image, digits[0].box)
    number = "".join(str(d.digit) for d in digits)
    return NumberReading(number, digits, line.pixels, log_probs.exp().numpy())
