"""Training the number reader (core.numbers.reader) on numbers written with MNIST training digits
(core.numbers.written), for a fixed time on the CPU or a GPU; judged on numbers of MNIST test digits.

The numbers are written and cleaned once, before training, in worker processes; each batch then
thickens or thins some of them. The weights are averaged as the digit models' are (core.digits.train), and
the average with the best exact-number accuracy on the validation numbers is kept.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.config import READER_MINUTES, require_positive
from core.data import load_split
from core.digits.train import WeightAverage
from core.numbers.read import NUMBER_WORK
from core.numbers.reader import BLANK, Reader, ReaderConfig, decoded, forward, text_of, to_line
from core.numbers.written import random_numbers
from core.preprocess import clean_ink

SEEDS_PER_WORKER = 4  # chunks of the written numbers per worker: an even share of the work each
GRAD_CLIP = 5.0
THICKER, THINNER = 0.2, 0.15  # shares of each batch whose strokes are thickened or thinned
TEST_SEED_OFFSET = 1_000_000  # the test numbers' seeds, apart from the validation numbers'
REPORT_EVERY = 10  # steps between loss reports
LOSS_SMOOTHING = 0.95
PROGRESS_S = 1.0  # how often the numbers being written are counted


@dataclass(frozen=True)
class ReaderTrainConfig:
    minutes: float = READER_MINUTES
    numbers: int = 12_000  # written from MNIST training digits
    val_numbers: int = 300  # from MNIST test digits: picks the weights
    test_numbers: int = 600  # from other MNIST test digits: the checkpoint's accuracy
    batch_size: int = 32
    lr: float = 2e-3  # peak; linear warm-up, then linear decay to 0 by the end of the time
    warmup: float = 0.05
    weight_decay: float = 1e-4
    ema_decay: float = 0.998
    epochs: int = 8  # rounds of equal time, each judged on the validation numbers at its end
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        settings = (("minutes", self.minutes), ("numbers", self.numbers), ("batch size", self.batch_size),
                    ("learning rate", self.lr))  # fmt: skip
        require_positive(settings)


@dataclass
class RoundProgress:
    """The reader's training now and then: the time is cut in `rounds` rounds of equal length."""

    round: int  # 1-based
    rounds: int
    loss: float  # smoothed CTC loss
    numbers_per_s: float
    eta_s: float
    fraction_done: float  # of the whole time

    @property
    def position(self) -> float:
        """Rounds done, as a fraction: where the loss curve plots this report."""
        return self.fraction_done * self.rounds


@dataclass
class RoundReport:
    """The end of a round: the averaged weights judged on training numbers and on the validation
    numbers (written with MNIST test digits); accuracies are numbers read exactly right, %."""

    round: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class WrittenLines:
    lines: list[np.ndarray]  # (HEIGHT, W) float32 each
    texts: list[str]


_shared_count = None  # in a writer process: the numbers written so far, shared with the parent


def _count_into(counter) -> None:
    """A writer process's initialiser: count the numbers it writes into `counter`."""
    global _shared_count
    _shared_count = counter


def _count_shared() -> None:
    if _shared_count is not None:
        with _shared_count.get_lock():
            _shared_count.value += 1


def _write(
    split_train: bool, data_dir, count: int, seed: int, on_number: Callable[[], None] = _count_shared
) -> WrittenLines:
    """`count` numbers written with one MNIST split's digits, as the reader will see them."""
    torch.set_num_threads(1)
    split = load_split(split_train, data_dir, download=False)
    lines, texts = [], []
    for number in random_numbers(split, count, seed):
        ink, _ = clean_ink(number.image, NUMBER_WORK)
        line = to_line(ink.numpy()) if ink is not None else None
        if line is not None:
            lines.append(line.pixels)
            texts.append(number.text)
        on_number()
    return WrittenLines(lines, texts)


Progress = Callable[[int, int], None]  # (numbers written, numbers to write)


