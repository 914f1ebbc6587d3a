"""Command line: python -m core train|evaluate|predict|models|export|corrections|store.

Only the verb that runs imports torch: `--help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import NoReturn

from core.access import LOCAL  # the CLI runs on the server: it acts as the owner
from core.config import (
    ARCHS,
    AUGMENTATIONS,
    EXPORT_FORMATS,
    NO_AUGMENT,
    READER_ARCH,
    READER_MINUTES,
    RECIPES,
    ModelConfig,
    TrainConfig,
    default_train_config,
)
from core.errors import UserError, reason

# The one rule (docs/cli.md#exit-status): bad input of any kind, a file among others included, exits 2.
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
BAR_WIDTH = 24
LINE_WIDTH = 80
PROGRESS_INTERVAL_S = 0.2
PERCENT_DECIMALS = 2  # accuracies, in percent, rounded for people
FRACTION_DECIMALS = 4  # probabilities and per-class scores: two decimals of a percent
LOSS_DECIMALS = 4
READER_FILE = "number-reader.pt"  # --arch reader's default file, in the trained models' folder
VERBS = ("train", "evaluate", "predict", "models", "export", "corrections", "store")


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _bar(fraction: float) -> str:
    filled = int(fraction * BAR_WIDTH)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def _redraw(line: str, end: str = "") -> None:
    print(f"\r{line:<{LINE_WIDTH}}", end=end, file=sys.stderr, flush=True)


def _progress_printer(reader: bool = False) -> Callable:
    """A callback that draws a progress bar on stderr, redrawn at most every PROGRESS_INTERVAL_S. A
    reader's rounds are judged on its validation numbers (its final test numbers are others)."""
    from core.digits.train import EpochReport

    last_draw = 0.0
    unit, judged_on, speed = ("round", "validation", "numbers") if reader else ("epoch", "test", "img")

    def show(update) -> None:  # a BatchReport or an EpochReport
        nonlocal last_draw
        if isinstance(update, EpochReport):
            _redraw(
                f"{unit} {update.epoch}: train {update.train_accuracy:.2f}% "
                f"{judged_on} {update.test_accuracy:.2f}% ({update.seconds:.1f}s)",
                end="\n",
            )
        elif time.monotonic() - last_draw >= PROGRESS_INTERVAL_S:
            last_draw = time.monotonic()
            _redraw(
                f"{unit} {update.epoch} {_bar(update.fraction_done)} {update.fraction_done:4.0%} "
                f"loss {update.loss:.4f} {update.samples_per_s:,.0f} {speed}/s ETA {update.eta_s:.0f}s"
            )

    return show


