"""Shared fixtures: tiny IDX datasets written by the tests, and the real MNIST when present."""

from __future__ import annotations

import io
import itertools
import os
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.postgres import Postgres, PostgresMissing, start_server
from core.checkpoint import FORMAT_VERSION, save_checkpoint
from core.config import ModelConfig
from core.data import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    RAW_FILES,
    MissingDataError,
    data_present,
    download_mnist,
)
from core.nets import build_model
from core.numbers.reader import Reader, ReaderConfig
from core.runs.jobs import TrainingQueue
from core.store import blobs as stored
from core.store.engine import CORRECTIONS_DB_ENV, STORE_URL_ENV

ROOT = Path(__file__).resolve().parent.parent
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
TINY_TRAIN, TINY_TEST = 600, 200
POLL_S = 0.05
DEADLINE_S = 60  # for anything a test waits on; far more than any of them needs
STOP_WITHIN_S = 10


def save_untrained_mlp(path: Path, metrics: dict, seed: int = 0) -> None:
    """A small untrained MLP checkpoint: its probabilities are near 1/10 for any drawing."""
    torch.manual_seed(seed)
    config = ModelConfig("mlp", hidden=8)
    save_checkpoint(path, build_model(config).eval(), config, metrics)


def store_reader(name: str, created_at: str, accuracy: float) -> None:
    """A small untrained reader (the same weights each time) saved in the store as the Train page
    saves one, made at `created_at`."""
    torch.manual_seed(0)
    config = ReaderConfig(channels=(4, 8, 8, 8), hidden=6)
    payload = {
        "format": FORMAT_VERSION, "state_dict": Reader(config).state_dict(), "model_config": asdict(config),
        "metrics": {"test_accuracy": accuracy, "train_seconds": 30.0}, "created_at": created_at,
    }  # fmt: skip
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    stored.save(name, buffer.getvalue(), created_at)


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds, never hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def end_training(slot: TrainingQueue) -> None:
    """Empty the queue, stop its run (killing a child that does not stop) and let its waiting child go."""
    slot.waiting.clear()
    job = slot.job
    if job is not None and job._process is not None:
        job.stop()
        job.join(timeout=STOP_WITHIN_S)
        if job._process.poll() is None:
            job._process.kill()
        job._process.wait(timeout=STOP_WITHIN_S)
    slot._retire_standby()


@pytest.fixture
def slot():
    """A training queue whose runs and waiting child end with the test, whether it passes or not."""
    slot = TrainingQueue()
    yield slot
    end_training(slot)


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write MNIST-format IDX files (big-endian headers, uint8 payload)."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", IDX_IMAGES_MAGIC, n, h, w) + images.astype(np.uint8).tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", IDX_LABELS_MAGIC, n) + labels.astype(np.uint8).tobytes()
    )


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Easy 10-class images: class k is a bright bar at row 3 + 2k, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28))
    for i, k in enumerate(labels):
        row = 3 + 2 * k
        images[i, row : row + 2, 4:24] = 255
    return images, labels


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_mnist")
    raw = root / "MNIST" / "raw"
    write_idx(raw, "train", *synthetic_digits(TINY_TRAIN, seed=1))
    write_idx(raw, "t10k", *synthetic_digits(TINY_TEST, seed=2))
    assert sorted(p.name for p in raw.iterdir()) == sorted(RAW_FILES)
    return root


@pytest.fixture
def offline_mirror(tiny_data_dir, monkeypatch) -> list[str]:
    """torchvision's downloads served from the tiny dataset; returns the URLs asked for."""
    from torchvision.datasets import utils as tv_utils

    urls = []

    def download_and_extract_archive(url, download_root, filename, md5):
        urls.append(url)
        name = Path(filename).stem  # the archive's uncompressed file
        Path(download_root).mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_data_dir / "MNIST" / "raw" / name, Path(download_root) / name)

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", download_and_extract_archive)
    return urls


MNIST_HOW_TO = (
    f"set {DATA_DIR_ENV} to a folder holding MNIST/raw/ with the four IDX files, or let "
    "`python -m core evaluate` download them into data/"
)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST: $MNIST_DATA_DIR, else data/ as the app has it, downloaded there first when
    missing. CI sets MNIST_DATA_DIR, so a missing copy fails there instead of skipping."""
    path = os.environ.get(DATA_DIR_ENV)
    if path and data_present(path):
        return Path(path)
    if os.environ.get("CI"):
        pytest.fail(f"{DATA_DIR_ENV} must point at the MNIST files in CI (got {path!r})")
    if path:
        pytest.skip(f"{DATA_DIR_ENV}={path} holds no MNIST/raw/: {MNIST_HOW_TO}")
    root = Path(DEFAULT_DATA_DIR).absolute()
    try:
        download_mnist(root)  # nothing to do when it is there
    except MissingDataError as exc:
        pytest.skip(f"real MNIST not available ({exc}): {MNIST_HOW_TO}")
    return root


@pytest.fixture(autouse=True)
def corrections_store_in_tmp(tmp_path, monkeypatch):
    """No test writes to the checkout's data/corrections.sqlite, nor sees a user's."""
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    monkeypatch.setenv(CORRECTIONS_DB_ENV, str(tmp_path / "corrections.sqlite"))


def start_postgres() -> Postgres:
    """A throwaway PostgreSQL server (bench.postgres); fails in CI where it is missing, skips elsewhere."""
    try:
        return start_server()
    except PostgresMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: .ci/run installs Debian's postgresql package")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session."""
    server = start_postgres()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


_databases = itertools.count()


@pytest.fixture
def postgres_url(postgres):
    """A new, empty database on the session's server: its URL."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    with postgres.admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres.url(name)
    forget_engine(postgres.url(name))
    with postgres.admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def forget_engine(url: str) -> None:
    """Close the store's pooled connections to `url`, as a new process would start without them."""
    from core.store import engine

    cached = engine._engines.pop(url, None)
    if cached is not None:
        cached.dispose()
    engine._ready.discard(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, monkeypatch):
    """The settings' store (models saved as store:NAME, everyone's default model, examples without a
    `where`): a SQLite file, or a database on a real PostgreSQL server."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}" if request.param == "sqlite" else None
    url = url or request.getfixturevalue("postgres_url")
    monkeypatch.setenv(STORE_URL_ENV, url)
    return url
