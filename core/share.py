"""Shareable setups: the Train page's settings and the active model as URL query parameters.

Torch-free. A link's values are checked against the same limits the page's widgets have; a value that
fails is left out with a notice saying why, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.config import ARCHS, AUGMENTATIONS, NO_AUGMENT

BATCH_SIZES = (32, 64, 128, 256, 512, 1024)
HIDDEN_RANGE = (8, 1024)
EPOCHS_RANGE = (1, 50)
LR_RANGE = (1e-5, 1.0)
SEED_RANGE = (0, 2**31 - 1)
STRENGTHS = (NO_AUGMENT, *AUGMENTATIONS)
MODEL_PARAM = "model"  # the active model's file name


@dataclass(frozen=True)
class Field:
    """One query parameter: how to read it and what it may be."""

    parse: Callable[[str], object]
    allowed: Callable[[object], bool]
    expected: str  # said in the notice when a value is refused


def _in(bounds: tuple) -> Callable[[object], bool]:
    low, high = bounds
    return lambda value: low <= value <= high


def _whole(low_high: tuple) -> Field:
    return Field(int, _in(low_high), f"a whole number from {low_high[0]} to {low_high[1]}")


FIELDS = {
    "arch": Field(str, lambda v: v in ARCHS, f"one of {', '.join(ARCHS)}"),
    "hidden": _whole(HIDDEN_RANGE),
    "epochs": _whole(EPOCHS_RANGE),
    "batch": Field(int, lambda v: v in BATCH_SIZES, f"one of {', '.join(map(str, BATCH_SIZES))}"),
    "lr": Field(float, _in(LR_RANGE), f"a number from {LR_RANGE[0]:g} to {LR_RANGE[1]:g}"),
    "augment": Field(str, lambda v: v in STRENGTHS, f"one of {', '.join(STRENGTHS)}"),
    "seed": _whole(SEED_RANGE),
}


def read_setup(params: Mapping[str, str]) -> tuple[dict[str, object], list[str]]:
    """The valid setup fields in `params`, and one notice per value that was ignored.

    Parameters this module does not know (like `model`, or a tracker's) are neither read nor refused."""
    setup, notices = {}, []
    for name, field in FIELDS.items():
        if name not in params:
            continue
        text = params[name]
        try:
            value = field.parse(text)
        except ValueError:
            value = None
        if value is not None and field.allowed(value):
            setup[name] = value
        else:
            notices.append(f"{name}={text!r} was ignored: it must be {field.expected}")
    return setup, notices


def setup_query(setup: Mapping[str, object]) -> dict[str, str]:
    """Query parameters for a setup, in FIELDS order; floats in their shortest exact form."""
    return {name: repr(value) if isinstance(value := setup[name], float) else str(value) for name in FIELDS}