def _writing_printer() -> Callable[[int, int], None]:
    """progress(done, total) of the reader's numbers being written: a bar with a count and an ETA."""
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done else 0.0
        _redraw(f"writing numbers {_bar(done / total)} {done:,}/{total:,} ETA {eta:.0f}s",
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
    _emit({"checkpoint": str(out), "arch": READER_ARCH} | accuracy | summary)
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
    _emit(summary)
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


def _rounded_scores(scores) -> dict:
    return {k: round(v, FRACTION_DECIMALS) if isinstance(v, float) else v for k, v in asdict(scores).items()}


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.catalog import default_checkpoint
    from core.checkpoint import load_checkpoint
    from core.data import load_split
    from core.devices import resolve_device
    from core.digits.evaluate import evaluate

    ckpt = load_checkpoint(args.checkpoint or default_checkpoint())
    device = resolve_device(args.device)
    test = load_split(train=False, data_dir=args.data_dir, download=args.download).to(device)
    report = evaluate(ckpt.model.to(device), test)
    _emit(
        {
            "checkpoint": str(ckpt.path),
            "arch": ckpt.model_config.arch,
            "accuracy": round(report.accuracy, PERCENT_DECIMALS),
            "loss": round(report.loss, LOSS_DECIMALS),
            "count": report.count,
            "errors": len(report.mistakes),
            "confusion_matrix": report.confusion,
            "per_class": [_rounded_scores(scores) for scores in report.per_class],
        }
    )
    return 0


NUMBER_HINT = "several digits side by side: --number reads them as a number"


def _predict_record(model, path: str) -> dict:
    from core.digits.predict import predict
    from core.numbers.read import looks_like_a_number
    from core.preprocess import ImageError

    try:
        prediction = predict(model, path)
    except ImageError as exc:
        return {"file": path, "error": str(exc)}
    record = {
        "file": path,
        "digit": prediction.digit,
        "confidence": round(prediction.confidence, FRACTION_DECIMALS),
        "probabilities": [round(p, FRACTION_DECIMALS) for p in prediction.probabilities],
    }
    if prediction.processed.not_a_digit:
        record["not_a_digit"] = prediction.processed.not_a_digit
    elif prediction.blank:
        record["blank"] = True
    elif prediction.low_confidence:
        record["low_confidence"] = True
    if looks_like_a_number(prediction.processed):
        record["hint"] = NUMBER_HINT
    return record


def _number_record(model, path: str, reader=None) -> dict:
    from core.numbers.read import read_number
    from core.preprocess import ImageError

    try:
        reading = read_number(model, path, reader)
    except ImageError as exc:
        return {"file": path, "error": str(exc)}
    digits = [{"digit": d.digit, "confidence": round(d.confidence, FRACTION_DECIMALS), "box": list(d.box)}
              for d in reading.digits]  # fmt: skip
    return {"file": path, "number": reading.number, "digits": digits}


def _models_for(args: argparse.Namespace):
    """(the digit model, the number reader or None for the shipped one) that --checkpoint names: a
    number reader's checkpoint reads numbers (--number) beside the default digit model."""
    from core.catalog import default_checkpoint
    from core.checkpoint import NumberReaderCheckpoint, load_checkpoint
    from core.numbers.reader import load_reader

    try:
        return load_checkpoint(args.checkpoint or default_checkpoint()).model, None
    except NumberReaderCheckpoint as exc:
        if not args.number:
            raise UserError(f"{exc}; add --number to read numbers with it") from None
    return load_checkpoint(default_checkpoint()).model, load_reader(args.checkpoint)[0]


def cmd_predict(args: argparse.Namespace) -> int:
    model, reader = _models_for(args)
    failed = False
    for path in args.files:
        record = _number_record(model, path, reader) if args.number else _predict_record(model, path)
        failed |= "error" in record
        _emit(record)
    return EXIT_BAD_INPUT if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.catalog import list_checkpoints

    if args.models_dir and not Path(args.models_dir).is_dir():
        raise UserError(f"--models-dir {args.models_dir}: no such folder")
    for info in list_checkpoints(args.models_dir):
        row = info.as_dict()
        if row["test_accuracy"] is not None:
            row["test_accuracy"] = round(row["test_accuracy"], PERCENT_DECIMALS)
        _emit(row)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.checkpoint import load_checkpoint
    from core.digits.export import export_model

    ckpt = load_checkpoint(args.checkpoint)
    out = export_model(ckpt.model, args.out, args.format)
    _emit({"checkpoint": str(ckpt.path), "format": args.format, "out": str(out), "bytes": out.stat().st_size})
    return 0


def cmd_corrections(args: argparse.Namespace) -> int:
    return args.corrections_run(args)


def cmd_corrections_add(args: argparse.Namespace) -> int:
    from core.corrections import add_example, example_from_image
    from core.preprocess import ImageError

    failed = False
    for file in args.files:
        try:
            with open(file, "rb") as f:
                data = f.read()
            example_id, _ = add_example(example_from_image(data, args.label, "cli"), args.db, by=LOCAL)
            _emit({"file": file, "id": example_id})
        except (OSError, ImageError) as exc:
            failed = True
            _emit({"file": file, "error": reason(exc)})
    return EXIT_BAD_INPUT if failed else 0


def cmd_corrections_list(args: argparse.Namespace) -> int:
    from core.corrections import list_examples

    for e in list_examples(args.db, by=LOCAL):
        _emit({"id": e.id, "label": e.label, "predicted": e.predicted, "source": e.source,
               "created_at": e.created_at, "author": e.author})  # fmt: skip
    return 0


def cmd_corrections_export(args: argparse.Namespace) -> int:
    from core.corrections import export_zip

    _emit(export_zip(args.out, args.db, by=LOCAL))
    return 0


def cmd_corrections_import(args: argparse.Namespace) -> int:
    from core.corrections import import_zip

    try:
        with open(args.zip, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"cannot read {args.zip}: {reason(exc)}") from exc
    _emit(import_zip(data, args.db, by=LOCAL))
    return 0


def cmd_store_copy(args: argparse.Namespace) -> int:
    from core.corrections import copy_store

    _emit(copy_store(args.source, args.target, by=LOCAL))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `error:` line (argparse would print the usage and a second line)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; those that depend on --arch (None here) say so in their help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def _recipe_default(field: str) -> str:
    return "default: " + ", ".join(f"{getattr(RECIPES[arch], field)} ({arch})" for arch in ARCHS)


def _add_download_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-download", dest="download", action="store_false", help="never fetch MNIST from the internet"
    )


