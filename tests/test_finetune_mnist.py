"""Fine-tuning the shipped CNN on a writing style it misreads, on the real MNIST: the style is learnt
and MNIST is kept; and a class's fine-tune on everyone's digits, reported person by person."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint
from core.corrections import example_from_image, examples_hash
from core.data import load_mnist
from core.digits.finetune import Corrections, finetune, finetune_config
from core.digits.predict import predict
from core.paths import SHIPPED_MODELS_DIR
from tests.drawings import crossed_seven, encode, flagged_one, slashed_zero

pytestmark = pytest.mark.mnist
TRAINED, HELD_OUT = 50, 100
MIN_GAIN_POINTS = 30.0
MAX_MNIST_DROP_POINTS = 0.3


def _style(count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode(flagged_one(rng)) for _ in range(count)]


def _read_as_one(model, drawings: list[bytes]) -> float:
    return 100.0 * sum(predict(model, png).digit == 1 for png in drawings) / len(drawings)


def test_fine_tuning_on_50_flagged_ones_teaches_the_style_and_keeps_mnist(mnist_dir):
    start = load_checkpoint(SHIPPED_MODELS_DIR / "cnn.pt")
    # The store holds every fifth correction out to measure: 62 corrections train on 50.
    examples = [example_from_image(png, 1, "canvas") for png in _style(62, seed=1)]
    held_out = _style(HELD_OUT, seed=2)  # never seen in training
    before = _read_as_one(start.model, held_out)
    torch.manual_seed(0)
    data = load_mnist(mnist_dir, download=False)
    result = finetune(
        start, Corrections(examples, examples_hash(examples)), data, finetune_config("cnn", device="cpu")
    )
    report = result.extra_metrics["finetune"]
    after = _read_as_one(result.model, held_out)
    mnist_drop = report["mnist_accuracy_before"] - report["mnist_accuracy_after"]
    mnist = f"{report['mnist_accuracy_before']:.2f}% -> {report['mnist_accuracy_after']:.2f}%"
    print(f"flagged 1s read as 1: {before:.0f}% -> {after:.0f}%; MNIST {mnist}; {result.train_seconds:.1f} s")
    assert report["corrections_trained"] == TRAINED and report["held_out"]
    assert after - before >= MIN_GAIN_POINTS
    assert mnist_drop <= MAX_MNIST_DROP_POINTS
    assert report["corrections_accuracy_after"] > report["corrections_accuracy_before"]


CLASS_STYLES = {  # who writes what, 80 each: only Ada's style is one the shipped CNN misreads
    "ada@school.org": (flagged_one, 1),
    "bob@school.org": (crossed_seven, 7),
    "cy@school.org": (slashed_zero, 0),
}
PER_PERSON = 80
MIN_LEARNT = 90.0  # % of Ada's new flagged ones read as 1 after the class fine-tune


def _class_examples() -> list:
    """240 corrections, as a class adds them: the three people's interleaved."""
    made = []
    for seed, (author, (style, label)) in enumerate(CLASS_STYLES.items()):
        rng = np.random.default_rng(10 + seed)
        made.append([replace(example_from_image(encode(style(rng)), label, "canvas"), author=author)
                     for _ in range(PER_PERSON)])  # fmt: skip
    return [example for row in zip(*made, strict=True) for example in row]


def test_a_class_fine_tune_on_240_digits_of_three_people_learns_the_misread_style_and_keeps_mnist(mnist_dir):
    start = load_checkpoint(SHIPPED_MODELS_DIR / "cnn.pt")
    examples = _class_examples()
    new_ones = _style(HELD_OUT, seed=99)  # Ada's style, never seen in training
    torch.manual_seed(0)
    data = load_mnist(mnist_dir, download=False)
    result = finetune(
        start, Corrections(examples, examples_hash(examples)), data, finetune_config("cnn", device="cpu")
    )
    report = result.extra_metrics["finetune"]
    people = {row["author"]: row for row in report["per_person"]}
    mnist_drop = report["mnist_accuracy_before"] - report["mnist_accuracy_after"]
    learnt = _read_as_one(result.model, new_ones)
    print(f"per person: {people}; blend {report['blend']}; MNIST drop {mnist_drop:.2f} points; "
          f"Ada's new ones read as 1: {learnt:.0f}%")  # fmt: skip
    assert set(people) == set(CLASS_STYLES) and all(
        row["examples"] == PER_PERSON // 5 for row in people.values()
    )
    assert people["ada@school.org"]["before"] < 10 and people["ada@school.org"]["after"] >= MIN_LEARNT
    assert all(
        people[who]["after"] >= people[who]["before"] - 5 for who in ("bob@school.org", "cy@school.org")
    )
    assert learnt >= MIN_LEARNT and mnist_drop <= MAX_MNIST_DROP_POINTS
