"""The number reader's judge (core.number_judge): how its examples are made, and what the shipped
judge says of drawings the tests make."""

import json

import pytest
import torch
from PIL import ImageDraw

from core import number_judge
from core.checkpoint import list_checkpoints, load_checkpoint
from core.data import Split, standardise
from core.number import NUMBER_WORK, segment
from core.number_judge import (
    ONE,
    SEVERAL,
    judge_examples,
    load_judge,
    several_digits,
    stretched,
    touching_pair,
)
from core.preprocess import clean_ink, open_image, to_mnist
from tests.drawings import WHITE, encode, number

BAR = (10, 14)  # columns of a vertical bar, the simplest digit


def bar() -> torch.Tensor:
    digit = torch.zeros(28, 28)
    digit[4:24, BAR[0] : BAR[1]] = 1.0
    return digit


def ink_columns(row: torch.Tensor) -> list[int]:
    return torch.nonzero(row > 0).flatten().tolist()


@pytest.mark.parametrize("overlap", [-3, -1, 0])
def test_a_pair_is_placed_so_its_ink_touches_or_overlaps_by_the_overlap_asked(overlap):
    pair = touching_pair(bar(), bar(), overlap, shift=0)
    columns = ink_columns(pair[number_judge.MARGIN_PX + 10])  # a row both bars cross
    first_right = number_judge.MARGIN_PX + BAR[1] - 1
    second_left = first_right + 1 + overlap
    width = BAR[1] - BAR[0]
    first = set(range(first_right - width + 1, first_right + 1))
    assert columns == sorted(first | set(range(second_left, second_left + width)))


def test_the_second_digit_of_a_pair_moves_down_by_its_shift():
    pair = touching_pair(bar(), bar(), overlap=0, shift=2)
    first = pair[:, number_judge.MARGIN_PX + BAR[0]]  # a column of the first bar only
    second = pair[:, ink_columns(pair.sum(0))[-1]]  # and of the second
    rows = [torch.nonzero(column).flatten() for column in (first, second)]
    assert rows[1].tolist() == (rows[0] + 2).tolist()


def test_a_stretched_digit_keeps_its_height():
    assert stretched(bar(), 1.5).shape == (28, 42)


def _split_of_drawn_digits(count: int) -> Split:
    """Bars of different widths and positions, as an MNIST split would hold them."""
    digits = torch.zeros(count, 28, 28)
    for i in range(count):
        left = 6 + i % 10
        digits[i, 4:24, left : left + 2 + i % 5] = 1.0
    return Split(standardise(digits)[:, None], torch.zeros(count, dtype=torch.long))


def test_examples_are_pairs_and_single_digits_in_equal_numbers_and_repeat_with_their_seed():
    mnist = _split_of_drawn_digits(40)
    examples = judge_examples(mnist, pairs=12, seed=3)
    assert examples.images.shape == (24, 1, 28, 28)
    assert (examples.labels == SEVERAL).sum() == 12 and (examples.labels == ONE).sum() == 12
    assert torch.equal(judge_examples(mnist, pairs=12, seed=3).images, examples.images)
    assert not torch.equal(judge_examples(mnist, pairs=12, seed=4).images, examples.images)


def _pieces_judged(image) -> list[float]:
    ink, _ = clean_ink(open_image(encode(image)), NUMBER_WORK)
    judge = load_judge()
    return [float(several_digits(judge, to_mnist(ink * p.mask, {}).tensor)[0]) for p in segment(ink).pieces]


def test_the_shipped_judge_tells_touching_digits_from_single_wide_and_narrow_ones():
    assert _pieces_judged(number("20", gap=-16)) == [pytest.approx(1.0, abs=0.01)]  # one piece: two digits
    assert max(_pieces_judged(number("2047"))) < 0.05
    wide_zero = number("")
    ImageDraw.Draw(wide_zero).ellipse([200, 40, 500, 190], outline=WHITE, width=16)
    assert _pieces_judged(wide_zero) == [pytest.approx(0.0, abs=0.01)]


def test_the_judge_is_not_offered_as_a_digit_model():
    assert number_judge.JUDGE_PATH.exists()
    assert number_judge.JUDGE_PATH not in {info.path for info in list_checkpoints()}


def test_without_its_file_the_judge_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(number_judge, "JUDGE_PATH", tmp_path / "missing.pt")
    load_judge.cache_clear()
    try:
        assert load_judge() is None
    finally:
        load_judge.cache_clear()


@pytest.mark.mnist
def test_training_a_judge_writes_a_checkpoint_that_tells_pairs_from_single_digits(
    mnist_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(number_judge, "TRAIN_PAIRS", 1500)
    monkeypatch.setattr(number_judge, "TEST_PAIRS", 200)
    out = tmp_path / "judge.pt"
    number_judge.main(["--out", str(out), "--data-dir", str(mnist_dir)])
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    checkpoint = load_checkpoint(out)
    assert printed == {"checkpoint": str(out), "test_accuracy": round(checkpoint.test_accuracy, 2)}
    assert checkpoint.test_accuracy >= 90.0  # of 400 examples made from MNIST test digits
