"""What a page asks the training child to do: one frozen dataclass per kind of run.

A request travels as it is from the page to the queue (core.runs.jobs) and, with its paths made
absolute, to the child (core.runs.child), which picks what to run by the request's type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from core.access import EVERYONE
from core.checkpoint import DIGIT_MODEL, NUMBER_READER, is_stored
from core.config import ModelConfig, TrainConfig
from core.numbers.reader import ReaderConfig
from core.numbers.train import ReaderTrainConfig


def absolute(where: str | os.PathLike) -> str:
    """A URL or a stored model's name as it is, a file's path made absolute: the child may start in
    another folder."""
    return str(where) if "://" in str(where) or is_stored(where) else str(Path(where).absolute())


@dataclass(frozen=True)
class RunRequest:
    """A run's network and recipe, the MNIST folder, and where its checkpoint goes (None: the store)."""

    model_config: ModelConfig | ReaderConfig
    train_config: TrainConfig | ReaderTrainConfig
    data_dir: str | os.PathLike
    models_dir: str | os.PathLike | None = None
    kind: ClassVar[str]

    @property
    def name(self) -> str:
        """What the run trains, as its checkpoint's name begins: "mlp", "cnn" or "reader"."""
        return self.model_config.arch

    def for_child(self) -> RunRequest:
        return replace(self, data_dir=absolute(self.data_dir))


@dataclass(frozen=True)
class DigitRun(RunRequest):
    """Train a fresh digit model (core.digits.train)."""

    model_config: ModelConfig
    train_config: TrainConfig
    kind: ClassVar[str] = DIGIT_MODEL


@dataclass(frozen=True, kw_only=True)
class FinetuneRun(DigitRun):
    """Fine-tune the checkpoint `start` on people's corrections, MNIST mixed in (core.digits.finetune)."""

    start: str | os.PathLike
    corrections: str | os.PathLike  # a store's URL, or an exported .zip
    whose: str | None = EVERYONE  # the corrections' author filter (core.corrections)

    def for_child(self) -> FinetuneRun:
        paths = {"start": absolute(self.start), "corrections": absolute(self.corrections)}
        return replace(super().for_child(), **paths)


@dataclass(frozen=True)
class ReaderRun(RunRequest):
    """Train a number reader (core.numbers.train)."""

    model_config: ReaderConfig
    train_config: ReaderTrainConfig
    kind: ClassVar[str] = NUMBER_READER
