"""Checkpoints: atomic saves, weights-only loads, and a listing of models/."""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from .errors import reason
from .models import ModelConfig, build_model, count_parameters

FORMAT_VERSION = 1
SHIPPED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MODELS_DIR_ENV = "MNIST_MODELS_DIR"
SUFFIX = ".pt"
# What torch.load(weights_only=True) says when a file asks to import code.
WEIGHTS_ONLY_REFUSAL = "Unsupported global"
REQUIRED_KEYS = ("format", "state_dict", "model_config", "metrics")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit its model."""


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

    def as_dict(self) -> dict:
        return asdict(self)


def _versions() -> dict:
    import torchvision

    return {
        "torch": str(torch.__version__),  # TorchVersion is not a weights-only type
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    model_config: ModelConfig,
    metrics: dict,
    train_config: dict | None = None,
    device: str = "cpu",
) -> Path:
    """Write atomically: a temp file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": asdict(model_config),
        "metrics": metrics,
        "train_config": train_config or {},
        "device": device,
        "versions": _versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_payload(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors: unsafe, damaged or foreign
        if WEIGHTS_ONLY_REFUSAL in str(exc):
            raise CheckpointError(
                f"{path}: refused: it holds objects other than plain weights and data, "
                "which could run code when loaded"
            ) from exc
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason(exc)})") from exc
    if not isinstance(payload, dict) or not all(key in payload for key in REQUIRED_KEYS):
        raise CheckpointError(
            f"{path}: not a checkpoint of this app (a bare state dict or another format); "
            "it needs the model config and metrics saved by `python -m core train`"
        )
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format']} is not supported")
    return payload


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load with torch.load(weights_only=True) and rebuild the model in eval mode on the CPU."""
    path = Path(path)
    payload = _read_payload(path)
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


def models_dir() -> Path:
    """Where checkpoints live: $MNIST_MODELS_DIR, else the shipped models/ folder."""
    return Path(os.environ.get(MODELS_DIR_ENV) or SHIPPED_MODELS_DIR)


def list_checkpoints(folder: str | os.PathLike | None = None) -> list[CheckpointInfo]:
    """Valid checkpoints in folder (default models_dir()), most accurate first; bad files skipped."""
    infos = []
    for path in sorted(Path(folder or models_dir()).glob(f"*{SUFFIX}")):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError:
            continue
        infos.append(
            CheckpointInfo(
                path=str(path),
                arch=ckpt.model_config.arch,
                test_accuracy=ckpt.test_accuracy,
                created_at=ckpt.created_at,
                parameters=count_parameters(ckpt.model),
                device=ckpt.device,
                hidden=ckpt.model_config.hidden,
            )
        )
    return sorted(infos, key=lambda info: -(info.test_accuracy or 0.0))


def default_checkpoint(folder: str | os.PathLike | None = None) -> Path:
    """The app's default model: the most accurate checkpoint in folder (default models_dir())."""
    folder = folder or models_dir()
    infos = list_checkpoints(folder)
    if not infos:
        raise CheckpointError(f"no checkpoints in {folder}: train one with `python -m core train`")
    return Path(infos[0].path)


def default_checkpoint_path(arch: str, folder: str | os.PathLike | None = None) -> Path:
    """A fresh, time-stamped checkpoint path in folder (default models_dir())."""
    return Path(folder or models_dir()) / f"{arch}-{datetime.now():%Y%m%d-%H%M%S}{SUFFIX}"
