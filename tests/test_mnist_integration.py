"""Integration on the real MNIST (MNIST_DATA_DIR) and the shipped checkpoints."""

import json

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import MNIST

from core.catalog import default_checkpoint, list_checkpoints
from core.checkpoint import load_checkpoint
from core.config import ModelConfig, default_train_config
from core.data import load_mnist
from core.digits.evaluate import evaluate
from core.digits.predict import predict
from core.digits.train import train
from core.numbers.read import read_number
from core.paths import SHIPPED_MODELS_DIR
from core.preprocess import preprocess
from tests import realistic
from tests.test_cli import run_cli

pytestmark = pytest.mark.mnist
SHIPPED = {"mlp": SHIPPED_MODELS_DIR / "mlp.pt", "cnn": SHIPPED_MODELS_DIR / "cnn.pt"}
# Each digit is drawn once on the canvas (the styles in turn) and every third one also photographed.
# A model misreads odd digits in every rendering, so distinct digits measure more than re-renderings.
# With the CNN and the 28 px pen of the time, 600 digits drawn 3 times each gave 97.7 % and 99.2 % on
# two seeds, and 1,800 distinct digits 98.1 % and 98.8 %.
REALISTIC_DIGITS = 1800
PHOTO_EVERY = 3
# Photos that also show the desk past the paper's edges: the first digits again, with a seed of their own
# so that the set above stays as it was.
DESK_PHOTOS = 300
DESK_SEED = 2025
# Drawings with a stray click of the pen clear of the digit: the first digits again (those that leave
# room for one), their own seed.
CLICK_DRAWINGS = 300
CLICK_SEED = 2026
ENLARGED_DIGITS = 1000
# Floors, percent: the product's targets for drawings, and just under what the shipped models measure
# on the rest (the targets for photos, CNN 96 and MLP 94, are far below).
FLOORS = {
    "cnn": {"canvas": 98.5, "photo": 99.0, "desk": 90.0, "click": 98.0},
    "mlp": {"canvas": 97.5, "photo": 97.0, "desk": 87.0, "click": 97.0},
}


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir, download=False)


def test_a_short_training_run_reaches_96_percent(mnist):
    result = train(ModelConfig("mlp"), default_train_config("mlp", epochs=2, device="cpu"), mnist)
    assert result.final.test_accuracy >= 96.0


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_shipped_checkpoints_evaluate_at_their_recorded_accuracy(mnist, arch):
    ckpt = load_checkpoint(SHIPPED[arch])
    assert ckpt.model_config.arch == arch
    report = evaluate(ckpt.model, mnist.test)
    assert report.accuracy == pytest.approx(ckpt.test_accuracy, abs=0.01)
    assert report.accuracy >= {"mlp": 98.3, "cnn": 99.4}[arch]


def test_the_default_model_is_the_shipped_cnn_and_evaluates_above_99(mnist_dir):
    assert default_checkpoint() == SHIPPED["cnn"]
    assert {info.arch for info in list_checkpoints()} >= {"mlp", "cnn"}
    result = run_cli("evaluate", "--data-dir", mnist_dir, "--device", "cpu")
    assert json.loads(result.stdout.splitlines()[-1])["accuracy"] >= 99.0


def _centres_of_mass(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 2) row and column of each image's centre of mass."""
    mass = images / images.sum((1, 2), keepdims=True)
    index = np.arange(images.shape[-1])
    return np.stack([(mass.sum(2) * index).sum(1), (mass.sum(1) * index).sum(1)], 1)


def test_enlarged_mnist_digits_come_back_as_mnist_wrote_them(mnist_dir):
    digits = MNIST(str(mnist_dir), train=False).data[:ENLARGED_DIGITS].numpy()
    canvas = (realistic.CANVAS, realistic.CANVAS)
    processed = np.stack(
        [preprocess(Image.fromarray(d).resize(canvas, Image.Resampling.BICUBIC)).image28 for d in digits]
    )
    originals = digits / 255
    offset = _centres_of_mass(processed).mean(0) - _centres_of_mass(originals).mean(0)
    assert np.abs(offset).max() < 0.1  # MNIST's centre is pixel (14, 14), not the frame's middle
    assert np.abs(processed - originals).mean() < 0.05


@pytest.fixture(scope="module")
def realistic_set(mnist_dir):
    test = MNIST(str(mnist_dir), train=False)
    digits, labels = test.data.numpy(), test.targets.numpy()
    rng = np.random.default_rng(2024)
    samples = []
    chosen = realistic.pen_like_indices(digits, REALISTIC_DIGITS, rng)
    for k, i in enumerate(chosen):
        style = realistic.CANVAS_STYLES[k % len(realistic.CANVAS_STYLES)]
        samples.append(("canvas", realistic.canvas_png(digits[i], style, rng), labels[i]))
        if k % PHOTO_EVERY == 0:
            samples.append(("photo", realistic.photo_jpeg(digits[i], rng), labels[i]))
    blanks = realistic.blank_images(rng)
    desk_rng = np.random.default_rng(DESK_SEED)
    for i in chosen[:DESK_PHOTOS]:
        samples.append(("desk", realistic.photo_jpeg(digits[i], desk_rng, desk=True), labels[i]))
    click_rng = np.random.default_rng(CLICK_SEED)
    clicked = 0
    for i in chosen:
        style = realistic.CANVAS_STYLES[clicked % len(realistic.CANVAS_STYLES)]
        drawing = realistic.canvas_png(digits[i], style, click_rng, stray_click=True)
        if drawing is not None:
            samples.append(("click", drawing, labels[i]))
            clicked += 1
        if clicked == CLICK_DRAWINGS:
            break
    return samples, blanks


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_realistic_drawings_and_photos(realistic_set, arch):
    samples, blanks = realistic_set
    model = load_checkpoint(SHIPPED[arch]).model
    correct = {category: [] for category in FLOORS[arch]}
    for category, data, label in samples:
        correct[category].append(predict(model, data).digit == label)
    score = {category: 100 * np.mean(hits) for category, hits in correct.items()}
    print(f"{arch}:", "  ".join(f"{category} {value:.1f}%" for category, value in score.items()))
    assert all(score[category] >= floor for category, floor in FLOORS[arch].items()), score
    assert all(predict(model, image).blank for image in blanks.values())


NUMBER_MODE_AGREEMENT = 99.0  # %, issue #26's target


def test_number_mode_reads_a_lone_digit_as_draw_does(realistic_set):
    """Every realistic single digit (canvas, photo, desk in view, stray click) in Number mode: the
    same answer as the Draw tab (a blank is no number)."""
    samples, _ = realistic_set
    model = load_checkpoint(SHIPPED["cnn"]).model
    agree = []
    for _, data, _ in samples:
        drawn = predict(model, data)
        agree.append(read_number(model, data).number == ("" if drawn.blank else str(drawn.digit)))
    rate = 100 * np.mean(agree)
    print(f"Number mode agrees with Draw on {rate:.2f}% of {len(agree)} single digits")
    assert rate >= NUMBER_MODE_AGREEMENT
