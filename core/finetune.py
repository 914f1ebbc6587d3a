"""Fine-tuning a checkpoint on users' corrections, mixed into MNIST batches.

Corrections are a fixed share of every batch (drawn with replacement, so a few dozen are seen many
times, augmented), the rest is MNIST so the model keeps what it knew. Held-out corrections and the
MNIST test set measure before and after.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint
from .config import TrainConfig, default_train_config
from .corrections import Example, content_hash, examples_hash, list_examples, read_zip
from .data import MnistData, Split
from .errors import UserError
from .evaluate import accuracy_and_loss
from .train import Callback, MixIn, TrainResult, train

MIN_CORRECTIONS = 10
HOLD_OUT_FROM = 20  # with this many corrections or more, every HOLD_OUT_EVERY-th is held out
HOLD_OUT_EVERY = 5
CORRECTION_SHARE = 0.25  # of every batch
FINETUNE_EPOCHS = 1  # over MNIST; the corrections are seen about share x 60,000 times in it
FINETUNE_LR = 1e-3  # peak: a fifth of the recipes', so that what the model knew is kept
HOLD_OUT_RULE = (
    f"with {HOLD_OUT_FROM} or more corrections, every {HOLD_OUT_EVERY}th (oldest first) is held out "
    "to measure and never trained on; with fewer, all train and are measured as trained"
)


class FineTuneError(UserError):
    """Too few corrections, or corrections that cannot be read."""


@dataclass
class Corrections:
    examples: list[Example]
    digest: str  # what the store held: each image and its label


def load_corrections(where: str | os.PathLike) -> Corrections:
    """An exported `.zip`, or a store: its URL or a SQLite file's path."""
    if "://" not in str(where) and not Path(where).exists():
        raise FineTuneError(f"no corrections at {where}")
    if str(where).lower().endswith(".zip"):
        examples = read_zip(Path(where).read_bytes())
        return Corrections(examples, examples_hash(examples))
    return Corrections(list_examples(where), content_hash(where))


def split_corrections(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """(trained on, measured on) by HOLD_OUT_RULE."""
    if len(examples) < HOLD_OUT_FROM:
        return examples, examples
    held = {i for i in range(len(examples)) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1}
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def as_split(examples: list[Example]) -> Split:
    images = torch.from_numpy(np.stack([e.input28 for e in examples]))[:, None]
    return Split(images.float(), torch.tensor([e.label for e in examples], dtype=torch.long))


def finetune_config(arch: str, **overrides) -> TrainConfig:
    """The arch's recipe (augmentation, batch size), with a short, gentle schedule."""
    return replace(default_train_config(arch, epochs=FINETUNE_EPOCHS, lr=FINETUNE_LR), **overrides)


def finetune(
    start: Checkpoint,
    corrections: Corrections,
    data: MnistData,
    train_config: TrainConfig,
    callback: Callback | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """A new model from `start`'s weights, trained on MNIST with the corrections mixed in; its
    report (before, after, where from) is in result.extra_metrics["finetune"]."""
    if len(corrections.examples) < MIN_CORRECTIONS:
        raise FineTuneError(
            f"fine-tuning needs at least {MIN_CORRECTIONS} corrections; there are {len(corrections.examples)}"
        )
    trained_on, measured_on = split_corrections(corrections.examples)
    measured = as_split(measured_on)
    before = accuracy_and_loss(start.model, measured)[0]
    mnist_before = accuracy_and_loss(start.model, data.test.to("cpu"))[0]  # the start model is on the CPU
    mix_in = MixIn(as_split(trained_on), CORRECTION_SHARE)
    result = train(
        start.model_config, train_config, data, callback, stop, start_from=start.model, mix_in=mix_in
    )
    result.model.eval()
    after = accuracy_and_loss(result.model.cpu(), measured)[0] if result.final else None
    result.extra_metrics["finetune"] = {
        "finetuned_from": start.path.name,
        "corrections": len(corrections.examples),
        "corrections_trained": len(trained_on),
        "corrections_measured": len(measured_on),
        "corrections_hash": corrections.digest,
        "held_out": measured_on is not trained_on,
        "hold_out_rule": HOLD_OUT_RULE,
        "corrections_accuracy_before": before,
        "corrections_accuracy_after": after,
        "mnist_accuracy_before": mnist_before,
        "mnist_accuracy_after": result.final.test_accuracy if result.final else None,
    }
    return result
