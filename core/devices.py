"""Choosing and validating the compute device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import UserError


class DeviceError(UserError, ValueError):
    """The requested device does not exist or cannot be used here."""


@dataclass(frozen=True)
class DeviceOption:
    id: str  # "cpu", "cuda:0", "mps"
    label: str  # human name, e.g. "NVIDIA H100 (cuda:0)"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def available_devices() -> list[DeviceOption]:
    """Usable devices, fastest first (each CUDA GPU, then MPS, then CPU)."""
    options = [
        DeviceOption(f"cuda:{i}", f"{torch.cuda.get_device_name(i)} (cuda:{i})")
        for i in range(torch.cuda.device_count())
    ]
    if _mps_available():
        options.append(DeviceOption("mps", "Apple GPU (mps)"))
    options.append(DeviceOption("cpu", "CPU"))
    return options


def resolve_device(name: str = "auto") -> torch.device:
    """Turn 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' into a usable torch.device."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0].id)
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise DeviceError(f"device {name!r} requested but no CUDA GPU is available here")
        index = 0 if device.index is None else device.index
        if index >= count:
            raise DeviceError(f"device {name!r} requested but only {count} CUDA GPU(s) exist")
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise DeviceError("device 'mps' requested but Apple MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device
