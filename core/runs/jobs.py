"""Background training for the app: a child process that never calls Streamlit.

Training runs in its own process, not a thread: PyTorch's CPU kernels run 30-90 % slower outside a
process's main thread (measured in README), and a crash there cannot take the server down. The child is
a fresh `python -m core.runs.child` rather than a multiprocessing spawn: spawn re-imports the
parent's main script, which under the app's server is the app's entry script. The page polls
`TrainingJob.snapshot()`. Runs go through one queue per server process (`TrainingQueue`): one
trains at a time, the others wait in turn, and a run that ends starts the next by itself, so nobody
needs to keep a page open.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.access import LOCAL, Identity, may_manage_run, require, require_trainer
from core.checkpoint import default_checkpoint_path
from core.digits.train import BatchReport, EpochReport
from core.errors import UserError
from core.numbers.train import RoundProgress, RoundReport
from core.paths import PROJECT_ROOT
from core.runs.requests import RunRequest, absolute

RUNNING, DONE, STOPPED, FAILED = "running", "done", "stopped", "failed"
CHILD_COMMAND = [sys.executable, "-m", "core.runs.child"]
# A waiting child holds about 0.7 GB (torch): it leaves if no task comes in this time
# (core.runs.child), and is given a run only well before that.
STANDBY_S = 600
STANDBY_USE_S = STANDBY_S - 60


class QueueError(UserError):
    """A run that cannot be queued or cancelled."""


Progress = BatchReport | RoundProgress  # now and then during an epoch (a reader's: a round)
Report = EpochReport | RoundReport  # at the end of one


@dataclass
class TrainingTask:
    """What the child runs (its paths absolute), where it saves the result, and for whom: whose
    examples a fine-tune may read."""

    request: RunRequest
    out: str
    started_by: Identity = LOCAL


@dataclass
class Outcome:
    """The child's last message."""

    status: str
    error: str | None = None
    checkpoint: str | None = None


@dataclass
class JobSnapshot:
    """A consistent copy of a job's progress for drawing."""

    status: str
    request: RunRequest
    latest: Progress | None
    epochs: list[Report] = field(default_factory=list)
    losses: list[tuple[float, float]] = field(default_factory=list)  # (epochs done, smoothed loss) per report
    error: str | None = None
    checkpoint: str | None = None

    @property
    def kind(self) -> str:
        return self.request.kind

    @property
    def planned_epochs(self) -> int:
        """The run's epochs, or a reader's rounds."""
        return self.request.train_config.epochs


