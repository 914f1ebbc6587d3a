"""`python -m core train`: a digit model, a fine-tune (--finetune) or the number reader (--arch reader),
with a progress line on stderr and the result as one JSON line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from core.cli.common import (
    PERCENT_DECIMALS,
    PROGRESS_INTERVAL_S,
    HelpFormatter,
    add_download_flag,
    bar,
    emit,
    redraw,
)
from core.config import (
    ARCHS,
    AUGMENTATIONS,
    NO_AUGMENT,
    READER_ARCH,
    READER_MINUTES,
    RECIPES,
    ModelConfig,
    TrainConfig,
    default_train_config,
)
from core.errors import UserError

READER_FILE = "number-reader.pt"  # --arch reader's default file, in the trained models' folder


# A run's words and its reports' fields: (step, judged on, unit, accuracy field, rate field)
DIGIT_LINE = ("epoch", "test", "img", "test_accuracy", "samples_per_s")
READER_LINE = ("round", "validation", "numbers", "val_accuracy", "numbers_per_s")


def _progress_printer(reader: bool = False) -> Callable:
    """A callback that draws a progress bar on stderr, redrawn at most every PROGRESS_INTERVAL_S. A
    reader's rounds are judged on its validation numbers (its final test numbers are others)."""
    from core.digits.train import EpochReport
    from core.numbers.train import RoundReport

    last_draw = 0.0
    step, judged_on, speed, accuracy, rate = READER_LINE if reader else DIGIT_LINE

    def show(update) -> None:  # a BatchReport or an EpochReport; a reader's RoundProgress or RoundReport
        nonlocal last_draw
        if isinstance(update, EpochReport | RoundReport):
            redraw(
                f"{step} {getattr(update, step)}: train {update.train_accuracy:.2f}% "
                f"{judged_on} {getattr(update, accuracy):.2f}% ({update.seconds:.1f}s)",
                end="\n",
            )
        elif time.monotonic() - last_draw >= PROGRESS_INTERVAL_S:
            last_draw = time.monotonic()
            redraw(
                f"{step} {getattr(update, step)} {bar(update.fraction_done)} {update.fraction_done:4.0%} "
                f"loss {update.loss:.4f} {getattr(update, rate):,.0f} {speed}/s ETA {update.eta_s:.0f}s"
            )

    return show


def _writing_printer() -> Callable[[int, int], None]:
    """progress(done, total) of the reader's numbers being written: a bar with a count and an ETA."""
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done else 0.0
        redraw(f"writing numbers {bar(done / total)} {done:,}/{total:,} ETA {eta:.0f}s",
                end="\n" if done == total else "")  # fmt: skip

    return show


def _train_overrides(args: argparse.Namespace) -> dict:
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "augment": args.augment,
            "device": args.device, "seed": args.seed}  # fmt: skip


