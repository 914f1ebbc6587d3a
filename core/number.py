"""Reading numbers: an image split into its digits, left to right, each read as Predict reads one.

The image is cleaned once (lighting, desk, strays: as for one digit), at a working size that keeps a
wide image's height. Its ink is split into connected pieces; a small piece (a 5's bar, a 7's
crossbar) joins the digit it lies over; two tall pieces that overlap across the page are read both as
one digit and as two, and the reading the model is surer of is kept (a 4 in two strokes, against a 7
leaning over a 1); a piece as wide as a digit is tall is also read cut at its thinnest columns
(touching digits), and cut when a judge trained to tell one digit from touching ones is sure, or the
parts are read more surely than the whole. Every candidate goes through the same
MNIST-style normalisation, and all are classified in one forward pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from .number_judge import load_judge, several_digits
from .preprocess import LOW_CONFIDENCE, Preprocessed, _pieces, clean_ink, open_image, to_mnist

NUMBER_WORK = (896, 112)  # working size: a wide image keeps 112 px of height, as one digit has
BRIDGE = 0  # px: only touching strokes are one piece (a wider bridge joined close digits)
MINOR_HEIGHT = 0.45  # a piece lower than this share of the tallest belongs to a digit beside it
DIGIT_ASPECT = 0.7  # a handwritten digit's width over its height, about
CUT_FROM = 0.75  # a piece at least this times the digits' height wide may be touching digits
ONE_DIGIT_WIDTH = 1.1  # a piece up to this times the digits' height wide is taken as one digit
NEVER_ONE_DIGIT = 1.8  # one this wide is cut unless read as one digit far more surely
CUT_TRIES = 8  # columns tried for cutting two touching digits apart: the thinnest of the middle half
MIN_CUT_SPACING = 2  # px between two columns tried
UNSURE = 0.9  # a digit read this surely is not second-guessed by a cut or a join
CUT_WINDOW = 0.3  # share of a digit's width around its expected edge where the cut is sought
JUDGE_SURE = 0.99  # the judge (core.number_judge) this sure of several digits cuts a piece ...
CUT_PARTS_MIN = 0.3  # ... when its parts' confidences multiplied are at least this

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


def _split_at(piece: _Piece, edges: list[int]) -> list[_Piece]:
    columns = torch.arange(piece.mask.shape[1])
    parts = [
        _Piece(piece.mask & (columns >= a) & (columns < b)) for a, b in zip(edges, edges[1:], strict=False)
    ]
    return [p for p in parts if p.mask.any()]


def _cut_options(piece: _Piece, ink: torch.Tensor, digit_height: int) -> list[list[_Piece]]:
    """Ways to cut a piece that may hold touching digits. Two digits: at each of the CUT_TRIES
    thinnest columns of its middle half. More: at the thinnest column near each expected edge."""
    left, right = piece.columns
    profile = (ink * piece.mask).sum(0)
    count = max(2, round(piece.width / (DIGIT_ASPECT * digit_height)))
    if count == 2:
        lo, hi = left + piece.width // 4, right - piece.width // 4
        thinnest = (lo + torch.argsort(profile[lo:hi])).tolist()
        tries: list[int] = []
        for column in thinnest:
            if all(abs(column - t) >= MIN_CUT_SPACING for t in tries):
                tries.append(column)
            if len(tries) == CUT_TRIES:
                break
        return [_split_at(piece, [left, column, right]) for column in tries]
    step = piece.width / count
    edges = [left]
    for k in range(1, count):
        lo, hi = int(left + (k - CUT_WINDOW) * step), int(left + (k + CUT_WINDOW) * step) + 1
        edges.append(lo + int(profile[lo:hi].argmin()))
    return [_split_at(piece, [*edges, right])]


def _box(piece: _Piece, scale: float) -> tuple[int, int, int, int]:
    (x0, x1), (y0, y1) = piece.columns, piece.rows
    return round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale)


@dataclass
class Segments:
    """The digit pieces, left to right, and the alternatives the model decides between: a wide piece
    cut into touching digits, or two overlapping pieces joined into one digit."""

    pieces: list[_Piece]
    height: int  # of the tallest piece: the digits' height
    cuts: dict[int, list[list[_Piece]]]  # piece index -> ways to cut it
    joins: dict[tuple[int, int], _Piece]  # (i, i + 1) -> the two as one

    def cut_parts(self) -> list[_Piece]:
        return [p for options in self.cuts.values() for parts in options for p in parts]


def segment(ink: torch.Tensor) -> Segments:
    """Cleaned ink (H, W) split into candidate digit pieces."""
    pieces = _labelled_pieces(ink)
    if not pieces:
        return Segments([], 0, {}, {})
    pieces = sorted(_attach_minors(pieces), key=lambda p: sum(p.columns))
    height = max(p.height for p in pieces)
    cuts = {i: _cut_options(p, ink, height) for i, p in enumerate(pieces) if p.width >= CUT_FROM * height}
    joins = {
        (i, i + 1): _Piece(a.mask | b.mask)
        for i, (a, b) in enumerate(zip(pieces, pieces[1:], strict=False))
        if a.overlap(b) > 0 and i not in cuts and i + 1 not in cuts
    }
    return Segments(pieces, height, {i: o for i, o in cuts.items() if o}, joins)


def _product(values: list[float]) -> float:
    return float(torch.tensor(values).prod())


def _choose(segments: Segments, sure, several) -> list[_Piece]:
    """The reading the model is surest of, decided piece by piece. A pair of overlapping pieces is
    joined when one of them is read less than UNSURE and the joined digit beats the pair's
    confidences multiplied. A piece that may hold touching digits is cut the best way when the
    judge is JUDGE_SURE it holds several (`several`) and the parts are read; when it is wider than
    one digit usually is, read less than UNSURE, and the parts' confidences multiplied beat the
    whole's; or when it is wider than any digit usually is, unless the whole is read surely and its
    parts are not (a wide zero). The digit model reads two touching digits, and halves of one,
    confidently too, so its confidence alone cannot decide."""
    chosen, i = [], 0
    pieces = segments.pieces
    while i < len(pieces):
        join = segments.joins.get((i, i + 1))
        pair = [sure(pieces[i]), sure(pieces[i + 1])] if join is not None else []
        if pair and min(pair) < UNSURE and sure(join) > _product(pair):
            chosen.append(join)
            i += 2
            continue
        options = segments.cuts.get(i, [])
        best = max(options, key=lambda parts: _product([sure(p) for p in parts]), default=None)
        ratio, whole = pieces[i].width / segments.height, sure(pieces[i])
        doubtful = ratio > ONE_DIGIT_WIDTH and whole < UNSURE
        parts = _product([sure(p) for p in best]) if best is not None else 0.0
        surely_one = whole >= UNSURE and parts < UNSURE
        judged_several = several(pieces[i]) >= JUDGE_SURE and parts >= CUT_PARTS_MIN
        cut = best is not None and (
            judged_several or (ratio >= NEVER_ONE_DIGIT and not surely_one) or (doubtful and parts > whole)
        )
        chosen += best if cut else [pieces[i]]
        i += 1
    return chosen


def _cuttable(segments: Segments, several: dict[int, float]) -> dict[int, list[list[_Piece]]]:
    """The cut options of the pieces _choose may cut, whatever their parts read: not those no wider
    than one digit that the judge is not sure hold several. Normalising the parts of such pieces
    was most of a number's time."""
    return {
        i: options
        for i, options in segments.cuts.items()
        if several.get(id(segments.pieces[i]), 0.0) >= JUDGE_SURE
        or segments.pieces[i].width / segments.height > ONE_DIGIT_WIDTH
    }


