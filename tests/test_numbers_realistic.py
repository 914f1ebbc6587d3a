"""Numbers written with MNIST test digits (tests/realistic_numbers.py), read by the shipped number reader.

Exact-number accuracy by length, by gap kind and on photos, and per-digit accuracy; the floors sit just
under the figures measured when they were set (docs/numbers.md has the tables).
"""

from collections import defaultdict

import pytest

from core.checkpoint import load_checkpoint
from core.data import load_split, to_pixels
from core.numbers.read import read_number
from core.paths import SHIPPED_MODELS_DIR
from tests.realistic_numbers import number_set

pytestmark = pytest.mark.mnist
SETS = [  # (length, gap kind, medium, count)
    # About 750 of the 1,000 come out with every gap separated: the target's figure then has a standard
    # error of 0.8 points (1.5 with the 214 of 300, which put one seed 2.6 points under three others).
    (4, "separated", "canvas", 1000),
    (4, "separated", "photo", 100),
    *[(length, "separated", "canvas", 20) for length in (2, 3, 5, 6, 7, 8)],
    (4, "overlapping", "canvas", 40),
    *[(length, "touching", "canvas", 60) for length in (2, 3, 4)],
]
FLOORS = {  # exact-number accuracy, percent, just under what was measured (in brackets)
    "4 digits, separated, canvas": 95.5,  # (95.9 of 751; before the reader 95.5 of 749)
    "4 digits, separated, photo": 94.0,  # (95.3 of 85; before 95.3)
    "4 digits, overlapping, canvas": 92.5,  # (93.4 of 289; before 92.8 of 291)
    "touching pairs": 91.5,  # (93.3 of 60; before 58.3)
    "3 digits, touching, canvas": 85.0,  # (86.7 of 60)
    "4 digits, touching, canvas": 83.0,  # (85.0 of 60)
}


@pytest.fixture(scope="module")
def readings(mnist_dir):
    split = load_split(train=False, data_dir=mnist_dir, download=False)
    digits = (to_pixels(split.images[:, 0]).clamp(0, 1) * 255).round().byte().numpy()
    model = load_checkpoint(SHIPPED_MODELS_DIR / "cnn.pt").model
    out = []
    for seed, (length, kind, medium, count) in enumerate(SETS):
        for written in number_set(digits, split.labels.numpy(), count, length, kind, medium, seed=100 + seed):
            out.append((length, medium, written, read_number(model, written.image).number))
    return out


def _rate(rows) -> float:
    return 100.0 * sum(read == written.text for _, _, written, read in rows) / max(1, len(rows))


def _table(readings) -> dict[str, tuple[float, int]]:
    groups = defaultdict(list)
    for row in readings:
        length, medium, written, _ = row
        gaps = set(written.kinds)
        kind = "touching" if "touching" in gaps else "overlapping" if "overlapping" in gaps else "separated"
        groups[f"{length} digits, {kind}, {medium}"].append(row)
        groups[f"{kind} gaps, {medium}"].append(row)
        if kind == "touching" and length == 2:
            groups["touching pairs"].append(row)
    return {name: (_rate(rows), len(rows)) for name, rows in sorted(groups.items())}


def _digit_rate(readings) -> float:
    same_length = [(w.text, r) for _, _, w, r in readings if len(r) == len(w.text)]
    right = sum(a == b for text, read in same_length for a, b in zip(text, read, strict=True))
    return 100.0 * right / sum(len(w.text) for _, _, w, _ in readings)


def test_numbers_written_with_mnist_digits_are_read(readings):
    table = _table(readings)
    for name, (rate, count) in table.items():
        print(f"{name}: {rate:.1f}% of {count}")
    print(f"digits read right (numbers of the right length): {_digit_rate(readings):.1f}%")
    for name, floor in FLOORS.items():
        assert table[name][0] >= floor, (name, table[name])