def _add_train_verb(verbs) -> None:
    p = verbs.add_parser("train", help="train a model and save a checkpoint", formatter_class=_HelpFormatter)
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
    _add_download_flag(p)
    p.set_defaults(run=cmd_train)


def _add_corrections_verb(verbs) -> None:
    p = verbs.add_parser("corrections", help="the store of digits users labelled: add, list, export, import")
    actions = p.add_subparsers(dest="action", metavar="{add,list,export,import}", required=True)
    db_help = (
        "the store: a SQLite file or a database URL (default: $MNIST_STORE_URL, else $MNIST_CORRECTIONS_DB, "
        "else [connections.store] url in .streamlit/secrets.toml, else data/store.sqlite)"
    )
    a = actions.add_parser("add", help="store image files with their true digit, one JSON line per file")
    a.add_argument("files", nargs="+", metavar="FILE")
    a.add_argument(
        "--label", type=int, choices=range(10), required=True, metavar="D", help="their digit, 0-9"
    )
    a.set_defaults(corrections_run=cmd_corrections_add)
    a = actions.add_parser("list", help="one JSON line per stored example")
    a.set_defaults(corrections_run=cmd_corrections_list)
    a = actions.add_parser("export", help="write every example and labels.csv to a zip")
    a.add_argument("out", metavar="OUT.zip")
    a.set_defaults(corrections_run=cmd_corrections_export)
    a = actions.add_parser("import", help="merge an exported zip; duplicates are skipped")
    a.add_argument("zip", metavar="IN.zip")
    a.set_defaults(corrections_run=cmd_corrections_import)
    for action in actions.choices.values():
        action.add_argument("--db", help=db_help)
    p.set_defaults(run=cmd_corrections)


def _add_store_verb(verbs) -> None:
    p = verbs.add_parser("store", help="the store of what users teach: copy one into another")
    actions = p.add_subparsers(dest="action", metavar="{copy}", required=True)
    a = actions.add_parser("copy", help="copy every example into another store; prints counts and hashes")
    a.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="a database URL or .sqlite file"
    )
    a.add_argument("--to", dest="target", required=True, metavar="URL", help="a database URL or .sqlite file")
    p.set_defaults(run=cmd_store_copy)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="Train, evaluate and use MNIST models.")
    verbs = parser.add_subparsers(dest="verb", metavar="{" + ",".join(VERBS) + "}")
    _add_train_verb(verbs)

    p = verbs.add_parser("evaluate", help="evaluate a checkpoint on the MNIST test set")
    p.add_argument("--checkpoint", help="default: the app's default model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    _add_download_flag(p)
    p.set_defaults(run=cmd_evaluate)

    p = verbs.add_parser("predict", help="recognise digits in image files, one JSON object per file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--checkpoint", help="default: the app's default model")
    p.add_argument("--number", action="store_true", help="read every digit, left to right: a number")
    p.set_defaults(run=cmd_predict)

    p = verbs.add_parser("models", help="list checkpoints, one JSON object per line")
    p.add_argument("--models-dir", help="default: the shipped models/ and the trained ones")
    p.set_defaults(run=cmd_models)

    p = verbs.add_parser("export", help="write a checkpoint's model as ONNX (input: image, N x 1 x 28 x 28)")
    p.add_argument("--checkpoint", required=True, help="the .pt file to export")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="file format (default: onnx)")
    p.add_argument("--out", required=True, help="the file to write, e.g. model.onnx")
    p.set_defaults(run=cmd_export)
    _add_corrections_verb(verbs)
    _add_store_verb(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.error(f"choose a verb: {', '.join(VERBS)}")
    try:
        from core.threads import use_cpu_budget

        use_cpu_budget()
        return args.run(args)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C before `train` set its handler, or in another verb
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
