"""MNIST as in-memory tensors: parsed by torchvision once, normalised once, batched by slicing."""

from __future__ import annotations

import functools
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
import torch.nn.functional as F

from core.config import Augmentation
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
PEN_UPSCALE = 2  # digits are re-drawn at twice the size: a 28 px skeleton loses small loops
# The pen grows from the skeleton in steps, alternately to the 4 and the 8 neighbours (an octagon,
# near a disk); pens of 1 to 3 steps are 1.5 to 3.5 px wide at 28 px, thin to thick as drawn.
PEN_STEPS = (1, 3)
INK_LEVEL = 0.5  # pixels this dark or more are the stroke that is thinned
THINNING_ROUNDS = 6


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


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device) * (high - low) + low


def _pixel_grid(device: torch.device) -> torch.Tensor:
    """(28, 28, 3) homogeneous pixel-centre coordinates in [-1, 1], as affine_grid uses."""
    coords = (torch.arange(IMAGE_SIDE, device=device) * 2 + 1) / IMAGE_SIDE - 1
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], -1)


def augment(images: torch.Tensor, generator: torch.Generator, ranges: Augmentation) -> torch.Tensor:
    """Random affine and stroke width change of the first `ranges.share` of a (shuffled) batch,
    after re-drawing a random `ranges.pen_share` of it with an even pen."""
    if ranges.pen_share:
        images = _redraw_some(images, generator, ranges.pen_share)
    n = round(images.shape[0] * ranges.share)
    return torch.cat([_warp(images[:n], generator, ranges), images[n:]])


