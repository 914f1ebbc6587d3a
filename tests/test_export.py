"""ONNX export through the CLI, checked with onnxruntime on the real MNIST."""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from core.checkpoint import load_checkpoint
from core.data import load_split
from core.digits import export
from core.digits.export import BATCH_AXIS, INPUT_NAME, NEEDS, OUTPUT_NAME, ExportError, export_model
from core.paths import SHIPPED_MODELS_DIR
from tests.test_cli import run_cli

PARITY_DIGITS = 1000
MAX_LOGIT_GAP = 1e-4


@pytest.mark.mnist
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_onnx_logits_match_torch_on_1000_test_digits(mnist_dir, tmp_path, arch):
    checkpoint, out = SHIPPED_MODELS_DIR / f"{arch}.pt", tmp_path / f"{arch}.onnx"
    result = run_cli("export", "--checkpoint", checkpoint, "--format", "onnx", "--out", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bytes"] == out.stat().st_size > 0
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    (image,), (logits,) = session.get_inputs(), session.get_outputs()
    assert (image.name, image.shape, image.type) == (INPUT_NAME, [BATCH_AXIS, 1, 28, 28], "tensor(float)")
    assert (logits.name, logits.shape) == (OUTPUT_NAME, [BATCH_AXIS, 10])

    images = load_split(train=False, data_dir=mnist_dir, download=False).images[:PARITY_DIGITS]
    with torch.no_grad():
        expected = load_checkpoint(checkpoint).model(images).numpy()
    got = np.concatenate([session.run(None, {INPUT_NAME: batch.numpy()})[0] for batch in images.split(333)])
    gap = np.abs(got - expected).max()
    print(f"{arch}: ONNX vs torch, {PARITY_DIGITS} digits, largest logit gap {gap:.2e}")
    assert gap < MAX_LOGIT_GAP and (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "tflite", "--out", "{tmp}/m.tflite"], "invalid choice: 'tflite'"),
        (["--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/m.onnx"], "no such checkpoint file"),
        (["--out", "{tmp}/not-a-folder.txt/m.onnx"], "cannot write"),
    ],
)
def test_bad_export_input_is_one_error_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "not-a-folder.txt").write_text("a file")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--checkpoint" not in args:
        args = ["--checkpoint", str(SHIPPED_MODELS_DIR / "mlp.pt"), *args]
    result = run_cli("export", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder.txt"]  # nothing half-written


def test_without_the_onnx_packages_export_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None)
    assert not export.onnx_available()
    with pytest.raises(ExportError, match="pip install onnx onnxscript"):
        export_model(load_checkpoint(SHIPPED_MODELS_DIR / "mlp.pt").model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == [] and NEEDS.startswith("ONNX export needs")


def test_an_unknown_export_format_is_refused_and_nothing_is_written(tmp_path):
    model = load_checkpoint(SHIPPED_MODELS_DIR / "mlp.pt").model
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_model(model, tmp_path / "m.tflite", "tflite")
    assert not list(tmp_path.iterdir())
