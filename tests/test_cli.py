"""The CLI, run as users run it: python -m core ... in a subprocess."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.checkpoint import load_checkpoint
from core.preprocess import DOT
from core.threads import THREADS_ENV
from tests.conftest import DEADLINE_S, ROOT, save_untrained_mlp
from tests.drawings import number, pen, seven


def run_cli(*args, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "core", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, env=env and {**os.environ, **env},
    )  # fmt: skip


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_every_verb_has_help_and_train_shows_its_defaults():
    for verb in ("train", "evaluate", "predict", "models", "export"):
        result = run_cli(verb, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
    help_text = " ".join(run_cli("train", "--help").stdout.split())  # unwrapped
    for default in ("default: 8 (mlp), 4 (cnn)", "default: 256 (mlp), 128 (cnn)", "(default: auto)"):
        assert default in help_text


def test_help_and_usage_errors_answer_without_importing_torch():
    probe = (
        "import sys\n"
        "from core.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['train', '--bogus']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus"], "error: unrecognized arguments: --bogus"),
        (["train", "--bogus"], "error: unrecognized arguments: --bogus"),
        ([], "error: choose a verb: train, evaluate, predict, models, export"),
        (["train", "--arch", "xyz"], "error: argument --arch: invalid choice: 'xyz'"),
    ],
)
def test_usage_errors_are_one_error_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message)


def _one_error_line(result) -> str:
    """The one `error:` line that ends stderr (train may first say it is loading MNIST)."""
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:], result.stderr
    return errors[0]


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
    assert {"test_accuracy", "created_at", "train_seconds"} <= set(listing[0])
    assert listing[0]["file_bytes"] == out.stat().st_size and listing[0]["shape"] == "784-128-10"

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 0).save(blank)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    predicted = run_cli("predict", "--checkpoint", out, blank, bad)
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert predicted.returncode == 2
    assert lines[0] == {
        "file": str(blank),
        "digit": None,
        "confidence": 0.0,
        "probabilities": [0.0] * 10,
        "blank": True,
    }
    assert lines[1]["file"] == str(bad) and "not an image" in lines[1]["error"]
    assert "Traceback" not in predicted.stderr


def test_missing_data_is_one_error_line(tmp_path):
    line = _one_error_line(run_cli("train", "--device", "cpu", "--data-dir", tmp_path, "--no-download"))
    assert "train-images-idx3-ubyte" in line and str(tmp_path / "MNIST" / "raw") in line


@pytest.mark.parametrize(
    "flag, value, message",
    [("--epochs", -1, "epochs must be positive, not -1"),
     ("--batch-size", 0, "batch size must be positive, not 0"),
     ("--lr", -1, "learning rate must be positive, not -1.0"),
     ("--hidden", 0, "hidden size and channel counts must be positive")],
)  # fmt: skip
def test_bad_settings_are_refused_before_mnist_is_looked_for(tmp_path, flag, value, message):
    nowhere = tmp_path / "no-mnist-here"  # a download would create it; a load would name it
    line = _one_error_line(run_cli("train", "--device", "cpu", "--data-dir", nowhere, flag, value))
    assert message in line and "MNIST" not in line and not nowhere.exists()


def test_unavailable_device_and_bad_checkpoint_are_one_error_line_each(tmp_path):
    assert "cuda:5" in _one_error_line(run_cli("train", "--device", "cuda:5"))
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    line = _one_error_line(run_cli("evaluate", "--checkpoint", bogus))
    assert str(bogus) in line and "refused as damaged or unsafe" in line and "weights_only" not in line


def test_models_rounds_accuracy_for_people(tmp_path):
    save_untrained_mlp(tmp_path / "m.pt", {"test_accuracy": 99.58000183105469})
    result = run_cli("models", "--models-dir", tmp_path)
    assert '"test_accuracy": 99.58,' in result.stdout


def test_predict_says_a_dot_is_not_a_digit(tmp_path):
    dot = tmp_path / "dot.png"
    pen([(140, 140)]).save(dot)
    record = last_json(run_cli("predict", dot).stdout)
    assert record["digit"] is None and record["not_a_digit"] == DOT and "blank" not in record


def test_train_flags_land_in_the_checkpoint(tiny_data_dir, tmp_path):
    out = tmp_path / "flags.pt"
    result = run_cli(
        "train", "--arch", "mlp", "--epochs", "1", "--batch-size", "48", "--lr", "0.0025", "--hidden", "24",
        "--seed", "7", "--augment", "none", "--device", "cpu", "--data-dir", tiny_data_dir, "--out", out,
        env={THREADS_ENV: "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(out)
    assert ckpt.model_config.hidden == 24 and ckpt.metrics["threads"] == 1
    assert {k: ckpt.train_config[k] for k in ("batch_size", "lr", "seed", "epochs", "augment")} == {
        "batch_size": 48, "lr": 0.0025, "seed": 7, "epochs": 1, "augment": "none",
    }  # fmt: skip


def _train_in_background(tiny_data_dir, out) -> subprocess.Popen:
    command = [sys.executable, "-m", "core", "train", "--epochs", "100000", "--batch-size", "32", "--device",
               "cpu", "--data-dir", str(tiny_data_dir), "--out", str(out)]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_after_the_first_epoch_saves_the_partial_model(tiny_data_dir, tmp_path):
    process = _train_in_background(tiny_data_dir, tmp_path / "partial.pt")
    try:
        for line in iter(process.stderr.readline, ""):  # progress lines end with the epoch's summary
            if "epoch 1:" in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=DEADLINE_S)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    summary = last_json(stdout)
    assert summary["stopped"] is True and summary["epochs"] >= 1
    assert load_checkpoint(tmp_path / "partial.pt").metrics["stopped"] is True


def test_ctrl_c_before_any_epoch_is_one_error_line(tiny_data_dir, tmp_path):
    process = _train_in_background(tiny_data_dir, tmp_path / "none.pt")
    try:
        assert process.stderr.readline().startswith("loading MNIST")  # past Python's start-up
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=DEADLINE_S)
    finally:
        process.kill()
    lines = stderr.strip().splitlines()
    assert process.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert not (tmp_path / "none.pt").exists()


def test_predict_flags_low_confidence(tmp_path):
    untrained = tmp_path / "untrained.pt"
    save_untrained_mlp(untrained, {"test_accuracy": 10.0})
    drawing = tmp_path / "seven.png"
    seven().save(drawing)
    record = last_json(run_cli("predict", "--checkpoint", untrained, drawing).stdout)
    assert record["confidence"] < 0.6 and record["low_confidence"] is True


def test_predict_number_prints_the_number_and_each_digit_with_its_box(tmp_path):
    from tests.drawings import number

    written, blank, broken = tmp_path / "2026.png", tmp_path / "blank.png", tmp_path / "broken.png"
    encode_to = {written: number("2026"), blank: number("")}
    for path, image in encode_to.items():
        image.save(path)
    broken.write_bytes(b"not an image")
    result = run_cli("predict", "--number", written, blank, broken)
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert result.returncode == 2  # one file was unreadable
    assert records[0]["number"] == "2026" and [d["digit"] for d in records[0]["digits"]] == [2, 0, 2, 6]
    assert all(set(d) == {"digit", "confidence", "box"} for d in records[0]["digits"])
    boxes = [d["box"] for d in records[0]["digits"]]
    assert all(0 <= x0 < x1 <= 700 and 0 <= y0 < y1 <= 220 for x0, y0, x1, y1 in boxes)
    assert boxes == sorted(boxes)  # left to right
    assert records[1] == {"file": str(blank), "number": "", "digits": []}
    assert set(records[2]) == {"file", "error"}


def test_a_number_readers_checkpoint_reads_numbers_with_number_and_is_explained_without(tmp_path):
    image = tmp_path / "47.png"
    number("47").save(image)
    reader = "models/reader/number-reader.pt"
    line = _one_error_line(run_cli("predict", "--checkpoint", reader, image))
    assert "is a number reader, not a digit model" in line and "--number" in line and "kind" not in line
    read = run_cli("predict", "--number", "--checkpoint", reader, image)
    assert read.returncode == 0 and last_json(read.stdout)["number"] == "47"


def test_a_wide_image_of_a_number_read_as_one_digit_points_to_number(tmp_path):
    wide, lone = tmp_path / "2026.png", tmp_path / "seven.png"
    number("2026").save(wide)
    seven().save(lone)
    records = [json.loads(line) for line in run_cli("predict", wide, lone).stdout.splitlines()]
    assert "--number" in records[0]["hint"] and "hint" not in records[1]


def test_a_models_dir_that_does_not_exist_is_an_error(tmp_path):
    assert "no such folder" in _one_error_line(run_cli("models", "--models-dir", tmp_path / "nowhere"))


def test_a_bad_db_url_given_on_the_command_line_is_blamed_on_the_flag():
    line = _one_error_line(run_cli("corrections", "list", "--db", "postgresql+psycopg://u@127.0.0.1:9/none"))
    assert "--db" in line and "MNIST_STORE_URL" not in line and "secrets.toml" not in line


def test_the_stores_settings_are_listed_in_the_order_they_are_read():
    help_text = " ".join(run_cli("corrections", "list", "--help").stdout.split())
    order = ["$MNIST_STORE_URL", "$MNIST_CORRECTIONS_DB", "secrets.toml", "data/store.sqlite"]
    assert [help_text.index(name) for name in order] == sorted(help_text.index(name) for name in order)


def test_no_download_is_honoured(tmp_path):
    line = _one_error_line(run_cli("evaluate", "--no-download", "--data-dir", tmp_path / "empty"))
    assert "MNIST" in line and "downloaded" not in line  # not tried: no connection is needed to say so