def _judged(segments: Segments, processed: dict[int, Preprocessed]) -> dict[int, float]:
    """The judge's probability of several digits for each piece that may be cut (id -> p), in one
    forward pass; none without a judge."""
    judge = load_judge()
    keys = [id(segments.pieces[i]) for i in segments.cuts if not processed[id(segments.pieces[i])].blank]
    if judge is None or not keys:
        return {}
    probabilities = several_digits(judge, torch.cat([processed[key].tensor for key in keys]))
    return dict(zip(keys, probabilities.tolist(), strict=True))


def read_number(model: nn.Module, source: ImageSource) -> NumberReading:
    """The digits written in an image, left to right: every candidate read by the digit model in one
    forward pass, and the pieces that may hold touching digits by the judge in another."""
    image = open_image(source)
    ink, _ = clean_ink(image, NUMBER_WORK)
    if ink is None:
        return NumberReading("", [])
    segments = segment(ink)
    processed = {id(p): to_mnist(ink * p.mask, {}) for p in [*segments.pieces, *segments.joins.values()]}
    several = _judged(segments, processed)
    segments.cuts = _cuttable(segments, several)
    processed |= {id(p): to_mnist(ink * p.mask, {}) for p in segments.cut_parts()}
    readable = [key for key, p in processed.items() if not p.blank]
    if not readable:
        return NumberReading("", [])
    with torch.inference_mode():
        probs = model(torch.cat([processed[key].tensor for key in readable])).softmax(1)
    confidence = dict(zip(readable, probs.max(1).values.tolist(), strict=True))
    said = dict(zip(readable, probs.argmax(1).tolist(), strict=True))
    scale = ink.shape[1] / image.width
    chosen = _choose(segments, lambda p: confidence.get(id(p), 0.0), lambda p: several.get(id(p), 0.0))
    digits = [
        NumberDigit(said[k], confidence[k], _box(p, scale), processed[k], confidence[k] < LOW_CONFIDENCE)
        for p in chosen
        if (k := id(p)) in confidence
    ]
    return NumberReading("".join(str(d.digit) for d in digits), digits)
