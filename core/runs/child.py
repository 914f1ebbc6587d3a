"""The training child process, `python -m core.runs.child`, started by core.runs.jobs.

It imports what training needs and waits for one TrainingTask (pickle) on stdin, whose request's type
says what to run (core.runs.requests), then writes every progress report and finally an Outcome
(pickles) to stdout. When its stdin closes (Stop pressed, or
the server gone) it stops after the current batch and still saves the partial model; a child closed
before it got a task exits quietly.
"""

from __future__ import annotations

import importlib
import os
import pickle
import select
import sys
import threading
from dataclasses import asdict
from typing import BinaryIO

from core.checkpoint import load_checkpoint, save_checkpoint
from core.data import load_mnist
from core.devices import resolve_device
from core.digits.finetune import finetune, load_corrections
from core.digits.train import save_result, train
from core.errors import UserError, reason
from core.numbers.train import train_reader
from core.runs.jobs import DONE, FAILED, STANDBY_S, STOPPED, Outcome, TrainingTask
from core.runs.requests import FinetuneRun, ReaderRun
from core.threads import use_cpu_budget

PIPE_CHUNK = 4096


def _stop_at_end_of(stream: BinaryIO, stop: threading.Event) -> None:
    """Sets `stop` when the parent closes the pipe. It reads the raw descriptor, not the buffered
    stream: a thread blocked in the buffered stream's read holds its lock, and an interpreter that
    ends meanwhile dies with "Fatal Python error: _enter_buffered_busy"."""
    while os.read(stream.fileno(), PIPE_CHUNK):
        pass
    stop.set()


def run(task: TrainingTask, send, stop: threading.Event) -> Outcome:
    """Run the task's request, save the checkpoint; every report goes to send(); never raises."""
    try:
        if isinstance(task.request, ReaderRun):
            return _train_reader(task, send, stop)
        return _train_digit_model(task, send, stop)
    except (UserError, ValueError) as exc:
        return Outcome(FAILED, error=str(exc))
    except Exception as exc:  # the child must always report, never die silently
        return Outcome(FAILED, error=f"training failed: {reason(exc)}")


def _train_digit_model(task: TrainingTask, send, stop: threading.Event) -> Outcome:
    """A DigitRun trains a fresh model, a FinetuneRun fine-tunes its start on the corrections."""
    request = task.request
    data = load_mnist(request.data_dir, device=resolve_device(request.train_config.device), download=False)
    if isinstance(request, FinetuneRun):
        corrections = load_corrections(request.corrections, task.started_by, request.whose)
        start = load_checkpoint(request.start)
        result = finetune(start, corrections, data, request.train_config, send, stop)
    else:
        result = train(request.model_config, request.train_config, data, send, stop)
    result.extra_metrics["trained_by"] = task.started_by.email
    path = save_result(result, task.out)
    return Outcome(STOPPED if result.stopped else DONE, checkpoint=str(path))


def _train_reader(task: TrainingTask, send, stop: threading.Event) -> Outcome:
    request = task.request
    reader, metrics = train_reader(request.train_config, request.model_config, request.data_dir, send, stop)
    metrics["trained_by"] = task.started_by.email
    path = save_checkpoint(task.out, reader, request.model_config, metrics, asdict(request.train_config))
    return Outcome(STOPPED if metrics["stopped"] else DONE, checkpoint=str(path))


# torch's optimizers import this on first use, about 1 s: a waiting child does it before the task comes.
WARM_UP_MODULES = ("torch._dynamo",)


def main() -> None:
    stdin, reports = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the report stream
    use_cpu_budget()
    for module in WARM_UP_MODULES:
        importlib.import_module(module)
    if not select.select([stdin], [], [], STANDBY_S)[0]:
        return  # not needed: core.runs.jobs starts another when the Train page is opened again
    try:
        task = pickle.load(stdin)
    except EOFError:  # a waiting child whose server has gone
        return
    stop = threading.Event()
    threading.Thread(target=_stop_at_end_of, args=(stdin, stop), daemon=True).start()

    def send(message) -> None:
        pickle.dump(message, reports)
        reports.flush()

    send(run(task, send, stop))


if __name__ == "__main__":
    main()
