"""The checkpoint file format: atomic saves, weights-only loads, and store:NAME paths.

Which checkpoints there are, and which is the default, is core.catalog's."""

from __future__ import annotations

import importlib.metadata
import io
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from core.clock import now_iso, stamp
from core.config import READER_ARCH, ModelConfig
from core.errors import UserError, WriteError, reason
from core.nets import build_model
from core.store import StoreError
from core.store import blobs as stored

FORMAT_VERSION = 1
FILE_MODE = 0o644  # as the shipped checkpoints; mkstemp's temp files are 0600
SUFFIX = ".pt"
# Models trained here live in the store (core.store), named store:NAME wherever a path is accepted.
STORE_PREFIX = "store:"
# What torch.load(weights_only=True) says when a file asks to import code.
WEIGHTS_ONLY_REFUSAL = "Unsupported global"
REQUIRED_KEYS = ("format", "state_dict", "model_config", "metrics")
RECORDED_PACKAGES = ("torch", "torchvision")  # versions a checkpoint records
UNKNOWN_VERSION = "unknown"
# What a checkpoint holds, saved in it as "kind"; one saved before kinds is told by its config.
DIGIT_MODEL, NUMBER_READER = "digit model", "number reader"
KINDS = (DIGIT_MODEL, NUMBER_READER)


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit its model."""


class NumberReaderCheckpoint(CheckpointError):
    """A number reader's checkpoint where a digit model was asked for."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, CPU) and its metadata."""

    path: Path
    model: nn.Module
    model_config: ModelConfig
    metrics: dict
    train_config: dict
    device: str
    versions: dict
    created_at: str

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("test_accuracy")


def _package_version(name: str) -> str:
    """An installed package's version, read from its metadata without importing it; bookkeeping
    never costs a trained model, so any failure is "unknown"."""
    try:
        return importlib.metadata.version(name)
    except Exception:  # PackageNotFoundError, a broken install's metadata, ...
        return UNKNOWN_VERSION


def _versions() -> dict:
    return {name: _package_version(name) for name in RECORDED_PACKAGES} | {
        "python": platform.python_version()
    }


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    model_config,
    metrics: dict,
    train_config: dict | None = None,
    device: str = "cpu",
) -> Path:
    """Write atomically: into the store in one transaction (store:NAME, written once), or a file
    through a temp file in the same folder and os.replace. `model_config` is a dataclass: a digit
    model's ModelConfig, or the number reader's ReaderConfig."""
    path = Path(path)
    payload = {
        "format": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": asdict(model_config),
        "metrics": metrics,
        "train_config": train_config or {},
        "device": device,
        "versions": _versions(),
        "created_at": now_iso(),
    }
    payload["kind"] = kind_of(payload)  # told by the config, as for a checkpoint saved before kinds
    if is_stored(path):
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        with store_errors(path):
            stored.save(stored_name(path), buffer.getvalue(), payload["created_at"])
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda f: torch.save(payload, f))


def is_stored(path: str | os.PathLike) -> bool:
    return str(path).startswith(STORE_PREFIX)


def stored_name(path: str | os.PathLike) -> str:
    return str(path).removeprefix(STORE_PREFIX)


def file_name(path: str | os.PathLike) -> str:
    """What a download of the checkpoint is called: its file's name, or its name in the store."""
    return stored_name(Path(path).name)


@contextmanager
def store_errors(path: str | os.PathLike) -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def checkpoint_bytes(path: str | os.PathLike) -> bytes:
    """The checkpoint as it is saved: a file's bytes, or the store's."""
    if is_stored(path):
        with store_errors(path):
            return stored.load(stored_name(path))
    return Path(path).read_bytes()


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether the checkpoint is still there (a trained one may have been deleted since); cheap enough
    for every stroke: a file is one stat, a stored model one lookup by name."""
    if not is_stored(path):
        return Path(path).is_file()
    try:
        return stored.holds(stored_name(path))
    except StoreError:
        return False


def checkpoint_version(path: str | os.PathLike) -> float:
    """Changes when the checkpoint does: a file's modification time (OSError when it has gone); a
    stored model is written once, never changed."""
    return 0.0 if is_stored(path) else os.path.getmtime(path)


def _cannot_write(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or reason(exc)}")


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """write(file) into a temp file in path's folder, then os.replace: readers see old or new, never half.

    A killed writer leaves only its temp file; the mode is FILE_MODE (mkstemp's is 0600). A file
    that cannot be written raises WriteError, one line naming it."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_payload(path: Path) -> dict:
    if not is_stored(path) and not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    source = io.BytesIO(checkpoint_bytes(path)) if is_stored(path) else path
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors: unsafe, damaged or foreign
        # torch's own message suggests loading with weights_only=False: advice never to pass on.
        if WEIGHTS_ONLY_REFUSAL in str(exc):
            raise CheckpointError(
                f"{path}: refused as unsafe: it holds objects other than plain weights and data, "
                "which could run code when loaded"
            ) from exc
        raise CheckpointError(
            f"{path}: refused as damaged or unsafe: "
            "not a complete PyTorch checkpoint of plain weights and data"
        ) from exc
    if not isinstance(payload, dict) or not all(key in payload for key in REQUIRED_KEYS):
        raise CheckpointError(
            f"{path}: not a checkpoint of this app (a bare state dict or another format); "
            "it needs the model config and metrics saved by `python -m core train`"
        )
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format']} is not supported")
    return payload


def kind_of(payload: dict) -> str:
    """DIGIT_MODEL or NUMBER_READER; a checkpoint saved before kinds were is a reader when its config
    says so (core.numbers.reader.ReaderConfig.kind)."""
    if payload.get("kind") in KINDS:
        return payload["kind"]
    return NUMBER_READER if payload["model_config"].get("kind") == READER_ARCH else DIGIT_MODEL


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a digit model with torch.load(weights_only=True) and rebuild it in eval mode on the CPU."""
    return digit_model(Path(path), read_payload(Path(path)))


def rebuilt(path: str | os.PathLike, payload: dict, make_config, make_model, what: str):
    """(network in eval mode, its config) from a read payload; CheckpointError when they do not fit."""
    try:
        config = make_config(**payload["model_config"])
        model = make_model(config)
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the recorded {what} ({exc})") from exc
    return model.eval(), config


def digit_model(path: Path, payload: dict) -> Checkpoint:
    """A read payload's digit model (CheckpointError if it is not one, or does not fit)."""
    if kind_of(payload) == NUMBER_READER:
        raise NumberReaderCheckpoint(f"{path} is a number reader, not a digit model: it reads whole numbers")
    model, config = rebuilt(path, payload, ModelConfig, build_model, "architecture")
    return Checkpoint(
        path=path,
        model=model,
        model_config=config,
        metrics=payload["metrics"],
        train_config=payload.get("train_config", {}),
        device=payload.get("device", "unknown"),
        versions=payload.get("versions", {}),
        created_at=payload.get("created_at", ""),
    )


def default_checkpoint_path(arch: str, folder: str | os.PathLike | None = None) -> Path:
    """A fresh, time-stamped checkpoint name: in the store (store:NAME), or a file in `folder`."""
    name = f"{arch}-{stamp()}{SUFFIX}"
    return Path(folder) / name if folder else Path(f"{STORE_PREFIX}{name}")
