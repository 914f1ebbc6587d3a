"""Background training for the app: a worker thread that never calls Streamlit.

The page polls `TrainingJob.snapshot()`; at most one job runs per server process (`TrainingSlot`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import default_checkpoint_path
from .data import DataError, MnistData
from .devices import DeviceError
from .errors import reason
from .models import ModelConfig
from .train import BatchReport, EpochReport, TrainConfig, TrainingError, save_result, train

RUNNING, DONE, STOPPED, FAILED = "running", "done", "stopped", "failed"


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


class TrainingJob:
    """Trains its own fresh model in a daemon thread and publishes a checkpoint at the end."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        data: MnistData,
        models_dir: str | Path | None = None,
    ):
        self.model_config, self.train_config = model_config, train_config
        self._data = data
        self._out = default_checkpoint_path(model_config.arch, models_dir)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._latest: BatchReport | None = None
        self._epochs: list[EpochReport] = []
        self._losses: list[float] = []
        self._status, self._error, self._checkpoint = RUNNING, None, None
        self._thread = threading.Thread(target=self._run, name="mnist-training", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the worker to stop after the current batch; the partial model is still saved."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

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

    def _on_update(self, update: BatchReport | EpochReport) -> None:
        with self._lock:
            if isinstance(update, BatchReport):
                self._latest = update
                self._losses.append(update.loss)
            else:
                self._epochs.append(update)

    def _finish(self, status: str, error: str | None = None, checkpoint: str | None = None) -> None:
        with self._lock:
            self._status, self._error, self._checkpoint = status, error, checkpoint

    def _run(self) -> None:
        try:
            result = train(self.model_config, self.train_config, self._data, self._on_update, self._stop)
            path = save_result(result, self._out)
            self._finish(STOPPED if result.stopped else DONE, checkpoint=str(path))
        except (TrainingError, DeviceError, DataError, ValueError) as exc:
            self._finish(FAILED, error=str(exc))
        except Exception as exc:  # the worker must always report, never die silently
            self._finish(FAILED, error=f"training failed: {reason(exc)}")


class TrainingSlot:
    """Allows one training run at a time per server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None

    def start(self, *args, **kwargs) -> TrainingJob:
        """Start a TrainingJob(*args, **kwargs), or raise BusyError if one is running."""
        with self._lock:
            if self.job is not None and self.job.running:
                raise BusyError(
                    "a training run is already in progress on this server; try again when it ends"
                )
            self.job = TrainingJob(*args, **kwargs).start()
            return self.job
