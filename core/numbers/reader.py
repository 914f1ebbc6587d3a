"""The number reader: a CRNN read with CTC (Shi, Bai and Yao, 2015) that reads a whole written
number at once, without cutting it into digits first.

A number's cleaned ink (`core.preprocess.clean_ink`) is cropped and scaled to HEIGHT px high; four
convolution blocks turn it into one feature column per STRIDE px, a bidirectional GRU reads the
columns in both directions, and each column gets probabilities over the ten digits and CTC's blank.
Greedy decoding keeps each column's most likely class, merges repeats and drops blanks; a digit's
confidence is its peak probability, and the column of that peak (the alignment) says where it lies.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.checkpoint import NUMBER_READER, CheckpointError, kind_of, read_payload, rebuilt
from core.config import READER_ARCH
from core.paths import SHIPPED_MODELS_DIR

HEIGHT = 32  # px: the reader's input height
PAD = 2  # px of background around the ink, all sides
STRIDE = 4  # input columns per output column
BLANK = 10  # CTC's "no digit here" class, after the ten digits
CLASSES = 11
INK_LEVEL = 0.2  # cleaned ink at least this bright is the number's, when cropping
MAX_WIDTH = 40 * HEIGHT  # px: a longer line is squeezed to this (far more than 8 digits)
READER_PATH = SHIPPED_MODELS_DIR / "reader" / "number-reader.pt"  # in its own folder: not a digit model


@dataclass(frozen=True)
class ReaderConfig:
    """Everything needed to rebuild a reader."""

    channels: tuple[int, ...] = (32, 64, 96, 128)  # one conv block each; the pooling is fixed for four
    hidden: int = 128  # GRU units per direction
    kind: str = READER_ARCH  # saved with it: what tells a reader's checkpoint from a digit model's

    arch = READER_ARCH  # where a run's checkpoint is named (core.runs.jobs): a class attribute, not saved

    @property
    def shape(self) -> str:
        """'conv 32-64-96-128, GRU 128': its blocks' channels, then its GRU's width."""
        return f"conv {'-'.join(map(str, self.channels))}, GRU {self.hidden}"

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or self.hidden < 1 or not all(c >= 1 for c in self.channels):
            raise ValueError("a reader has four positive channel counts and a positive hidden size")
        if self.kind != READER_ARCH:
            raise ValueError(f"not a number reader ({self.kind})")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))


def _block(inputs: int, outputs: int) -> list[nn.Module]:
    return [
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    ]


class Reader(nn.Module):
    def __init__(self, config: ReaderConfig):
        super().__init__()
        c1, c2, c3, c4 = config.channels
        self.features = nn.Sequential(
            *_block(1, c1), nn.MaxPool2d(2),  # (c1, 16, W/2)
            *_block(c1, c2), nn.MaxPool2d(2),  # (c2, 8, W/4)
            *_block(c2, c3), nn.MaxPool2d((2, 1)),  # (c3, 4, W/4)
            *_block(c3, c4), nn.MaxPool2d((4, 1)),  # (c4, 1, W/4)
        )  # fmt: skip
        self.rnn = nn.GRU(c4, config.hidden, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * config.hidden, CLASSES)

    def forward(self, lines: torch.Tensor) -> torch.Tensor:
        """(N, 1, HEIGHT, W) -> (N, W // STRIDE, CLASSES) log-probabilities."""
        columns = self.features(lines)[:, :, 0].transpose(1, 2)
        return F.log_softmax(self.head(self.rnn(columns)[0]), -1)


@dataclass
class Line:
    """A number's ink as the reader's input, and where it came from in the ink."""

    pixels: np.ndarray  # (HEIGHT, W) float32 in 0..1
    left: int  # the ink's column where the line's first ink column (PAD) lies
    top: int
    scale: float  # line px per ink px


def to_line(ink: np.ndarray) -> Line | None:
    """Cleaned ink (h, w) in 0..1 -> the reader's input: cropped to the ink, HEIGHT px high."""
    rows, cols = np.nonzero(ink > INK_LEVEL)
    if not len(rows):
        return None
    top, left = rows.min(), cols.min()
    crop = ink[top : rows.max() + 1, left : cols.max() + 1]
    scale = (HEIGHT - 2 * PAD) / crop.shape[0]
    width = min(MAX_WIDTH, max(1, round(crop.shape[1] * scale)))
    reduced = Image.fromarray(crop.astype(np.float32)).resize((width, HEIGHT - 2 * PAD), Image.Resampling.BOX)
    pixels = np.zeros((HEIGHT, width + 2 * PAD), np.float32)
    pixels[PAD:-PAD, PAD:-PAD] = np.asarray(reduced)
    return Line(pixels, int(left), int(top), width / crop.shape[1])


def batch_of(lines: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines of any widths, padded with background on the right: (N, 1, HEIGHT, W) and (N,) widths."""
    width = max(line.shape[1] for line in lines)
    batch = np.zeros((len(lines), 1, HEIGHT, width), np.float32)
    for i, line in enumerate(lines):
        batch[i, 0, :, : line.shape[1]] = line
    return torch.from_numpy(batch), torch.tensor([line.shape[1] for line in lines])


def output_lengths(widths: torch.Tensor, columns: int) -> torch.Tensor:
    return torch.div(widths, STRIDE, rounding_mode="floor").clamp(1, columns)


@dataclass
class ReadDigit:
    digit: int
    confidence: float  # its probability at its peak
    peak: int  # the output column it is read at
    probabilities: torch.Tensor  # (10,) the digits' there, blank left out


def decode(log_probs: torch.Tensor) -> list[ReadDigit]:
    """Greedy CTC decoding of one line's (T, CLASSES) log-probabilities: each run of one digit is a
    digit, read at the run's most probable column."""
    probs = log_probs.exp()
    confidence, best = probs.max(1)
    runs = []  # [digit, first column, last column + 1] of each run of one non-blank class
    for t, label in enumerate(best.tolist()):
        if label != BLANK and runs and runs[-1][0] == label and runs[-1][2] == t:
            runs[-1][2] = t + 1
        elif label != BLANK:
            runs.append([label, t, t + 1])
    peaks = [first + int(confidence[first:end].argmax()) for _, first, end in runs]
    digits = probs[:, :BLANK] / probs[:, :BLANK].sum(1, keepdim=True)
    return [
        ReadDigit(label, float(confidence[peak]), peak, digits[peak])
        for (label, _, _), peak in zip(runs, peaks, strict=True)
    ]


def text_of(digits: list[ReadDigit]) -> str:
    return "".join(str(d.digit) for d in digits)


def ink_column(line: Line, column: int) -> float:
    """The ink's column at the centre of an output column."""
    return line.left + ((column + 0.5) * STRIDE - PAD) / line.scale


def forward(reader: nn.Module, lines: list[np.ndarray], vary=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines of any widths in one batch (`vary` changes the batch first): (N, T, CLASSES)
    log-probabilities and (N,) each line's own number of columns."""
    batch, widths = batch_of(lines)
    log_probs = reader(batch if vary is None else vary(batch))
    return log_probs, output_lengths(widths, log_probs.shape[1])


def decoded(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[tuple[list[ReadDigit], torch.Tensor]]:
    """forward's outputs -> each line's digits and its own (T, CLASSES) log-probabilities."""
    return [(decode(lp[:n]), lp[:n]) for lp, n in zip(log_probs, lengths.tolist(), strict=True)]


@torch.inference_mode()
def read_lines(reader: nn.Module, lines: list[np.ndarray]) -> list[tuple[list[ReadDigit], torch.Tensor]]:
    """Each line read: its digits and its (T, CLASSES) log-probabilities, in one forward pass."""
    return decoded(*forward(reader, lines))


def load_reader(path: str | os.PathLike = READER_PATH) -> tuple[Reader, dict]:
    """A saved reader in eval mode on the CPU, and its metrics (CheckpointError when it cannot be)."""
    payload = read_payload(Path(path))
    return reader_from_payload(path, payload)[0], payload["metrics"]


def reader_from_payload(path: str | os.PathLike, payload: dict) -> tuple[Reader, ReaderConfig]:
    """A read payload's reader in eval mode (CheckpointError if it is not one, or does not fit)."""
    if kind_of(payload) != NUMBER_READER:
        raise CheckpointError(f"{path}: not a number reader (a digit model?)")
    return rebuilt(path, payload, ReaderConfig, Reader, "reader")


@functools.cache
def shipped_reader() -> Reader | None:
    """The shipped reader, loaded once and only read (None when its file is missing or broken)."""
    try:
        return load_reader(READER_PATH)[0]
    except CheckpointError:
        return None