def _redraw_some(images: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    n = images.shape[0]
    pick = torch.rand(n, generator=generator, device=generator.device) < share
    steps = torch.randint(PEN_STEPS[0], PEN_STEPS[1] + 1, (n,), generator=generator, device=generator.device)
    return _change_picked(images, pick, redraw_with_pen, steps)


def redraw_with_pen(images: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) model inputs re-drawn along their skeletons with a round pen `steps` (N,)
    wide (see PEN_STEPS): the even strokes of a canvas, which MNIST's scanned pen strokes are not."""
    big = F.interpolate(to_pixels(images), scale_factor=PEN_UPSCALE, mode="bilinear", align_corners=False)
    reach = [_thin_to_lines((big > INK_LEVEL).float())]  # [k]: pixels within k steps of the skeleton
    for step in range(1, PEN_STEPS[1] + 1):
        reach.append(_dilate(reach[-1], fill=0.0) if step % 2 == 0 else _dilate_cross(reach[-1]))
    drawn = torch.stack(reach)[steps, torch.arange(images.shape[0], device=images.device)]
    return standardise(F.avg_pool2d(drawn, PEN_UPSCALE))  # anti-aliased edges, like the canvas


def _thin_to_lines(mask: torch.Tensor) -> torch.Tensor:
    """Zhang-Suen thinning of (N, 1, H, W) 0/1 images, THINNING_ROUNDS rounds of its two
    sub-steps: enough for MNIST's strokes at PEN_UPSCALE; a rare thicker blob stays a little thick."""
    removable, weights = _thinning_tools(mask.device)
    for _ in range(THINNING_ROUNDS):
        for step in (0, 1):
            ring = F.conv2d(mask, weights, padding=1).long()  # each pixel's 8 neighbours as one byte
            mask = mask * ~removable[step][ring]
    return mask


def _thinning_table() -> torch.Tensor:
    """(2, 256) bool: whether Zhang-Suen's first and second sub-steps remove an ink pixel whose
    neighbours P2..P9 (clockwise from north) are the bits of the index."""
    table = torch.zeros(2, 256, dtype=torch.bool)
    for ring in range(256):
        p = [(ring >> k) & 1 for k in range(8)]
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        turns = sum(1 - p[k] and p[(k + 1) % 8] for k in range(8))  # 0 -> 1 changes around
        removable = 2 <= sum(p) <= 6 and turns == 1
        table[0, ring] = removable and not (p2 and p4 and p6) and not (p4 and p6 and p8)
        table[1, ring] = removable and not (p2 and p4 and p8) and not (p2 and p6 and p8)
    return table


def _ring_weights() -> torch.Tensor:
    """(1, 1, 3, 3) conv weights giving neighbour P(k + 2) the bit 2**k."""
    weights = torch.zeros(1, 1, 3, 3)
    for bit, (dy, dx) in enumerate([(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]):
        weights[0, 0, dy + 1, dx + 1] = 2**bit
    return weights


@functools.cache
def _thinning_tools(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return _thinning_table().to(device), _ring_weights().to(device)


def _warp(images: torch.Tensor, generator: torch.Generator, ranges: Augmentation) -> torch.Tensor:
    # Rotate, scale, shear and shift each image, then thicken or thin some strokes.
    n = images.shape[0]
    angle = torch.deg2rad(_uniform(n, -ranges.rotation_deg, ranges.rotation_deg, generator))
    scale = _uniform(n, *ranges.scale, generator)
    shear = _uniform(n, -ranges.shear, ranges.shear, generator)
    shift = _uniform(2 * n, -1, 1, generator).view(n, 2) * (2 * ranges.shift_px / IMAGE_SIDE)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # theta maps output to input coordinates: (N, 2, 3)
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    # einsum builds the (N, 28, 28, 2) grid far faster than F.affine_grid on CPU.
    grid = torch.einsum("hwk,njk->nhwj", _pixel_grid(images.device), theta)
    warped = F.grid_sample(images - BACKGROUND, grid, align_corners=False) + BACKGROUND
    pick = torch.rand(n, generator=generator, device=generator.device)
    return _vary_stroke(warped, pick, ranges.stroke_change)


def _dilate(images: torch.Tensor, fill: float = BACKGROUND) -> torch.Tensor:
    # 3x3 max filter as two separable passes: much faster than max_pool2d(stride=1) on CPU.
    p = F.pad(images, (1, 1, 1, 1), value=fill)
    rows = torch.maximum(torch.maximum(p[..., :, :-2], p[..., :, 1:-1]), p[..., :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _dilate_cross(images: torch.Tensor) -> torch.Tensor:
    """Grow 0/1 images by one pixel to their 4 neighbours."""
    p = F.pad(images, (1, 1, 1, 1))
    up_down = torch.maximum(p[..., :-2, 1:-1], p[..., 2:, 1:-1])
    sideways = torch.maximum(p[..., 1:-1, :-2], p[..., 1:-1, 2:])
    return torch.maximum(images, torch.maximum(up_down, sideways))


def _vary_stroke(images: torch.Tensor, pick: torch.Tensor, share: float) -> torch.Tensor:
    # Thicken some images and thin others (pick: (N,) uniform in [0, 1)): users' pens differ in width.
    thickened = _change_picked(images, pick < share / 2, _dilate)
    return _change_picked(thickened, pick > 1 - share / 2, _thin)


def _change_picked(
    images: torch.Tensor, pick: torch.Tensor, change: Callable[..., torch.Tensor], *per_image: torch.Tensor
) -> torch.Tensor:
    """`images` with `change(images, *per_image)` where `pick` (N,) is set. A CPU changes only the
    picked images; on a GPU, picking by index waits for the device (nonzero syncs): mask instead."""
    if images.device.type == "cpu":
        out = images.clone()
        out[pick] = change(images[pick], *(values[pick] for values in per_image))
        return out
    return torch.where(pick.view(-1, 1, 1, 1), change(images, *per_image), images)


def _thin(images: torch.Tensor) -> torch.Tensor:
    # Full erosion would erase MNIST's 2 px strokes, so thin by half a step.
    return (images - _dilate(-images + 2 * BACKGROUND) + 2 * BACKGROUND) / 2
