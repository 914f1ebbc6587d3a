"""Background training for the app: a child process that never calls Streamlit.

Training runs in its own process, not a thread: PyTorch's CPU kernels run 30-90 % slower outside a
process's main thread (measured in README), and a crash there cannot take the server down. The page
polls `TrainingJob.snapshot()`; at most one job runs per server process (`TrainingSlot`).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import default_checkpoint_path
from .data import DataError, load_mnist
from .devices import DeviceError, resolve_device
from .errors import reason
from .models import ModelConfig
from .train import BatchReport, EpochReport, TrainConfig, TrainingError, save_result, train

RUNNING, DONE, STOPPED, FAILED = "running", "done", "stopped", "failed"
# fork is unsafe in a threaded server whose OpenMP runtime is already started.
_CONTEXT = multiprocessing.get_context("spawn")
READ_TIMEOUT_S = 0.5


class BusyError(RuntimeError):
    """Another training run is already in progress on this server."""


@dataclass
class JobSnapshot:
    """A consistent copy of a job's progress for drawing."""

    status: str
    model_config: ModelConfig
    train_config: TrainConfig
    latest: BatchReport | None
    epochs: list[EpochReport] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed, one per report
    error: str | None = None
    checkpoint: str | None = None


@dataclass
class _Finished:
    status: str
    error: str | None = None
    checkpoint: str | None = None


def _train_in_child(model_config, train_config, data_dir, out, updates, stop) -> None:
    """The child process: load MNIST, train, save; every report and the outcome go to `updates`."""
    try:
        data = load_mnist(data_dir, device=resolve_device(train_config.device), download=False)
        result = train(model_config, train_config, data, updates.put, stop)
        path = save_result(result, out)
        updates.put(_Finished(STOPPED if result.stopped else DONE, checkpoint=str(path)))
    except (TrainingError, DeviceError, DataError, ValueError) as exc:
        updates.put(_Finished(FAILED, error=str(exc)))
    except Exception as exc:  # the child must always report, never die silently
        updates.put(_Finished(FAILED, error=f"training failed: {reason(exc)}"))


class TrainingJob:
    """Trains a fresh model in a child process and publishes a checkpoint at the end."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        data_dir: str | os.PathLike,
        models_dir: str | Path | None = None,
    ):
        self.model_config, self.train_config = model_config, train_config
        self._updates = _CONTEXT.Queue()
        self._stop = _CONTEXT.Event()
        out = default_checkpoint_path(model_config.arch, models_dir)
        args = (model_config, train_config, str(data_dir), str(out), self._updates, self._stop)
        self._process = _CONTEXT.Process(target=_train_in_child, args=args, daemon=True)
        self._reader = threading.Thread(target=self._read, name="mnist-training-reader", daemon=True)
        self._lock = threading.Lock()
        self._latest: BatchReport | None = None
        self._epochs: list[EpochReport] = []
        self._losses: list[float] = []
        self._status, self._error, self._checkpoint = RUNNING, None, None

    def start(self) -> TrainingJob:
        self._process.start()
        self._reader.start()
        return self

    def stop(self) -> None:
        """Ask the child to stop after the current batch; the partial model is still saved."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._reader.join(timeout)

    @property
    def running(self) -> bool:
        return self._status == RUNNING

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                self._status,
                self.model_config,
                self.train_config,
                self._latest,
                list(self._epochs),
                list(self._losses),
                self._error,
                self._checkpoint,
            )

    def _read(self) -> None:
        """Drain the child's reports until it finishes or dies."""
        while True:
            try:
                update = self._updates.get(timeout=READ_TIMEOUT_S)
            except queue.Empty:
                if not self._process.is_alive():
                    code = self._process.exitcode
                    self._finish(_Finished(FAILED, error=f"the training process ended unexpectedly ({code})"))
                    return
                continue
            if isinstance(update, _Finished):
                self._finish(update)
                return
            with self._lock:
                if isinstance(update, BatchReport):
                    self._latest = update
                    self._losses.append(update.loss)
                else:
                    self._epochs.append(update)

    def _finish(self, outcome: _Finished) -> None:
        self._process.join(READ_TIMEOUT_S)
        with self._lock:
            self._status, self._error, self._checkpoint = outcome.status, outcome.error, outcome.checkpoint


class TrainingSlot:
    """Allows one training run at a time per server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None

    def start(self, *args, **kwargs) -> TrainingJob:
        """Start a TrainingJob(*args, **kwargs), or raise BusyError if one is running."""
        with self._lock:
            if self.job is not None and self.job.running:
                raise BusyError("a training run is already in progress on this server; try again later")
            self.job = TrainingJob(*args, **kwargs).start()
            return self.job
