"""MNIST as in-memory tensors: parsed by torchvision once, normalised once, batched by slicing."""

from __future__ import annotations

import math
import os
import socket
import struct
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError, reason
from core.nets import IMAGE_SIDE

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
DEFAULT_DATA_DIR = "data"
DATA_DIR_ENV = "MNIST_DATA_DIR"
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# IDX: two zero bytes, a type byte, the number of dimensions, each size as a big-endian uint32, data.
IDX_PREFIX_BYTES = 4
IDX_SIZE_BYTES = 4
IDX_UNSIGNED_BYTE = 0x08
IDX_MAX_DIMENSIONS = 3  # MNIST's images; its labels have 1
IDX_MAX_HEADER = IDX_PREFIX_BYTES + IDX_SIZE_BYTES * IDX_MAX_DIMENSIONS
# Normalised value of an empty (black) pixel: what augmentation must fill with.
BACKGROUND = -MNIST_MEAN / MNIST_STD


class DataError(UserError, RuntimeError):
    """MNIST is missing, cannot be downloaded, or is damaged."""


class MissingDataError(DataError):
    """MNIST is not on disk (and could not be downloaded, when `why` says why)."""

    def __init__(self, folder: Path, why: str | None = None):
        self.folder, self.why = folder, why
        tried = f" and could not be downloaded ({why})" if why else ""
        super().__init__(
            f"MNIST is not in {folder}{tried}: put {', '.join(RAW_FILES)} there, "
            f"or point --data-dir or ${DATA_DIR_ENV} at a folder that holds MNIST/raw/"
        )


@dataclass
class Split:
    """One split on one device: images (N, 1, 28, 28) float32 normalised, labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class MnistData:
    train: Split
    test: Split
    val: Split | None = None


def data_dir_from_env(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $MNIST_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def raw_folder(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the four IDX files live, as an absolute path (messages name it)."""
    return (data_dir_from_env(data_dir) / "MNIST" / "raw").absolute()


def data_present(data_dir: str | os.PathLike | None = None) -> bool:
    """True when all four raw IDX files are on disk (no download attempted)."""
    folder = raw_folder(data_dir)
    return all((folder / name).is_file() for name in RAW_FILES)


def standardise(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in 0..1 -> the models' input scale (MNIST mean/std normalised)."""
    return (pixels - MNIST_MEAN) / MNIST_STD


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """Inverse of standardise: model inputs -> pixels in 0..1, for display."""
    return images * MNIST_STD + MNIST_MEAN


def normalise(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), MNIST mean/std normalised."""
    return standardise(images_uint8.float() / 255.0).unsqueeze(1)


def _idx_shape(path: Path, head: bytes) -> tuple[tuple[int, ...], int]:
    """The shape an IDX file of unsigned bytes records in `head` (its first bytes), and its header length."""
    if len(head) < IDX_PREFIX_BYTES or head[:2] != b"\0\0" or head[2] != IDX_UNSIGNED_BYTE:
        raise DataError(f"{path} is damaged (not an IDX file of bytes)")
    header = IDX_PREFIX_BYTES + IDX_SIZE_BYTES * head[3]
    if not 0 < head[3] <= IDX_MAX_DIMENSIONS or len(head) < header:
        raise DataError(f"{path} is damaged (its header is cut short)")
    return struct.unpack(f">{head[3]}I", head[IDX_PREFIX_BYTES:header]), header


def split_size(train: bool, data_dir: str | os.PathLike | None = None) -> int:
    """Number of images in a split, read from its IDX label header without parsing the file."""
    labels = raw_folder(data_dir) / (RAW_FILES[1] if train else RAW_FILES[3])
    with open(labels, "rb") as f:
        return _idx_shape(labels, f.read(IDX_MAX_HEADER))[0][0]


def _fetch_archive(archive: str, md5: str, root: Path) -> None:
    """Download, check and unpack one MNIST archive from the first of torchvision's mirrors that serves it."""
    from torchvision.datasets import MNIST
    from torchvision.datasets import utils as tv_utils

    failures = []
    for mirror in MNIST.mirrors:
        try:
            tv_utils.download_and_extract_archive(
                mirror + archive, str(raw_folder(root)), filename=archive, md5=md5
            )
            return
        except Exception as exc:  # URLError, OSError, RuntimeError (checksum), ...
            failures.append(download_failure(exc))
    # Every mirror usually fails the same way (no network): say it once.
    raise MissingDataError(raw_folder(root), "; ".join(dict.fromkeys(failures)))


def download_failure(exc: BaseException) -> str:
    """Why a download failed, in words: a network failure says there is no connection."""
    if isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror)):
        return f"no connection to the internet ({reason(exc)})"
    return reason(exc)


