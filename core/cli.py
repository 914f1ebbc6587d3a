"""Command line: python -m core train|evaluate|predict|models."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from .checkpoint import (
    CheckpointError,
    default_checkpoint,
    default_checkpoint_path,
    list_checkpoints,
    load_checkpoint,
)
from .data import AUGMENTATIONS, DataError, load_mnist, load_split
from .devices import DeviceError, resolve_device
from .evaluate import evaluate
from .models import ARCHS, ModelConfig
from .predict import predict
from .preprocess import ImageError
from .train import (
    NO_AUGMENT,
    BatchReport,
    EpochReport,
    TrainingError,
    default_train_config,
    save_result,
    train,
)

EXIT_USAGE = 2
BAR_WIDTH = 24
LINE_WIDTH = 80
PROGRESS_INTERVAL_S = 0.2
USER_ERRORS = (DataError, CheckpointError, DeviceError, TrainingError, ValueError)


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _progress_printer() -> Callable[[BatchReport | EpochReport], None]:
    """A callback that draws a progress bar on stderr, redrawn at most every PROGRESS_INTERVAL_S."""
    last_draw = 0.0

    def show(update: BatchReport | EpochReport) -> None:
        nonlocal last_draw
        if isinstance(update, EpochReport):
            line = (
                f"epoch {update.epoch}: train {update.train_accuracy:.2f}% "
                f"test {update.test_accuracy:.2f}% ({update.seconds:.1f}s)"
            )
            print(f"\r{line:<{LINE_WIDTH}}", file=sys.stderr, flush=True)
        elif time.monotonic() - last_draw >= PROGRESS_INTERVAL_S:
            last_draw = time.monotonic()
            filled = int(update.fraction_done * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            line = (
                f"epoch {update.epoch} [{bar}] {update.fraction_done:4.0%} loss {update.loss:.4f} "
                f"{update.samples_per_s:,.0f} img/s ETA {update.eta_s:.0f}s"
            )
            print(f"\r{line:<{LINE_WIDTH}}", end="", file=sys.stderr, flush=True)

    return show


def cmd_train(args: argparse.Namespace) -> int:
    model_config = ModelConfig(arch=args.arch, **({"hidden": args.hidden} if args.hidden else {}))
    train_config = default_train_config(
        args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        augment=args.augment,
        device=args.device,
        seed=args.seed,
    )
    device = resolve_device(train_config.device)
    data = load_mnist(args.data_dir, device=device, val_size=args.val_size, download=args.download)
    stop = threading.Event()
    # Ctrl-C stops after the current batch; the partial model is still saved.
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    result = train(model_config, train_config, data, callback=_progress_printer(), stop=stop)
    out = save_result(result, args.out or default_checkpoint_path(args.arch))
    final = result.final
    _emit(
        {
            "checkpoint": str(out),
            "arch": model_config.arch,
            "test_accuracy": round(final.test_accuracy, 2),
            "train_seconds": round(result.train_seconds, 2),
            "epochs": len(result.epochs),
            "stopped": result.stopped,
            "device": result.device,
        }
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(args.checkpoint or default_checkpoint())
    device = resolve_device(args.device)
    test = load_split(train=False, data_dir=args.data_dir, download=args.download).to(device)
    report = evaluate(ckpt.model.to(device), test)
    _emit(
        {
            "checkpoint": str(ckpt.path),
            "arch": ckpt.model_config.arch,
            "accuracy": round(report.accuracy, 2),
            "loss": round(report.loss, 5),
            "count": report.count,
            "errors": len(report.mistakes),
            "confusion_matrix": report.confusion,
            "per_class": [asdict(scores) for scores in report.per_class],
        }
    )
    return 0


def _predict_record(model, path: str) -> dict:
    try:
        prediction = predict(model, path)
    except ImageError as exc:
        return {"file": path, "error": str(exc)}
    record = {
        "file": path,
        "digit": prediction.digit,
        "confidence": round(prediction.confidence, 4),
        "probabilities": [round(p, 4) for p in prediction.probabilities],
    }
    if prediction.blank:
        record["blank"] = True
    elif prediction.low_confidence:
        record["low_confidence"] = True
    return record


def cmd_predict(args: argparse.Namespace) -> int:
    model = load_checkpoint(args.checkpoint or default_checkpoint()).model
    failed = False
    for path in args.files:
        record = _predict_record(model, path)
        failed |= "error" in record
        _emit(record)
    return 1 if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    for info in list_checkpoints(args.models_dir):
        _emit(info.as_dict())
    return 0


def _add_download_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-download", dest="download", action="store_false", help="never fetch MNIST from the internet"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Train, evaluate and use MNIST models."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train a model and save a checkpoint")
    p.add_argument("--arch", choices=ARCHS, default="mlp")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--hidden", type=int, help="MLP hidden units / CNN classifier width")
    p.add_argument("--augment", choices=(NO_AUGMENT, *AUGMENTATIONS), help="default: the arch's recipe")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    p.add_argument("--val-size", type=int, default=0, help="training images held out for validation")
    p.add_argument("--out", help="checkpoint path (default: models/<arch>-<time>.pt)")
    _add_download_flag(p)
    p.set_defaults(run=cmd_train)

    p = verbs.add_parser("evaluate", help="evaluate a checkpoint on the MNIST test set")
    p.add_argument("--checkpoint", help="default: the app's default model")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    _add_download_flag(p)
    p.set_defaults(run=cmd_evaluate)

    p = verbs.add_parser("predict", help="recognise digits in image files, one JSON object per file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--checkpoint", help="default: the app's default model")
    p.set_defaults(run=cmd_predict)

    p = verbs.add_parser("models", help="list checkpoints, one JSON object per line")
    p.add_argument("--models-dir", help="default: $MNIST_MODELS_DIR or the shipped models/")
    p.set_defaults(run=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
