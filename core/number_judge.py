"""The number reader's judge: is a piece of ink one digit, or digits that touch?

The digit models read the whole of two touching digits confidently as one digit, so their confidence
cannot decide whether to cut a wide piece. The judge is a CNN of the digit models' architecture trained
on MNIST: single digits, half of them stretched up to STRETCH times as wide (like wide zeros and looped
twos), labelled ONE; and pairs of digits set side by side until their ink touches or overlaps,
labelled SEVERAL. Both go through the normalisation a drawing gets (`core.preprocess.to_mnist`).

    python -m core.number_judge --out models/judge/number-judge.pt
"""

from __future__ import annotations

import argparse
import functools
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import SHIPPED_MODELS_DIR, CheckpointError, load_checkpoint
from .config import ModelConfig, default_train_config
from .data import MnistData, Split, load_split, to_pixels
from .models import IMAGE_SIDE
from .preprocess import to_mnist
from .train import TrainResult, save_result, train

# Labels: the judge has the digit models' ten outputs and is trained on these two only.
ONE, SEVERAL = 0, 1
JUDGE_PATH = SHIPPED_MODELS_DIR / "judge" / "number-judge.pt"  # not a digit model: Models does not list it
TRAIN_PAIRS, TEST_PAIRS = 30_000, 2_000  # and as many single digits
OVERLAP_PX = (-3, 0)  # where a pair is closest, its ink overlaps by up to 3 px or just touches
ROW_SHIFT_PX = 2  # the second digit sits up to this many rows higher or lower
STRETCH = (1.0, 1.7)  # width factor of the stretched single digits
STRETCHED_SHARE = 0.5
INK_LEVEL = 0.3  # pixels at least this bright (0..1) are ink when finding where a pair meets
MARGIN_PX = 4  # around a pair, so that the shifted digit stays whole


def _row_edges(digit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Leftmost and rightmost ink column of each row of a (28, 28) digit; NaN where a row has none."""
    inked = digit >= INK_LEVEL
    columns = torch.arange(digit.shape[1], dtype=torch.float32)
    left = torch.where(inked, columns, torch.inf).amin(1)
    right = torch.where(inked, columns, -torch.inf).amax(1)
    empty = ~inked.any(1)
    return left.masked_fill(empty, torch.nan), right.masked_fill(empty, torch.nan)


def touching_pair(first: torch.Tensor, second: torch.Tensor, overlap: int, shift: int) -> torch.Tensor:
    """Two (28, 28) digits in 0..1 side by side, `second` moved `shift` rows down and placed so that
    where the two come closest its ink starts `overlap` px after the first's ends (0: touching,
    negative: overlapping). Returns (28 + 2 MARGIN_PX, W) in 0..1."""
    moved = torch.roll(second, shift, 0)
    _, right = _row_edges(first)
    left, _ = _row_edges(moved)
    both = ~right.isnan() & ~left.isnan()
    offset = int((right - left)[both].max()) + 1 + overlap if both.any() else IMAGE_SIDE // 2
    offset = max(offset, 1)
    pair = torch.zeros(IMAGE_SIDE + 2 * MARGIN_PX, offset + IMAGE_SIDE + 2 * MARGIN_PX)
    rows = slice(MARGIN_PX, MARGIN_PX + IMAGE_SIDE)
    pair[rows, MARGIN_PX : MARGIN_PX + IMAGE_SIDE] = first
    placed = pair[rows, MARGIN_PX + offset : MARGIN_PX + offset + IMAGE_SIDE]
    placed.copy_(torch.maximum(placed, moved))
    return pair


def stretched(digit: torch.Tensor, factor: float) -> torch.Tensor:
    """A (28, 28) digit made `factor` times as wide."""
    width = round(IMAGE_SIDE * factor)
    wide = F.interpolate(digit[None, None], size=(IMAGE_SIDE, width), mode="bilinear", align_corners=False)
    return wide[0, 0]


def judge_examples(mnist: Split, pairs: int, seed: int) -> Split:
    """`pairs` touching pairs (SEVERAL) and as many single digits (ONE) drawn from an MNIST split,
    each normalised as a drawing is: images (N, 1, 28, 28), labels (N,)."""
    rng = np.random.default_rng(seed)
    digits = to_pixels(mnist.images[:, 0]).clamp(0, 1)
    images, labels = [], []
    for _ in range(pairs):
        a, b, c = rng.integers(len(digits), size=3)
        overlap = int(rng.integers(OVERLAP_PX[0], OVERLAP_PX[1] + 1))
        shift = int(rng.integers(-ROW_SHIFT_PX, ROW_SHIFT_PX + 1))
        single = digits[c]
        if rng.random() < STRETCHED_SHARE:
            single = stretched(single, rng.uniform(*STRETCH))
        for ink, label in ((touching_pair(digits[a], digits[b], overlap, shift), SEVERAL), (single, ONE)):
            processed = to_mnist(ink, {})
            if not processed.blank:
                images.append(processed.tensor)
                labels.append(label)
    return Split(torch.cat(images), torch.tensor(labels))


def train_judge(data_dir: str | os.PathLike | None = None, seed: int = 0, device: str = "cpu") -> TrainResult:
    """Train the judge with the CNN recipe; its test accuracy is on pairs of MNIST test digits."""
    data = MnistData(
        judge_examples(load_split(True, data_dir, download=False), TRAIN_PAIRS, seed),
        judge_examples(load_split(False, data_dir, download=False), TEST_PAIRS, seed + 1),
    )
    return train(ModelConfig("cnn"), default_train_config("cnn", seed=seed, device=device), data)


@functools.cache
def load_judge() -> nn.Module | None:
    """The shipped judge, loaded once and only read (None when its file is missing or broken: the
    number reader then decides by width and confidence alone)."""
    try:
        return load_checkpoint(JUDGE_PATH).model
    except CheckpointError:
        return None


def several_digits(judge: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) normalised pieces -> (N,) the judge's probability that each holds several digits."""
    with torch.inference_mode():
        return judge(inputs)[:, [ONE, SEVERAL]].softmax(1)[:, 1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.number_judge", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(JUDGE_PATH), help="checkpoint path (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = train_judge(args.data_dir, args.seed, args.device)
    path = save_result(result, args.out)
    print(json.dumps({"checkpoint": str(path), "test_accuracy": round(result.final.test_accuracy, 2)}))


if __name__ == "__main__":
    main()
