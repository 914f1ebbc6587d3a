"""AppTests: every page, with and without the dataset; Predict with st_canvas patched."""

import shutil
import sys
import time
import types

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.cache import training_slot
from core.checkpoint import SHIPPED_MODELS_DIR
from tests.conftest import ROOT
from tests.drawings import encode, one, seven

PAGES = ["app_pages/home.py", "app_pages/train.py", "app_pages/evaluate.py", "app_pages/predict.py"]
TIMEOUT = 60
STOP_WITHIN_S = 1.0


class FakeCanvas:
    """Stands in for streamlit_drawable_canvas: returns a fixed drawing as the canvas PNG."""

    def __init__(self):
        self.png: bytes | None = None
        self.module = types.SimpleNamespace(st_canvas=self.st_canvas)

    def st_canvas(self, **kwargs):
        assert kwargs["return_image_data"] and kwargs["width"] == kwargs["height"] == 280
        return types.SimpleNamespace(image_bytes=self.png)


@pytest.fixture
def canvas(monkeypatch):
    fake = FakeCanvas()
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake.module)
    return fake


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    shutil.copytree(SHIPPED_MODELS_DIR, folder)
    monkeypatch.setenv("MNIST_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def with_data(tiny_data_dir, monkeypatch, models):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_data_dir))


@pytest.fixture
def without_data(tmp_path, monkeypatch, models):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "no-data-here"))


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    app.run()
    app.switch_page(page)
    app.run()
    assert not app.exception, app.exception
    return app


def texts(app: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "warning", "success", "error")
        for e in app.get(kind)
    ]
    return "\n".join(str(p) for p in parts)


def test_the_entry_point_offers_the_model_picker(with_data, canvas):
    app = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT).run()
    picker = app.selectbox(key="model_path")
    assert picker.label == "Active model" and picker.value.endswith("cnn.pt")  # the most accurate
    assert picker.options == ["cnn (CNN, 99.58%)", "mlp (MLP, 98.55%)"]


TITLES = {"app_pages/home.py": "MNIST Digit Recognizer", "app_pages/train.py": "Train"}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_the_dataset(with_data, canvas, page):
    app = open_page(page)
    expected = TITLES.get(page, page.removeprefix("app_pages/").removesuffix(".py").capitalize())
    assert app.title[0].value == expected
    if page in ("app_pages/evaluate.py", "app_pages/predict.py"):
        assert "`cnn.pt`" in texts(app)  # the most accurate model is active by default


def test_train_page_downloads_mnist_on_demand(without_data, canvas, offline_mirror):
    app = open_page("app_pages/train.py")
    next(b for b in app.button if b.label.startswith("Download MNIST")).click()
    app.run()
    assert not app.exception and len(offline_mirror) == 4
    assert "MNIST is not on this server yet" not in texts(app)
    assert any(b.label == "Start training" for b in app.button)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_where_a_gpu_is_reported(with_data, canvas, monkeypatch, page):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100 80GB HBM3")
    app = open_page(page)
    if page == "app_pages/train.py":
        device = app.selectbox[[s.label for s in app.selectbox].index("Device")]
        assert device.options == ["NVIDIA H100 80GB HBM3 (cuda:0)", "CPU"]
        assert device.value.id == "cuda:0"  # the fastest is the default


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_the_dataset(without_data, canvas, page):
    app = open_page(page)
    if page != "app_pages/predict.py":  # Predict needs only the shipped models
        assert "MNIST is not on this server yet" in texts(app)


def test_home_shows_the_model_card_and_samples(with_data, canvas):
    app = open_page("app_pages/home.py")
    assert app.title[0].value == "MNIST Digit Recognizer"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Architecture"] == "CNN" and metrics["Test accuracy"] == "99.58%"
    assert "MNIST ready: 600 training and 200 test images." in texts(app)


def test_predict_reads_the_drawn_digit(with_data, canvas):
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    prediction = [m for m in app.metric if m.label == "Prediction"]
    assert prediction and prediction[0].value == "7"


def test_predict_says_when_nothing_is_drawn(with_data, canvas):
    app = open_page("app_pages/predict.py")
    assert "Nothing drawn yet." in texts(app)
    canvas.png = encode(seven(ink=(0, 0, 0, 255)))  # black on black: an empty-looking canvas
    app.run()
    assert "Nothing drawn" in texts(app)
    assert [m.value for m in app.metric if m.label == "Prediction"] == ["—"]


def test_upload_predicts_each_file_and_explains_bad_ones(with_data, canvas):
    app = open_page("app_pages/predict.py")
    app.file_uploader(key="uploads").set_value(
        [("one.png", encode(one()), "image/png"), ("junk.png", b"not an image", "image/png")]
    )
    app.run()
    next(b for b in app.button if b.label == "Predict Digit").click()
    app.run()
    assert [m.value for m in app.metric if m.label == "Prediction"] == ["—", "1"]  # Draw tab, then upload
    assert any("junk.png" in e.value and "not an image" in e.value for e in app.error)


def test_evaluate_shows_accuracy_and_mistakes(with_data, canvas):
    app = open_page("app_pages/evaluate.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Accuracy"].endswith("%") and metrics["Mistakes"].endswith("of 200")
    app.selectbox(key="true_digit").set_value(3)
    app.run()
    assert not app.exception


def test_a_short_training_run_completes_and_can_be_used(with_data, canvas, models):
    app = open_page("app_pages/train.py")
    app.number_input(key="epochs-mlp").set_value(1)
    app.select_slider(key="batch-mlp").set_value(64)
    next(b for b in app.button if b.label == "Start training").click()
    app.run()
    job = training_slot().job
    job.join(timeout=TIMEOUT)
    app.run()
    assert not app.exception and "Training finished" in texts(app)
    new = job.snapshot().checkpoint
    assert new.startswith(str(models)) and len(app.get("plotly_chart")) == 2
    assert any(b.label == "Use as active model" for b in app.button)  # switching: see test_browser


def test_stop_ends_the_run_within_a_second_and_keeps_the_partial_model(with_data, canvas):
    app = open_page("app_pages/train.py")
    app.radio[0].set_value("cnn").run()
    app.number_input(key="epochs-cnn").set_value(50)
    next(b for b in app.button if b.label == "Start training").click()
    app.run()
    job = training_slot().job
    while not job.snapshot().epochs:  # one finished epoch, so there is a model to keep
        job.join(timeout=0.05)
    app.run()
    next(b for b in app.button if b.label == "Stop").click()
    app.run()
    stopped_at = time.perf_counter()
    job.join(timeout=STOP_WITHIN_S)
    assert not job.running and time.perf_counter() - stopped_at < STOP_WITHIN_S
    app.run()
    assert "stopped early; the partial model was saved" in texts(app)
