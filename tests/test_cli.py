"""The CLI, run as users run it: python -m core ... in a subprocess."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from core.checkpoint import load_checkpoint
from tests.conftest import ROOT


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True, cwd=ROOT
    )


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_every_verb_has_help():
    for verb in ("train", "evaluate", "predict", "models"):
        result = run_cli(verb, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


def test_train_evaluate_models_and_predict_on_tiny_data(tiny_data_dir, tmp_path):
    models = tmp_path / "models"
    out = models / "tiny.pt"
    train = run_cli(
        "train", "--arch", "mlp", "--epochs", "2", "--batch-size", "32", "--augment", "none",
        "--device", "cpu", "--data-dir", tiny_data_dir, "--out", out, "--val-size", 100,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    summary = last_json(train.stdout)
    assert summary["checkpoint"] == str(out) and summary["epochs"] == 2 and summary["device"] == "cpu"
    assert summary["test_accuracy"] > 50 and summary["train_seconds"] > 0
    history = load_checkpoint(out).metrics["history"]
    assert [e["val_accuracy"] is not None for e in history] == [True, True]
    assert "epoch 2" in train.stderr  # progress goes to stderr

    evaluation = run_cli("evaluate", "--checkpoint", out, "--data-dir", tiny_data_dir, "--device", "cpu")
    report = last_json(evaluation.stdout)
    assert report["accuracy"] == summary["test_accuracy"]
    assert np.array(report["confusion_matrix"]).sum() == 200 and len(report["per_class"]) == 10

    listing = [json.loads(line) for line in run_cli("models", "--models-dir", models).stdout.splitlines()]
    assert [(row["path"], row["arch"]) for row in listing] == [(str(out), "mlp")]
    assert {"test_accuracy", "created_at"} <= set(listing[0])

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 0).save(blank)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    predicted = run_cli("predict", "--checkpoint", out, blank, bad)
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert predicted.returncode == 1
    assert lines[0] == {
        "file": str(blank),
        "digit": None,
        "confidence": 0.0,
        "probabilities": [0.0] * 10,
        "blank": True,
    }
    assert lines[1]["file"] == str(bad) and "not an image" in lines[1]["error"]
    assert "Traceback" not in predicted.stderr


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path):
    result = run_cli("train", "--device", "cpu", "--data-dir", tmp_path, "--no-download")
    assert result.returncode == 2
    assert "train-images-idx3-ubyte" in result.stderr and "Traceback" not in result.stderr


def test_unavailable_device_and_bad_checkpoint_are_clear_errors(tmp_path):
    result = run_cli("train", "--device", "cuda:5")
    assert result.returncode == 2 and "cuda:5" in result.stderr and "Traceback" not in result.stderr
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    result = run_cli("evaluate", "--checkpoint", bogus)
    assert result.returncode == 2 and str(bogus) in result.stderr and "Traceback" not in result.stderr