def cmd_train_reader(args: argparse.Namespace) -> int:
    """--arch reader: the number reader, trained for --minutes on written numbers."""
    from core.catalog import trained_models_dir
    from core.checkpoint import save_checkpoint
    from core.data import load_split
    from core.numbers.reader import ReaderConfig
    from core.numbers.train import ReaderTrainConfig, train_reader

    options = {"minutes": args.minutes, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
               "seed": args.seed}  # fmt: skip
    config = ReaderTrainConfig(**{k: v for k, v in options.items() if v is not None})  # checked before MNIST
    for train in (True, False):  # present, or downloaded now: the writers never download
        load_split(train, args.data_dir, download=args.download)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: the reader as it is now is saved
    reader, metrics = train_reader(
        config,
        data_dir=args.data_dir,
        send=_progress_printer(reader=True),
        stop=stop,
        writing=_writing_printer(),
    )
    out = save_checkpoint(
        args.out or trained_models_dir() / READER_FILE, reader, ReaderConfig(), metrics, asdict(config)
    )
    summary = {key: metrics[key] for key in ("train_seconds", "steps", "stopped")}
    accuracy = {key: round(metrics[key], PERCENT_DECIMALS) for key in ("test_accuracy", "val_accuracy")}
    print(f"kept the best round: {accuracy['val_accuracy']:.2f}% of the validation numbers read exactly, "
          f"{accuracy['test_accuracy']:.2f}% of the test numbers", file=sys.stderr)  # fmt: skip
    emit({"checkpoint": str(out), "arch": READER_ARCH} | accuracy | summary)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from core.checkpoint import default_checkpoint_path, is_stored

    if args.arch == READER_ARCH:
        return cmd_train_reader(args)
    from core.data import load_mnist
    from core.devices import resolve_device
    from core.digits.train import save_result, train

    if args.corrections and not args.finetune:
        raise UserError("--corrections goes with --finetune CHECKPOINT")
    start = _finetune_start(args)
    arch = start.model_config.arch if start else args.arch
    overrides = {k: v for k, v in _train_overrides(args).items() if v is not None}
    # The settings are checked (ValueError: one line) before MNIST is loaded.
    if start is None:
        model_config = ModelConfig(arch=arch, **({"hidden": args.hidden} if args.hidden is not None else {}))
        config = default_train_config(arch, **overrides)
    else:
        config = _finetune_config(start, overrides)
    stop = threading.Event()
    # Ctrl-C stops after the current batch; the partial model is still saved (none before epoch 1:
    # then save_result says so in one line).
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    device = resolve_device(config.device)
    print(f"loading MNIST onto {device}…", file=sys.stderr, flush=True)
    data = load_mnist(args.data_dir, device=device, val_size=args.val_size, download=args.download)
    if start is None:
        result = train(model_config, config, data, _progress_printer(), stop)
    else:
        result = _finetune(start, args, config, data, stop)
    out = save_result(result, args.out or default_checkpoint_path(arch))
    summary = {
        "checkpoint": str(out),
        **({"model": str(out)} if is_stored(out) else {}),
        "arch": arch,
        "test_accuracy": round(result.final.test_accuracy, PERCENT_DECIMALS),
        "train_seconds": round(result.train_seconds, 2),
        "epochs": len(result.epochs),
        "stopped": result.stopped,
        "device": result.device,
    }
    if start is not None:
        report = result.extra_metrics["finetune"]
        summary |= {"finetuned_from": str(start.path), "corrections": report["corrections"]}
    emit(summary)
    return 0


def _finetune_start(args: argparse.Namespace):
    if not args.finetune:
        return None
    if not args.corrections:
        raise UserError("--finetune needs --corrections PATH (a .sqlite store or an exported .zip)")
    from core.checkpoint import load_checkpoint

    return load_checkpoint(args.finetune)


def _finetune_config(start, overrides: dict) -> TrainConfig:
    from core.digits.finetune import finetune_config

    return finetune_config(start.model_config.arch, **overrides)


def _finetune(start, args, config: TrainConfig, data, stop):
    from core.digits.finetune import finetune, load_corrections

    corrections = load_corrections(args.corrections)
    return finetune(start, corrections, data, config, _progress_printer(), stop)


def _recipe_default(field: str) -> str:
    return "default: " + ", ".join(f"{getattr(RECIPES[arch], field)} ({arch})" for arch in ARCHS)


def add_train_verb(verbs) -> None:
    p = verbs.add_parser("train", help="train a model and save a checkpoint", formatter_class=HelpFormatter)
    p.add_argument(
        "--arch", choices=(*ARCHS, READER_ARCH), default="mlp", help="model architecture; reader: numbers"
    )
    p.add_argument(
        "--minutes", type=float, help=f"reader only: minutes of training steps (default: {READER_MINUTES})"
    )
    p.add_argument("--epochs", type=int, help=_recipe_default("epochs"))
    p.add_argument("--batch-size", type=int, help=_recipe_default("batch_size"))
    p.add_argument("--lr", type=float, help=f"peak learning rate; {_recipe_default('lr')}")
    p.add_argument(
        "--hidden", type=int, help=f"MLP hidden units / CNN classifier width; default: {ModelConfig.hidden}"
    )
    p.add_argument("--augment", choices=(NO_AUGMENT, *AUGMENTATIONS), help=_recipe_default("augment"))
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="random seed")
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    p.add_argument("--val-size", type=int, default=0, help="training images held out for validation")
    p.add_argument("--out", help="a checkpoint file (default: the store, as store:<arch>-<time>.pt)")
    p.add_argument(
        "--finetune", metavar="CKPT", help="start from this checkpoint and fine-tune it on --corrections"
    )
    p.add_argument("--corrections", metavar="PATH", help="a store (URL or .sqlite file) or an exported .zip")
    add_download_flag(p)
    p.set_defaults(run=cmd_train)
