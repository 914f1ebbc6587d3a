"""Reading numbers: an image split into its digits, left to right, each read as Predict reads one.

The image is cleaned once (lighting, desk, strays: as for one digit), at a working size that keeps a
wide image's height. Its ink is split into connected pieces; a small piece (a 5's bar, a 7's
crossbar) joins the digit it lies over; two tall pieces that overlap across the page are read both as
one digit and as two, and the reading the model is surer of is kept (a 4 in two strokes, against a 7
leaning over a 1); a piece as wide as a digit is tall is also read cut at its thinnest columns
(touching digits), and kept whole unless the parts are surer. Every candidate goes through the same
MNIST-style normalisation, and all are classified in one forward pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from .preprocess import LOW_CONFIDENCE, Preprocessed, clean_ink, open_image, to_mnist

NUMBER_WORK = (896, 112)  # working size: a wide image keeps 112 px of height, as one digit has
BRIDGE = 1  # px: strokes this close (twice this apart) are one piece
MINOR_HEIGHT = 0.45  # a piece lower than this share of the tallest belongs to a digit beside it
DIGIT_ASPECT = 0.7  # a handwritten digit's width over its height, about
CUT_FROM = 0.9  # a piece at least this times the digits' height wide may be touching digits
CUT_WINDOW = 0.3  # share of a digit's width around its expected edge where the cut is sought

ImageSource = bytes | str | os.PathLike | Image.Image


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

    @property
    def blank(self) -> bool:
        return not self.digits


@dataclass
class _Piece:
    mask: torch.Tensor  # (H, W) bool, of the working image

    @property
    def columns(self) -> tuple[int, int]:
        cols = self.mask.any(0).nonzero()
        return int(cols[0]), int(cols[-1]) + 1

    @property
    def rows(self) -> tuple[int, int]:
        rows = self.mask.any(1).nonzero()
        return int(rows[0]), int(rows[-1]) + 1

    @property
    def height(self) -> int:
        top, bottom = self.rows
        return bottom - top

    @property
    def width(self) -> int:
        left, right = self.columns
        return right - left

    def overlap(self, other: _Piece) -> int:
        """Columns the two pieces share."""
        (a0, a1), (b0, b1) = self.columns, other.columns
        return max(0, min(a1, b1) - max(a0, b0))


def _labelled_pieces(ink: torch.Tensor) -> list[_Piece]:
    from .preprocess import _pieces

    labels = _pieces(ink > 0, bridge=BRIDGE)
    return [_Piece(labels == i) for i in labels.unique().tolist() if i > 0]


def _attach_minors(pieces: list[_Piece]) -> list[_Piece]:
    """Small pieces join the tall piece they overlap most (or lie nearest to) across the page."""
    tallest = max(p.height for p in pieces)
    majors = [p for p in pieces if p.height >= MINOR_HEIGHT * tallest]
    for minor in (p for p in pieces if p.height < MINOR_HEIGHT * tallest):
        centre = sum(minor.columns) / 2
        host = max(majors, key=lambda m: (m.overlap(minor), -abs(sum(m.columns) / 2 - centre)))
        host.mask = host.mask | minor.mask
    return majors


def _cut(piece: _Piece, ink: torch.Tensor, digit_height: int) -> list[_Piece]:
    """A piece as wide as several digits, cut at the thinnest column near each expected edge."""
    left, right = piece.columns
    count = max(2, round(piece.width / (DIGIT_ASPECT * digit_height)))
    step = piece.width / count
    profile = (ink * piece.mask).sum(0)
    edges = [left]
    for k in range(1, count):
        lo, hi = int(left + (k - CUT_WINDOW) * step), int(left + (k + CUT_WINDOW) * step) + 1
        edges.append(lo + int(profile[lo:hi].argmin()))
    edges.append(right)
    columns = torch.arange(ink.shape[1])
    parts = [
        _Piece(piece.mask & (columns >= a) & (columns < b)) for a, b in zip(edges, edges[1:], strict=False)
    ]
    return [p for p in parts if p.mask.any()]


def _box(piece: _Piece, scale: float) -> tuple[int, int, int, int]:
    (x0, x1), (y0, y1) = piece.columns, piece.rows
    return round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale)


@dataclass
class Segments:
    """The digit pieces, left to right, and the alternatives the model decides between: a wide piece
    cut into touching digits, or two overlapping pieces joined into one digit."""

    pieces: list[_Piece]
    cuts: dict[int, list[_Piece]]  # piece index -> its parts
    joins: dict[tuple[int, int], _Piece]  # (i, i + 1) -> the two as one

    def candidates(self) -> list[_Piece]:
        return [*self.pieces, *(p for parts in self.cuts.values() for p in parts), *self.joins.values()]


def segment(ink: torch.Tensor) -> Segments:
    """Cleaned ink (H, W) split into candidate digit pieces."""
    pieces = _labelled_pieces(ink)
    if not pieces:
        return Segments([], {}, {})
    pieces = sorted(_attach_minors(pieces), key=lambda p: sum(p.columns))
    height = max(p.height for p in pieces)
    cuts = {i: _cut(p, ink, height) for i, p in enumerate(pieces) if p.width >= CUT_FROM * height}
    joins = {
        (i, i + 1): _Piece(a.mask | b.mask)
        for i, (a, b) in enumerate(zip(pieces, pieces[1:], strict=False))
        if a.overlap(b) > 0 and i not in cuts and i + 1 not in cuts
    }
    return Segments(pieces, {i: parts for i, parts in cuts.items() if len(parts) > 1}, joins)


def _choose(segments: Segments, sure) -> list[_Piece]:
    """The reading the model is surest of, decided piece by piece: a cut is kept when its parts'
    confidences multiplied beat the whole's, a join when the joined digit's beats the pair's."""
    chosen, i = [], 0
    pieces = segments.pieces
    while i < len(pieces):
        join = segments.joins.get((i, i + 1))
        if join is not None and sure(join) > sure(pieces[i]) * sure(pieces[i + 1]):
            chosen.append(join)
            i += 2
            continue
        parts = segments.cuts.get(i)
        whole_wins = parts is None or sure(pieces[i]) >= float(torch.tensor([sure(p) for p in parts]).prod())
        chosen += [pieces[i]] if whole_wins else parts
        i += 1
    return chosen


def read_number(model: nn.Module, source: ImageSource) -> NumberReading:
    """The digits written in an image, left to right; every candidate read in one forward pass."""
    image = open_image(source)
    ink, _ = clean_ink(image, NUMBER_WORK)
    if ink is None:
        return NumberReading("", [])
    segments = segment(ink)
    processed = {id(p): to_mnist(ink * p.mask, {}) for p in segments.candidates()}
    readable = [key for key, p in processed.items() if not p.blank]
    if not readable:
        return NumberReading("", [])
    with torch.inference_mode():
        probs = model(torch.cat([processed[key].tensor for key in readable])).softmax(1)
    confidence = dict(zip(readable, probs.max(1).values.tolist(), strict=True))
    said = dict(zip(readable, probs.argmax(1).tolist(), strict=True))
    scale = ink.shape[1] / image.width
    digits = [
        NumberDigit(said[k], confidence[k], _box(p, scale), processed[k], confidence[k] < LOW_CONFIDENCE)
        for p in _choose(segments, lambda p: confidence.get(id(p), 0.0))
        if (k := id(p)) in confidence
    ]
    return NumberReading("".join(str(d.digit) for d in digits), digits)
