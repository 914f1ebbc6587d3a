"""Which models there are: digit models and number readers in one listing, the default, deletion.

A model is a checkpoint file in models/ (shipped) or data/models, or one kept in the store
(store:NAME). Each line says its kind (core.checkpoint.DIGIT_MODEL or NUMBER_READER)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from core.access import Identity, require_owner
from core.checkpoint import (
    DIGIT_MODEL,
    KINDS,
    NUMBER_READER,
    STORE_PREFIX,
    SUFFIX,
    CheckpointError,
    digit_model,
    is_stored,
    kind_of,
    read_payload,
    store_errors,
    stored_name,
)
from core.config import READER_ARCH
from core.nets import count_parameters
from core.numbers.reader import READER_PATH, reader_from_payload
from core.paths import SHIPPED_MODELS_DIR
from core.store import StoreError, settings
from core.store import blobs as stored
from core.store.legacy import legacy_models_dir


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
    kind: str = DIGIT_MODEL

    @property
    def origin(self) -> str:
        """Where the model comes from, in a few words."""
        if self.shipped:
            return "shipped"
        return f"fine-tuned from {self.finetuned_from}" if self.finetuned_from else "trained here"

    def as_dict(self) -> dict:
        return asdict(self)


def trained_models_dir() -> Path:
    """A folder of checkpoint files listed beside the store's: $MNIST_MODELS_DIR, else data/models
    (where the app saved its models before the store, which git ignores)."""
    return legacy_models_dir()


def model_folders() -> list[Path]:
    """The folders the app lists models from: the shipped ones, then those trained here."""
    trained = trained_models_dir()
    same = trained.resolve() == SHIPPED_MODELS_DIR.resolve()  # $MNIST_MODELS_DIR=models
    return [SHIPPED_MODELS_DIR] if same else [SHIPPED_MODELS_DIR, trained]


def _info(path: Path, size: int, kinds: tuple[str, ...]) -> list[CheckpointInfo]:
    """The listing's line for a checkpoint of `kinds` (none for another kind; CheckpointError when it
    cannot be read)."""
    payload = read_payload(path)
    kind = kind_of(payload)
    if kind not in kinds:
        return []
    return [_reader_info(path, size, payload) if kind == NUMBER_READER else _digit_info(path, size, payload)]


def _digit_info(path: Path, size: int, payload: dict) -> CheckpointInfo:
    ckpt = digit_model(path, payload)
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


def _reader_info(path: Path, size: int, payload: dict) -> CheckpointInfo:
    reader, config = reader_from_payload(path, payload)
    metrics = payload["metrics"]
    return CheckpointInfo(
        path=str(path),
        arch=READER_ARCH,
        test_accuracy=metrics.get("test_accuracy"),  # % of its test numbers read exactly
        created_at=payload.get("created_at", ""),
        parameters=count_parameters(reader),
        device=payload.get("device", "unknown"),
        hidden=config.hidden,
        shipped=is_shipped(path),
        shape=config.shape,
        file_bytes=size,
        train_seconds=metrics.get("train_seconds"),
        trained_by=metrics.get("trained_by"),
        kind=NUMBER_READER,
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
        with store_errors(path):
            return stored.delete(stored_name(path))
    try:
        path.unlink()
    except FileNotFoundError:
        raise CheckpointError(f"{path.name} is already gone") from None
    except OSError as exc:
        raise CheckpointError(f"cannot delete {path.name}: {exc.strerror or exc}") from exc


def list_checkpoints(folder: str | os.PathLike | None = None) -> list[CheckpointInfo]:
    """The digit models of the catalog."""
    return catalog(folder, kinds=(DIGIT_MODEL,))


def list_readers() -> list[CheckpointInfo]:
    """The number readers of the catalog: the shipped one, then those trained here, newest first."""
    return catalog(kinds=(NUMBER_READER,))


def catalog(folder: str | os.PathLike | None = None, kinds: tuple[str, ...] = KINDS) -> list[CheckpointInfo]:
    """Valid checkpoints of `kinds` in `folder` (default: model_folders(), the shipped reader and
    the store); bad files are skipped. Only those of `kinds` are rebuilt to be described.

    Shipped models come first, most accurate first; then trained ones, newest first.
    """
    folders = [Path(folder)] if folder else model_folders()
    files = [(path, path.stat().st_size) for path in sorted(p for f in folders for p in f.glob(f"*{SUFFIX}"))]
    reader = _shipped_reader() if NUMBER_READER in kinds else []
    in_store = [] if folder else reader + stored_checkpoints()
    moved = set() if folder else _moved_in_files()  # listed from the store only, even once deleted there
    files = [(path, size) for path, size in files if str(path.absolute()) not in moved]
    infos = []
    for path, size in files + in_store:
        try:
            infos += _info(path, size, kinds)
        except CheckpointError:
            continue
    shipped = sorted((i for i in infos if i.shipped), key=lambda i: -(i.test_accuracy or 0.0))
    trained = sorted((i for i in infos if not i.shipped), key=lambda i: i.created_at, reverse=True)
    return shipped + trained


def _shipped_reader() -> list[tuple[Path, int]]:
    return [(READER_PATH, READER_PATH.stat().st_size)] if READER_PATH.is_file() else []


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
    with store_errors(path):
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