def launch_child() -> subprocess.Popen:
    """A training child that imports torch and waits for its TrainingTask on stdin."""
    # The server's environment, with the project importable from any working directory.
    paths = [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.Popen(CHILD_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


class TrainingJob:
    """Runs a request in a child process, which publishes a checkpoint at the end."""

    def __init__(
        self, request: RunRequest, started_by: Identity = LOCAL, on_end: Callable[[], None] | None = None
    ):
        self.request, self.started_by, self._on_end = request, started_by, on_end
        out = absolute(default_checkpoint_path(request.name, request.models_dir))
        self._task = TrainingTask(request.for_child(), out, started_by)
        self._process: subprocess.Popen | None = None
        self._reader = threading.Thread(target=self._read, name="mnist-training-reader", daemon=True)
        self._lock = threading.Lock()
        self._latest: Progress | None = None
        self._epochs: list[Report] = []
        self._losses: list[tuple[float, float]] = []
        self._status, self._error, self._checkpoint = RUNNING, None, None
        self._finished = threading.Event()

    def start(self, process: subprocess.Popen | None = None) -> TrainingJob:
        """Hand the task to `process` (a waiting child from launch_child) or to a new child."""
        self._process = process or launch_child()
        try:
            self._send_task()
        except OSError:  # the waiting child has just left (BrokenPipeError): take a new one
            self.stop()
            self._process = launch_child()
            self._send_task()
        self._reader.start()
        return self

    def _send_task(self) -> None:
        pickle.dump(self._task, self._process.stdin)
        self._process.stdin.flush()  # stays open: closing it is the stop signal

    def stop(self) -> None:
        """Ask the child to stop after the current batch; the partial model is still saved."""
        with contextlib.suppress(OSError):  # the child has already gone
            self._process.stdin.close()

    def may_stop(self, by: Identity) -> bool:
        return may_manage_run(by, self.started_by)

    def stop_by(self, by: Identity) -> None:
        """Stop, as `by`: refused unless they may (may_stop)."""
        require(self.may_stop(by), by, f"stop {self.started_by}'s run")
        self.stop()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the run's outcome (the child may take a moment longer to exit)."""
        self._finished.wait(timeout)

    @property
    def running(self) -> bool:
        return self._status == RUNNING

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                self._status,
                self.request,
                self._latest,
                list(self._epochs),
                list(self._losses),
                self._error,
                self._checkpoint,
            )

    def _read(self) -> None:
        """Take the child's reports until its outcome comes, or it dies."""
        while True:
            try:
                update = pickle.load(self._process.stdout)
            except (EOFError, pickle.UnpicklingError):  # it died, perhaps mid-message
                code = self._process.wait()
                self._finish(Outcome(FAILED, error=f"the training process ended unexpectedly ({code})"))
                return
            if isinstance(update, Outcome):
                self._finish(update)  # before the child has exited: its interpreter takes a while to end
                self._process.wait()
                return
            with self._lock:
                if isinstance(update, Progress):
                    self._latest = update
                    self._losses.append((update.position, update.loss))
                else:
                    self._epochs.append(update)

    def _finish(self, outcome: Outcome) -> None:
        self.stop()  # closes our end of the pipe
        self._process.stdout.close()
        with self._lock:
            self._status, self._error, self._checkpoint = outcome.status, outcome.error, outcome.checkpoint
        self._finished.set()
        if self._on_end is not None:
            self._on_end()


@dataclass
class WaitingRun:
    """A run in the queue, and who asked for it."""

    id: int
    by: Identity
    request: RunRequest


class TrainingQueue:
    """One training run at a time per server process; the others wait in turn (one each per
    person), and a child is kept ready for the next."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a run's end starts the next from the reader thread
        self.job: TrainingJob | None = None  # the one training, or the last one
        self.waiting: list[WaitingRun] = []
        self._ids = itertools.count(1)
        self._standby: subprocess.Popen | None = None
        self._standby_since = 0.0
        self._latest_of: dict[str | None, TrainingJob] = {}  # each person's (email's) latest run
        self._cancelled: dict[str | None, Identity] = {}  # whose waiting run another person cancelled

    def _standby_ready(self) -> bool:
        fresh = time.monotonic() - self._standby_since < STANDBY_USE_S
        return self._standby is not None and self._standby.poll() is None and fresh

    def warm_up(self) -> None:
        """Have a child ready that has imported torch: a run then starts about 3 s sooner.

        The child waits on its stdin, and exits when the server does (the pipe closes) or after
        STANDBY_S without a task."""
        with self._lock:
            if self.busy:
                return  # not while a run needs the CPU and memory: the page warms up again after it
            if not self._standby_ready():
                self._retire_standby()
                self._standby, self._standby_since = launch_child(), time.monotonic()

    def _retire_standby(self) -> None:
        if self._standby is not None:
            with contextlib.suppress(OSError):  # closing its stdin lets it leave
                self._standby.stdin.close()
            self._standby = None

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def submit(self, by: Identity, request: RunRequest) -> TrainingJob | WaitingRun:
        """`request` run for `by`: started now when nothing trains, else queued. Refused unless `by`
        may train, and while they already have a run waiting."""
        require_trainer(by)
        with self._lock:
            if (mine := self.waiting_run_of(by)) is not None:
                raise QueueError(f"your run is already waiting (number {self.position(mine)} in the queue)")
            if self.busy:
                run = WaitingRun(next(self._ids), by, request)
                self.waiting.append(run)
                return run
            return self._start(by, request)

    def _start(self, by: Identity, request: RunRequest) -> TrainingJob:
        ready = self._standby if self._standby_ready() else None
        if ready is None:
            self._retire_standby()
        self._standby = None
        self.job = TrainingJob(request, by, on_end=self._next).start(ready)
        self._latest_of[by.email] = self.job
        return self.job

    def _next(self) -> None:
        """A run ended: the first waiting run starts (in the ending run's reader thread)."""
        with self._lock:
            if self.waiting and not self.busy:
                run = self.waiting.pop(0)
                self._start(run.by, run.request)

    def latest_run_of(self, by: Identity) -> TrainingJob | None:
        """The last run `by` asked for that has started (training, or ended), kept until they start
        another: a run that ends shows its result to its owner while the next person's trains."""
        with self._lock:
            return self._latest_of.get(by.email)

    def cancelled_by_other(self, by: Identity) -> Identity | None:
        """Who cancelled `by`'s waiting run, once (None: nobody else did since the last call)."""
        with self._lock:
            return self._cancelled.pop(by.email, None)

    def waiting_run_of(self, by: Identity) -> WaitingRun | None:
        return next((run for run in self.waiting if run.by.email == by.email), None)

    def position(self, run: WaitingRun) -> int | None:
        """1 for the next run to start; None once it has started or was cancelled."""
        with self._lock:
            return next((i for i, queued in enumerate(self.waiting, 1) if queued.id == run.id), None)

    def cancel(self, run_id: int, by: Identity) -> None:
        """Take a waiting run out of the queue: its owner, or an owner of the app."""
        with self._lock:
            run = next((queued for queued in self.waiting if queued.id == run_id), None)
            if run is None:
                raise QueueError("that run is no longer waiting: it has started or was cancelled")
            require(may_manage_run(by, run.by), by, f"cancel {run.by}'s run")
            self.waiting.remove(run)
            if by.email != run.by.email:
                self._cancelled[run.by.email] = by
