"""Checkpoints: atomic saves, weights-only loads, and a listing of models/."""

from __future__ import annotations

import importlib.metadata
import io
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from .access import Identity, require_owner
from .config import READER_ARCH, ModelConfig
from .errors import UserError, WriteError, reason
from .models import build_model, count_parameters
from .store import StoreError, settings
from .store import models as stored
from .store.engine import legacy_models_dir

FORMAT_VERSION = 1
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = PROJECT_ROOT / "models"  # committed, read-only for the app
FILE_MODE = 0o644  # as the shipped checkpoints; mkstemp's temp files are 0600
SUFFIX = ".pt"
# Models trained here live in the store (core.store), named store:NAME wherever a path is accepted.
STORE_PREFIX = "store:"
# What torch.load(weights_only=True) says when a file asks to import code.
WEIGHTS_ONLY_REFUSAL = "Unsupported global"
REQUIRED_KEYS = ("format", "state_dict", "model_config", "metrics")
RECORDED_PACKAGES = ("torch", "torchvision")  # versions a checkpoint records
UNKNOWN_VERSION = "unknown"


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


@dataclass
class CheckpointInfo:
    """One line of the models/ listing."""

    path: str
    arch: str
    test_accuracy: float | None
    created_at: str
    parameters: int
    device: str
    hidden: int
    shipped: bool  # one of the committed models/, not trained here
    shape: str  # ModelConfig.shape
    file_bytes: int
    train_seconds: float | None  # None for a model that does not say
    finetuned_from: str | None = None  # the file name of the model it was fine-tuned from
    trained_by: str | None = None  # the email of the person whose run made it; None: local, CLI or shipped

    @property
    def origin(self) -> str:
        """Where the model comes from, in a few words."""
        if self.shipped:
            return "shipped"
        return f"fine-tuned from {self.finetuned_from}" if self.finetuned_from else "trained here"

    def as_dict(self) -> dict:
        return asdict(self)


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
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if is_stored(path):
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        with _store_errors(path):
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
def _store_errors(path: str | os.PathLike) -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def checkpoint_bytes(path: str | os.PathLike) -> bytes:
    """The checkpoint as it is saved: a file's bytes, or the store's."""
    if is_stored(path):
        with _store_errors(path):
            return stored.load(stored_name(path))
    return Path(path).read_bytes()


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether the checkpoint is still there (a trained one may have been deleted since)."""
    if not is_stored(path):
        return Path(path).is_file()
    try:
        return stored_name(path) in {name for name, _, _ in stored.listing()}
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


def is_reader_payload(payload: dict) -> bool:
    return payload["model_config"].get("kind") == READER_ARCH  # core.reader.ReaderConfig.kind


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a digit model with torch.load(weights_only=True) and rebuild it in eval mode on the CPU."""
    path = Path(path)
    payload = read_payload(path)
    if is_reader_payload(payload):
        raise NumberReaderCheckpoint(f"{path} is a number reader, not a digit model: it reads whole numbers")
    try:
        config = ModelConfig(**payload["model_config"])
        model = build_model(config)
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the recorded architecture ({exc})") from exc
    model.eval()
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


def trained_models_dir() -> Path:
    """A folder of checkpoint files listed beside the store's: $MNIST_MODELS_DIR, else data/models
    (where the app saved its models before the store, which git ignores)."""
    return legacy_models_dir()


def model_folders() -> list[Path]:
    """The folders the app lists models from: the shipped ones, then those trained here."""
    trained = trained_models_dir()
    same = trained.resolve() == SHIPPED_MODELS_DIR.resolve()  # $MNIST_MODELS_DIR=models
    return [SHIPPED_MODELS_DIR] if same else [SHIPPED_MODELS_DIR, trained]


def _info(path: Path, size: int) -> CheckpointInfo:
    ckpt = load_checkpoint(path)
    return CheckpointInfo(
        path=str(path),
        arch=ckpt.model_config.arch,
        test_accuracy=ckpt.test_accuracy,
        created_at=ckpt.created_at,
        parameters=count_parameters(ckpt.model),
        device=ckpt.device,
        hidden=ckpt.model_config.hidden,
        shipped=is_shipped(path),
        shape=ckpt.model_config.shape,
        file_bytes=size,
        train_seconds=ckpt.metrics.get("train_seconds"),
        finetuned_from=(ckpt.metrics.get("finetune") or {}).get("finetuned_from"),
        trained_by=ckpt.metrics.get("trained_by"),
    )


