"""The verbs that use trained models: evaluate, predict, models and export."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from core.cli.common import (
    EXIT_BAD_INPUT,
    FRACTION_DECIMALS,
    LOSS_DECIMALS,
    PERCENT_DECIMALS,
    add_download_flag,
    emit,
)
from core.config import EXPORT_FORMATS
from core.errors import UserError


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
    emit(
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
    from core.images import ImageError
    from core.numbers.read import looks_like_a_number

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
    from core.images import ImageError
    from core.numbers.read import read_number

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
        emit(record)
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
        emit(row)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.checkpoint import load_checkpoint
    from core.digits.export import export_model

    ckpt = load_checkpoint(args.checkpoint)
    out = export_model(ckpt.model, args.out, args.format)
    emit({"checkpoint": str(ckpt.path), "format": args.format, "out": str(out), "bytes": out.stat().st_size})
    return 0


def add_model_verbs(verbs) -> None:
    p = verbs.add_parser("evaluate", help="evaluate a checkpoint on the MNIST test set")
    p.add_argument("--checkpoint", help="default: the app's default model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    add_download_flag(p)
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
