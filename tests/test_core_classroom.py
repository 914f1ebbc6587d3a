"""The class view's figures, per person, on examples and a model the test makes."""

from dataclasses import replace

import torch
from torch import nn

from core.corrections import example_from_image
from core.digits.classroom import LOCAL_AUTHOR, by_person
from tests.drawings import encode, one, seven

SEVEN = 7


class AlwaysSeven(nn.Module):
    """Reads every image as a 7."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((len(images),), SEVEN), 10).float()


def _example(image, label: int, author: str | None):
    return replace(example_from_image(encode(image), label, "canvas"), author=author)


def test_each_person_is_judged_on_their_own_examples_and_mistakes_name_the_true_digit_first():
    examples = [
        _example(seven(), 7, "ada@school.org"),
        _example(one(), 1, "ada@school.org"),
        _example(one(), 1, "ada@school.org"),
        _example(one(), 1, "bob@school.org"),
        _example(seven(), 7, None),
    ]
    reports = {report.who: report for report in by_person(AlwaysSeven(), examples)}
    ada, bob, local = reports["ada@school.org"], reports["bob@school.org"], reports[LOCAL_AUTHOR]
    assert (ada.examples, ada.right, ada.mistakes) == (3, 1, [(1, SEVEN, 2)])
    assert (bob.examples, bob.right, bob.mistakes) == (1, 0, [(1, SEVEN, 1)])
    assert (local.examples, local.right, local.mistakes_text()) == (1, 1, "—")
    assert ada.mistakes_text() == "1 read as 7 ×2"
    assert [report.who for report in by_person(AlwaysSeven(), examples)][0] == "ada@school.org"  # most wrong
