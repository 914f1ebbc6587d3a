"""Fine-tuning a checkpoint on users' corrections, mixed into MNIST batches.

Corrections are a fixed share of every batch (drawn with replacement, so a few dozen are seen many
times, augmented), the rest is MNIST so the model keeps what it knew. Held-out corrections and the
MNIST test set measure before and after, for everyone and per person.

What MNIST it forgets is then measured on training images it did not see in the fine-tune (the
guard), and the weights are blended back towards the start until that loss is at most
MAX_GUARD_DROP points: 240 corrections in three styles cost 0.15-0.18 test points unblended and
0.05 blended at 0.8, with the new style still read (docs/teaching.md).
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.access import EVERYONE, LOCAL, Identity
from core.checkpoint import Checkpoint
from core.config import TrainConfig, default_train_config
from core.corrections import Example, content_hash, examples_hash, list_examples
from core.corrections_zip import read_zip
from core.data import MnistData, Split
from core.digits.evaluate import accuracy_and_loss
from core.digits.train import Callback, MixIn, TrainResult, train
from core.errors import UserError

# The last sixth of MNIST's training images (10,000): left out of the fine-tune to measure forgetting.
GUARD_SHARE = 1 / 6
MAX_GUARD_DROP = 0.1  # points of guard accuracy a fine-tune may cost
BLENDS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # shares of the fine-tune's change kept, tried in turn

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


def load_corrections(
    where: str | os.PathLike, by: Identity = LOCAL, whose: str | None = EVERYONE
) -> Corrections:
    """An exported `.zip`, or `whose` examples in a store (its URL or a SQLite file's path), as
    `by` may see them."""
    if "://" not in str(where) and not Path(where).exists():
        raise FineTuneError(f"no corrections at {where}")
    if str(where).lower().endswith(".zip"):
        examples = read_zip(Path(where).read_bytes())
        return Corrections(examples, examples_hash(examples))
    return Corrections(list_examples(where, by=by, whose=whose), content_hash(where, whose))


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
    trained, guard = _without_guard(data)
    result = train(
        start.model_config, train_config, trained, callback, stop, start_from=start.model, mix_in=mix_in
    )
    result.model.eval()
    blend = _keep_mnist(start, result, guard.to("cpu"), data.test.to("cpu")) if result.final else None
    after = accuracy_and_loss(result.model, measured)[0] if result.final else None
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
        "blend": blend,
        "per_person": _per_person(start.model, result.model if result.final else None, measured_on),
    }
    return result


def _without_guard(data: MnistData) -> tuple[MnistData, Split]:
    """(MNIST without the guard images, the guard): slices, no copies."""
    train_split, first_guard = data.train, len(data.train) - int(len(data.train) * GUARD_SHARE)
    kept = Split(train_split.images[:first_guard], train_split.labels[:first_guard])
    guard = Split(train_split.images[first_guard:], train_split.labels[first_guard:])
    return replace(data, train=kept), guard


def _blended(start: nn.Module, tuned: nn.Module, share: float) -> nn.Module:
    """start + share x (tuned - start), weight by weight (integer buffers taken from `tuned`)."""
    before, after = start.state_dict(), tuned.state_dict()
    model = copy.deepcopy(tuned)
    model.load_state_dict({
        name: before[name] + share * (after[name] - before[name]) if after[name].is_floating_point()
        else after[name] for name in after
    })  # fmt: skip
    return model.eval()


def _keep_mnist(start: Checkpoint, result: TrainResult, guard: Split, test: Split) -> float:
    """Blend the result back towards the start until the guard loses at most MAX_GUARD_DROP points
    (the last blend, the smallest change, if none does); the final epoch's test figures are then the
    blend's. Returns the share of the change kept."""
    tuned = result.model.cpu()
    guard_before = accuracy_and_loss(start.model, guard)[0]
    for share in BLENDS:
        model = _blended(start.model, tuned, share) if share < 1 else tuned
        if guard_before - accuracy_and_loss(model, guard)[0] <= MAX_GUARD_DROP:
            break
    accuracy, loss = accuracy_and_loss(model, test)
    result.model = model
    result.epochs[-1] = replace(result.epochs[-1], test_accuracy=accuracy, test_loss=loss)
    return share


def _per_person(start: nn.Module, tuned: nn.Module | None, measured: list[Example]) -> list[dict]:
    """Before and after on each author's measured examples (author None: the local user)."""
    rows = []
    for author in sorted({e.author for e in measured}, key=lambda a: a or ""):
        theirs = as_split([e for e in measured if e.author == author])
        after = accuracy_and_loss(tuned, theirs)[0] if tuned is not None else None
        rows.append({"author": author, "examples": len(theirs), "before": accuracy_and_loss(start, theirs)[0],
                     "after": after})  # fmt: skip
    return rows