def is_shipped(path: str | os.PathLike) -> bool:
    """One of the committed models/ (the number reader in its folder too): read-only for the app."""
    return not is_stored(path) and SHIPPED_MODELS_DIR.resolve() in Path(path).resolve().parents


def delete_checkpoint(path: str | os.PathLike, *, by: Identity) -> None:
    """Remove a model trained here (owners only); shipped models are refused."""
    require_owner(by, "delete models")
    path = Path(path)
    if is_shipped(path):
        raise CheckpointError(f"{path.name} ships with the app and cannot be deleted")
    if is_stored(path):
        with _store_errors(path):
            return stored.delete(stored_name(path))
    try:
        path.unlink()
    except FileNotFoundError:
        raise CheckpointError(f"{path.name} is already gone") from None
    except OSError as exc:
        raise CheckpointError(f"cannot delete {path.name}: {exc.strerror or exc}") from exc


def list_checkpoints(folder: str | os.PathLike | None = None) -> list[CheckpointInfo]:
    """Valid checkpoints in `folder` (default: model_folders()); bad files are skipped.

    Shipped models come first, most accurate first; then trained ones, newest first.
    """
    folders = [Path(folder)] if folder else model_folders()
    files = [(path, path.stat().st_size) for path in sorted(p for f in folders for p in f.glob(f"*{SUFFIX}"))]
    in_store = [] if folder else stored_checkpoints()
    moved = set() if folder else _moved_in_files()  # listed from the store only, even once deleted there
    files = [(path, size) for path, size in files if str(path.absolute()) not in moved]
    infos = []
    for path, size in files + in_store:
        try:
            infos.append(_info(path, size))
        except CheckpointError:
            continue
    shipped = sorted((i for i in infos if i.shipped), key=lambda i: -(i.test_accuracy or 0.0))
    trained = sorted((i for i in infos if not i.shipped), key=lambda i: i.created_at, reverse=True)
    return shipped + trained


def stored_checkpoints() -> list[tuple[Path, int]]:
    """(store:NAME, size) of each checkpoint in the store, digit models and number readers alike; none
    while the store cannot be used (pages that need it say so: stored_models_problem)."""
    try:
        return [(Path(f"{STORE_PREFIX}{name}"), size) for name, _, size in stored.listing()]
    except StoreError:
        return []


def _moved_in_files() -> set[str]:
    try:
        return stored.moved_in_files()
    except StoreError:
        return set()


def stored_models_stamp() -> tuple:
    """What changes when a model is stored or deleted (for caches), () while the store is unusable."""
    try:
        return tuple(sorted((name, created) for name, created, _ in stored.listing()))
    except StoreError:
        return ()


def stored_models_problem() -> str | None:
    """Why the models in the store cannot be listed, or None."""
    try:
        stored.listing()
    except StoreError as exc:
        return str(exc)
    return None


def most_accurate(infos: list[CheckpointInfo]) -> CheckpointInfo:
    """The highest test accuracy among listed models (a model without one counts as 0)."""
    return max(infos, key=lambda info: info.test_accuracy or 0.0)


def set_default_model(path: str | os.PathLike, *, by: Identity) -> None:
    """The model every new session starts with, for everyone (owners only)."""
    require_owner(by, "choose the default model")
    with _store_errors(path):
        settings.set_value(settings.DEFAULT_MODEL, Path(path).name)


def chosen_default() -> str | None:
    """The name of the model an owner made the default (file name or store:NAME), or None."""
    try:
        return settings.value(settings.DEFAULT_MODEL)
    except StoreError:
        return None


def default_among(infos: list[CheckpointInfo]) -> CheckpointInfo:
    """The default among listed models: the one an owner chose, while it is listed; else the most
    accurate."""
    chosen = chosen_default()
    return next((info for info in infos if Path(info.path).name == chosen), None) or most_accurate(infos)


def default_checkpoint(folder: str | os.PathLike | None = None) -> Path:
    """The app's default model: the most accurate checkpoint in `folder` (default: model_folders())."""
    infos = list_checkpoints(folder)
    if not infos:
        where = folder or " or ".join(str(f) for f in model_folders())
        raise CheckpointError(f"no checkpoints in {where}: train one with `python -m core train`")
    return Path(default_among(infos).path)


def default_checkpoint_path(arch: str, folder: str | os.PathLike | None = None) -> Path:
    """A fresh, time-stamped checkpoint name: in the store (store:NAME), or a file in `folder`."""
    name = f"{arch}-{datetime.now():%Y%m%d-%H%M%S}{SUFFIX}"
    return Path(folder) / name if folder else Path(f"{STORE_PREFIX}{name}")