def write_lines(
    train: bool, data_dir, count: int, seed: int, workers: int, progress: Progress | None = None
) -> WrittenLines:
    """`count` numbers, written in `workers` processes (in this one when 1); progress(done, count)
    is called as they are written."""
    chunks = max(1, workers * SEEDS_PER_WORKER)
    sizes = [count // chunks + (i < count % chunks) for i in range(chunks)]
    args = [(train, data_dir, n, seed * chunks + i) for i, n in enumerate(sizes) if n]
    report = progress or (lambda done, total: None)
    if workers == 1:
        done = iter(range(1, count + 1))
        parts = [_write(*a, on_number=lambda: report(next(done), count)) for a in args]
    else:
        parts = _write_in_processes(args, workers, lambda done: report(done, count))
    return WrittenLines([x for p in parts for x in p.lines], [t for p in parts for t in p.texts])


def _write_in_processes(args: list[tuple], workers: int, report: Callable[[int], None]) -> list[WrittenLines]:
    # Spawned, not forked: the training child forks while a thread of it waits on its stdin, and
    # a forked worker closing that stdin would wait on the thread's lock forever.
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    with ProcessPoolExecutor(workers, context, initializer=_count_into, initargs=(counter,)) as pool:
        futures = [pool.submit(_write, *a) for a in args]
        while wait(futures, timeout=PROGRESS_S).not_done:
            report(counter.value)
        report(counter.value)
        return [future.result() for future in futures]


def _varied(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Some lines' strokes thickened or thinned by a pixel."""
    pick = torch.rand(len(batch), generator=generator)
    thick = F.max_pool2d(batch, 3, 1, 1)
    thin = -F.max_pool2d(-batch, 3, 1, 1)
    shape = (-1, 1, 1, 1)
    batch = torch.where((pick < THICKER).view(shape), thick, batch)
    return torch.where(((pick >= THICKER) & (pick < THICKER + THINNER)).view(shape), thin, batch)


def judged(reader: nn.Module, written: WrittenLines, batch_size: int = 64) -> tuple[float, float]:
    """Mean CTC loss, and the share of numbers read exactly right in %, one forward pass a batch."""
    reader.eval()
    right, loss = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(written.lines), batch_size):
            lines, texts = (
                written.lines[start : start + batch_size],
                written.texts[start : start + batch_size],
            )
            log_probs, lengths = forward(reader, lines)
            loss += float(ctc_loss(log_probs, lengths, texts)) * len(lines)
            right += sum(
                text_of(d) == t for (d, _), t in zip(decoded(log_probs, lengths), texts, strict=True)
            )
    count = max(1, len(written.lines))
    return loss / count, 100.0 * right / count


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """CTC loss of forward's outputs against the numbers' texts."""
    targets = torch.tensor([int(c) for t in texts for c in t])
    return F.ctc_loss(
        log_probs.transpose(0, 1),
        targets,
        lengths,
        torch.tensor([len(t) for t in texts]),
        blank=BLANK,
        zero_infinity=True,
    )


class _Rounds:
    """The training time in config.epochs rounds of equal length: the loss now and then
    (RoundProgress), and at the end of each round the averaged weights judged (RoundReport); the
    best weights on the validation numbers are kept."""

    def __init__(
        self, config: ReaderTrainConfig, average: WeightAverage, train: WrittenLines, val: WrittenLines, send
    ):
        self.config, self.average, self.val, self.send = config, average, val, send
        self.train_sample = WrittenLines(train.lines[: len(val.lines)], train.texts[: len(val.lines)])
        self.round_s = config.minutes * 60 / config.epochs
        self.best: tuple[float, dict | None] = (-1.0, None)
        self.reports: list[RoundReport] = []

    def batch(self, step: int, seconds: float, loss: float) -> None:
        total = self.round_s * self.config.epochs
        report = RoundProgress(
            round=min(int(seconds / self.round_s) + 1, self.config.epochs),
            rounds=self.config.epochs,
            loss=loss,
            numbers_per_s=step * self.config.batch_size / max(seconds, 1e-9),
            eta_s=max(0.0, total - seconds),
            fraction_done=min(1.0, seconds / total),
        )
        self.send(report)

    def end(self, seconds: float) -> None:
        train_loss, train_accuracy = judged(self.average.model, self.train_sample)
        val_loss, val_accuracy = judged(self.average.model, self.val)
        report = RoundReport(
            len(self.reports) + 1, train_loss, train_accuracy, val_loss, val_accuracy, seconds
        )
        self.reports.append(report)
        self.send(report)
        if val_accuracy > self.best[0]:
            self.best = (val_accuracy, {k: v.clone() for k, v in self.average.model.state_dict().items()})


def train_reader(
    config: ReaderTrainConfig,
    model_config: ReaderConfig | None = None,
    data_dir: str | os.PathLike | None = None,
    send: Callable[[RoundProgress | RoundReport], None] = lambda report: None,
    stop: threading.Event | None = None,
    writing: Progress | None = None,
) -> tuple[Reader, dict]:
    """A reader trained for config.minutes (less when `stop` is set), and its metrics
    (test_accuracy: numbers read exactly right, %); writing(done, total) follows the training
    numbers being written, before the first step."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    train = write_lines(True, data_dir, config.numbers, config.seed, config.workers, writing)
    val = write_lines(False, data_dir, config.val_numbers, config.seed, config.workers)
    written_s = time.perf_counter() - started
    reader = Reader(model_config or ReaderConfig())
    average = WeightAverage(reader, config.ema_decay)
    rounds = _Rounds(config, average, train, val, send)
    optimiser = torch.optim.AdamW(reader.parameters(), config.lr, weight_decay=config.weight_decay)
    budget, step, smoothed = config.minutes * 60, 0, 0.0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget and not (stop and stop.is_set()):
        for group in optimiser.param_groups:
            group["lr"] = config.lr * min(1.0, elapsed / budget / config.warmup) * (1 - elapsed / budget)
        reader.train()
        picked = torch.randint(len(train.texts), (config.batch_size,), generator=generator).tolist()
        log_probs, lengths = forward(
            reader, [train.lines[i] for i in picked], lambda b: _varied(b, generator)
        )
        loss = ctc_loss(log_probs, lengths, [train.texts[i] for i in picked])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(reader.parameters(), GRAD_CLIP)
        optimiser.step()
        average.update()
        step += 1
        smoothed = (
            loss.item() if step == 1 else LOSS_SMOOTHING * smoothed + (1 - LOSS_SMOOTHING) * loss.item()
        )
        if step % REPORT_EVERY == 0:
            rounds.batch(step, elapsed, smoothed)
        if elapsed >= rounds.round_s * (len(rounds.reports) + 1):
            rounds.end(elapsed)
    rounds.end(time.perf_counter() - start)  # the last round, or where it was stopped
    reader.load_state_dict(rounds.best[1])
    test = write_lines(False, data_dir, config.test_numbers, config.seed + TEST_SEED_OFFSET, config.workers)
    metrics = {
        "test_accuracy": judged(reader, test)[1],
        "val_accuracy": rounds.best[0],
        "steps": step,
        "stopped": bool(stop and stop.is_set()),
        "train_seconds": round(time.perf_counter() - started, 1),
        "writing_seconds": round(written_s, 1),
        "numbers": len(train.texts),
        "rounds": [asdict(r) for r in rounds.reports],
    }
    return reader.eval(), metrics