def _new_folders(path: Path) -> list[Path]:
    """`path` and its parents that do not exist yet, deepest first."""
    return [folder for folder in (path, *path.parents) if not folder.exists()]


def download_mnist(
    data_dir: str | os.PathLike | None = None, progress: Callable[[int, int], None] | None = None
) -> None:
    """Fetch the missing MNIST files, calling progress(files_done, files_total) as they arrive.
    Raises MissingDataError naming the folder and why, whatever failed (an import, the disk, the
    network), and leaves no empty folders behind."""
    root = data_dir_from_env(data_dir)
    created = _new_folders(raw_folder(root))
    try:
        from torchvision.datasets import MNIST  # deferred: torchvision is slow to import

        for done, (archive, md5) in enumerate(MNIST.resources, 1):
            if not (raw_folder(root) / Path(archive).stem).is_file():
                _fetch_archive(archive, md5, root)
            if progress:
                progress(done, len(MNIST.resources))
    except Exception as exc:
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if isinstance(exc, DataError):
            raise
        raise MissingDataError(raw_folder(root), download_failure(exc)) from exc


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes as a uint8 tensor of its recorded shape, read in one pass.

    Read here rather than through torchvision's MNIST class: importing torchvision takes 1.2 s, most
    of the wait between pressing Start and the first progress line.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    shape, header = _idx_shape(path, raw[:IDX_MAX_HEADER].tobytes())
    if raw.size - header != math.prod(shape):
        raise DataError(f"{path} is damaged (its size does not match its header)")
    return torch.from_numpy(raw[header:]).view(shape)


def load_split(train: bool, data_dir: str | os.PathLike | None = None, download: bool = True) -> Split:
    """One split (training or test) on the CPU; see load_mnist."""
    root = data_dir_from_env(data_dir)
    if not data_present(root):
        if not download:
            raise MissingDataError(raw_folder(root))
        download_mnist(root)
    images_file, labels_file = RAW_FILES[:2] if train else RAW_FILES[2:]
    images, labels = read_idx(raw_folder(root) / images_file), read_idx(raw_folder(root) / labels_file)
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or labels.shape != images.shape[:1]:
        raise DataError(f"MNIST files under {raw_folder(root)} are damaged (images and labels do not match)")
    return Split(normalise(images), labels.long())


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    val_size: int = 0,
    download: bool = True,
    seed: int = 0,
) -> MnistData:
    """Load MNIST onto `device`; optionally hold out `val_size` training images (seeded)."""
    train = load_split(True, data_dir, download)
    test = load_split(False, data_dir, download)
    val = None
    if val_size:
        if not 0 < val_size < len(train):
            raise ValueError(f"val_size must be between 1 and {len(train) - 1}")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        val_idx, train_idx = order[:val_size], order[val_size:]
        val = Split(train.images[val_idx], train.labels[val_idx])
        train = Split(train.images[train_idx], train.labels[train_idx])
    return MnistData(train.to(device), test.to(device), val.to(device) if val else None)


def batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images, labels) slices; shuffled by index when a generator is given."""
    n = len(split)
    if generator is None:
        for start in range(0, n, batch_size):
            yield split.images[start : start + batch_size], split.labels[start : start + batch_size]
        return
    order = torch.randperm(n, generator=generator, device=generator.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield split.images[idx], split.labels[idx]


def num_batches(split: Split, batch_size: int) -> int:
    return math.ceil(len(split) / batch_size)
