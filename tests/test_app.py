"""AppTests: every page, with and without the dataset; Predict with st_canvas patched."""

import dataclasses
import json
import os
import shutil
import sys
import time
import types
from collections import Counter

import pytest
import torch
from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest

import core.data
import core.images
import core.numbers.read
from app import cache
from app.cache import training_queue
from app.show import STAGE_CAPTIONS, WHY_CAPTION, WHY_TITLE
from core.access import LOCAL
from core.catalog import delete_checkpoint, list_checkpoints
from core.checkpoint import load_checkpoint
from core.config import READER_MINUTES
from core.corrections import add_example, example_from_image, list_examples
from core.corrections_zip import zip_bytes
from core.data import load_split
from core.digits import export
from core.digits.evaluate import evaluate
from core.images import MAX_FILE_BYTES, open_image
from core.numbers.read import read_number
from core.numbers.reader import STRIDE, load_reader
from core.numbers.train import ReaderTrainConfig
from core.paths import SHIPPED_MODELS_DIR
from core.preprocess import DOT
from core.runs.jobs import FAILED, STOPPED
from core.store import blobs as stored
from core.store.engine import CONNECT_TIMEOUT_S, STORE_URL_ENV
from core.store.engine import CORRECTIONS_DB_ENV as DB_ENV
from tests.conftest import (
    ROOT,
    STOP_WITHIN_S,
    TINY_TEST,
    end_training,
    forget_engine,
    save_untrained_mlp,
    start_postgres,
    store_reader,
    wait_until,
)
from tests.drawings import encode, number, one, pen, seven

NO_ARROW = Metric.MetricDirection.NONE
GALLERY_SIZE = 24  # mistakes the Evaluate page shows
HOME_SAMPLES = 20  # test digits Home shows (app_pages/home.py, a page script: not imported)
PAGES = [
    "app_pages/home.py", "app_pages/train.py", "app_pages/evaluate.py", "app_pages/predict.py",
    "app_pages/inside.py", "app_pages/models.py", "app_pages/my_digits.py", "app_pages/class_view.py",
]  # fmt: skip
TIMEOUT = 60


STROKE = {"type": "path", "path": [["M", 70, 50], ["L", 210, 50]]}  # what fabric.js sends, shortened


class FakeCanvas:
    """Stands in for streamlit_drawable_canvas: returns a fixed drawing as the canvas PNG, and keeps
    the initial drawing the page asked for (what Undo and Clear put on the real canvas)."""

    def __init__(self):
        self.png: bytes | None = None
        self.initial: dict[str, dict | None] = {}  # canvas key -> its initial drawing
        self.module = types.SimpleNamespace(st_canvas=self.st_canvas)

    def st_canvas(self, **kwargs):
        assert kwargs["return_image_data"] and (kwargs["width"], kwargs["height"]) in ((280, 280), (700, 220))
        self.initial[kwargs["key"]] = kwargs["initial_drawing"]
        objects = [STROKE, STROKE] if self.png else []
        return types.SimpleNamespace(image_bytes=self.png, json_data={"objects": objects})


@pytest.fixture(autouse=True)
def fresh_training_queue():
    """Each test gets the server's training slot new, and leaves no run or waiting child behind."""
    training_queue.clear()
    yield
    end_training(training_queue())
    training_queue.clear()


@pytest.fixture
def canvas(monkeypatch):
    fake = FakeCanvas()
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake.module)
    return fake


@pytest.fixture
def models(tmp_path, monkeypatch):
    """Where this test's trained models (and corrections) go; the shipped models are listed from
    models/ as always."""
    folder = tmp_path / "trained"
    monkeypatch.setenv("MNIST_MODELS_DIR", str(folder))
    monkeypatch.setenv(DB_ENV, str(tmp_path / "corrections.sqlite"))
    return folder


@pytest.fixture
def store(tmp_path, models):
    return tmp_path / "corrections.sqlite"


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
    assert picker.options == ["CNN · 99.57% · shipped", "MLP · 98.55% · shipped"]


TITLES = {"app_pages/home.py": "MNIST Digit Recognizer", "app_pages/train.py": "Train",
          "app_pages/my_digits.py": "My digits", "app_pages/class_view.py": "Class"}  # fmt: skip


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


def test_home_offers_the_download_it_mentions(without_data, canvas, offline_mirror):
    app = open_page("app_pages/home.py")
    button(app, "Download MNIST (about 11 MB)").click()
    app.run()
    assert not app.exception and len(offline_mirror) == 4
    assert "MNIST ready: 600 training and 200 test images." in texts(app)


def test_an_offline_download_fails_with_one_clean_message(without_data, canvas, monkeypatch, tmp_path):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/", "http://127.0.0.1:9/"])  # closed port
    app = open_page("app_pages/train.py")
    button(app, "Download MNIST (about 11 MB)").click()
    app.run()
    assert [e.value for e in app.error] == [app.error[0].value] and "Could not download MNIST" in app.error[
        0
    ].value
    assert not app.get("progress") and "Downloading" not in texts(app)
    assert not (tmp_path / "no-data-here").exists()  # no empty folders left behind


def test_a_download_that_fails_in_any_way_is_one_plain_line(without_data, canvas, monkeypatch):
    def fetch(*_):
        raise ImportError("cannot import name 'MNIST' from 'torchvision.datasets'")

    monkeypatch.setattr(core.data, "_fetch_archive", fetch)
    app = open_page("app_pages/home.py")
    button(app, "Download MNIST (about 11 MB)").click()
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "Could not download MNIST: cannot import name 'MNIST' from 'torchvision.datasets'."
    ]


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
    if page not in (
        "app_pages/predict.py",
        "app_pages/models.py",
        "app_pages/my_digits.py",
        "app_pages/class_view.py",
    ):  # no MNIST needed
        assert "MNIST is not on this server yet" in texts(app)


def test_home_shows_the_model_card_and_samples(with_data, canvas):
    app = open_page("app_pages/home.py")
    assert app.title[0].value == "MNIST Digit Recognizer"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Architecture"] == "CNN" and metrics["Test accuracy"] == "99.57%"
    assert "MNIST ready: 600 training and 200 test images." in texts(app)
    test_labels = load_split(False, os.environ["MNIST_DATA_DIR"]).labels[:HOME_SAMPLES].tolist()
    assert sorted(gallery(app)) == sorted(str(label) for label in test_labels)  # the samples, in columns
    assert [m.delta for m in app.metric if m.delta] == ["conv 16-32-64, 128", "2026-11-26 02:46"]
    assert all(m.proto.direction == NO_ARROW for m in app.metric)  # facts, not changes


@pytest.mark.parametrize("width", [5, 18, 30])
def test_predict_reads_a_short_one_as_one(with_data, canvas, width):
    canvas.png = encode(pen([(140, 110), (140, 170)], width))  # 60 px: a fifth of the canvas
    app = open_page("app_pages/predict.py")
    assert predictions(app) == ["1"]
    assert all(m.proto.direction == NO_ARROW for m in app.metric)


def test_predict_reads_the_drawn_digit(with_data, canvas):
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    prediction = [m for m in app.metric if m.label == "Prediction"]
    assert prediction and prediction[0].value == "7"
    assert " · ".join(STAGE_CAPTIONS) in gallery(app)  # the preprocessing stages


def test_predict_shows_why_only_once_asked(with_data, canvas):
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    why = WHY_CAPTION.format(digit=7)
    assert WHY_TITLE in [e.label for e in app.expander] and why not in gallery(app)
    app.session_state["canvas-why"] = True  # what opening the expander sends
    app.run()
    assert why in gallery(app)


def test_predict_says_when_nothing_is_drawn(with_data, canvas):
    app = open_page("app_pages/predict.py")
    assert "Nothing drawn yet." in texts(app)
    canvas.png = encode(seven(ink=(0, 0, 0, 255)))  # black on black: an empty-looking canvas
    app.run()
    assert "Nothing drawn" in texts(app)
    assert [m.value for m in app.metric if m.label == "Prediction"] == ["—"]


def predictions(app: AppTest) -> list[str]:
    return [m.value for m in app.metric if m.label == "Prediction"]


def test_predict_says_a_dot_is_not_a_digit(with_data, canvas):
    canvas.png = encode(pen([(140, 140)]))  # a single click of the pen
    app = open_page("app_pages/predict.py")
    assert f"Not a digit: {DOT}." in texts(app) and predictions(app) == ["—"]


def button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def test_undo_and_clear_put_the_drawing_back_on_the_canvas(with_data, canvas):
    app = open_page("app_pages/predict.py")
    assert button(app, "Undo").disabled and button(app, "Clear").disabled  # nothing drawn yet
    canvas.png = encode(seven())
    app.run()
    button(app, "Undo").click()
    app.run()
    assert canvas.initial["canvas"] == {"objects": [STROKE], "revision": 1}  # the last stroke taken off
    button(app, "Clear").click()
    app.run()
    assert canvas.initial["canvas"] == {"objects": [], "revision": 2}  # a new revision: the canvas reloads


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


def upload(app: AppTest, *files: tuple[str, bytes]) -> None:
    app.file_uploader(key="uploads").set_value([(name, data, "image/png") for name, data in files])
    app.run()
    button(app, "Predict Digit").click()
    app.run()


def test_uploads_of_the_same_name_are_each_predicted(with_data, canvas):
    app = open_page("app_pages/predict.py")
    upload(app, ("image.png", encode(one())), ("image.png", encode(seven())))  # as phones name photos
    assert not app.exception and predictions(app) == ["—", "1", "7"]


def test_a_blank_upload_is_told_no_digit_was_found(with_data, canvas):
    app = open_page("app_pages/predict.py")
    upload(app, ("paper.png", encode(seven(ink=(0, 0, 0, 255)))))  # black on black: nothing there
    assert "No digit found: the image looks blank." in texts(app) and "draw a digit" not in texts(app)


def test_a_file_over_the_limit_is_refused_with_its_reason_in_plain_sight(with_data, canvas):
    app = open_page("app_pages/predict.py")
    upload(app, ("huge.png", encode(one()) + bytes(MAX_FILE_BYTES)))
    assert any("huge.png" in e.value and "larger than 20 MB" in e.value for e in app.error)


def gallery(app: AppTest) -> list[str]:
    """The captions of the images on the page."""
    return [caption for image in app.get("image") for caption in (i.caption for i in image.proto.imgs)]


def test_evaluate_shows_the_report_its_filters_and_gallery(with_data, canvas, tiny_data_dir):
    report = evaluate(load_checkpoint(SHIPPED_MODELS_DIR / "cnn.pt").model, load_split(False, tiny_data_dir))
    app = open_page("app_pages/evaluate.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Accuracy"] == f"{report.accuracy:.2f}%" and metrics["Loss"] == f"{report.loss:.4f}"
    assert metrics["Mistakes"] == f"{len(report.mistakes)} of 200"
    assert len(report.mistakes) > GALLERY_SIZE  # the shipped CNN cannot read the tiny set's bars
    assert f"Showing the {GALLERY_SIZE} most confident of {len(report.mistakes)} mistakes." in texts(app)
    table = app.dataframe[0].value
    assert list(table["recall"]) == pytest.approx([c.recall * 100 for c in report.per_class])
    assert list(table["support"]) == [c.support for c in report.per_class]
    assert "%.2f%%" in str(app.dataframe[0].proto)  # precision, recall and F1 with two decimals each

    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    cells = figure["data"][0]  # one square per (true, predicted) pair, the count as its data
    assert cells["type"] == "scatter" and cells["marker"]["symbol"] == "square"
    assert cells["customdata"] == [n for row in report.confusion for n in row]

    (true, said), _ = Counter((m.label, m.predicted) for m in report.mistakes).most_common(1)[0]
    app.selectbox(key="true_digit").set_value(true).run()
    truly = [m for m in report.mistakes if m.label == true]  # any predicted digit yet
    assert gallery(app) == [f"true {true} → {m.predicted}" for m in truly[:GALLERY_SIZE]]
    app.selectbox(key="predicted_digit").set_value(said).run()
    wanted = [m for m in report.mistakes if (m.label, m.predicted) == (true, said)]
    assert gallery(app) == [f"true {true} → {said}" for _ in wanted[:GALLERY_SIZE]]
    top = "  \n".join(f"{digit}: {p:.1%}" for digit, p in wanted[0].top)
    assert top.startswith(f"{said}: {wanted[0].confidence:.1%}") and top in texts(app)

    button(app, "Why?").click().run()  # the most confident such mistake opens in a dialog
    assert not app.exception
    assert {f"pixels for {said} (said)", f"pixels for {true} (true)"} <= set(gallery(app))
    assert f"Test image {wanted[0].index}: a **{true}**, read as **{said}**." in texts(app)

    app.selectbox(key="predicted_digit").set_value(true).run()
    assert gallery(app) == [] and "No mistakes match this filter." in texts(app)


def test_a_short_training_run_completes_and_can_be_used(with_data, canvas, models, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a GPU is offered first ...
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100 80GB HBM3")
    app = open_page("app_pages/train.py")
    app.selectbox(key="device").set_value(next(d for d in app.selectbox(key="device").options if d == "CPU"))
    app.number_input(key="hidden-mlp").set_value(24)
    app.number_input(key="epochs-mlp").set_value(1)
    app.select_slider(key="batch-mlp").set_value(64)
    augmentation = app.selectbox(key="aug-mlp")
    assert "pen" in augmentation.options and "even pen" in augmentation.help
    augmentation.set_value("pen")
    next(b for b in app.button if b.label == "Start training").click()
    app.run()
    job = training_queue().job
    job.join(timeout=TIMEOUT)
    app.run()
    assert not app.exception and "Training finished" in texts(app)
    new = job.snapshot().checkpoint
    assert new.startswith("store:") and len(app.get("plotly_chart")) == 2  # trained into the store
    trained = load_checkpoint(new)
    assert trained.train_config["augment"] == "pen" and trained.model_config.hidden == 24
    assert trained.train_config["device"] == "cpu"  # ... and the CPU chosen is what trained
    assert any(b.label == "Use as active model" for b in app.button)  # switching: see test_browser
    assert [b.proto.label for b in app.get("download_button")] == ["Download checkpoint"]
    accuracy = json.loads(app.get("plotly_chart")[1].proto.spec)
    assert accuracy["layout"]["xaxis"]["dtick"] == 1  # whole epochs, never 1.5
    train, test = (trace["line"]["color"] for trace in accuracy["data"])
    assert train != test


def test_the_learning_rate_steps_by_a_thousandth(with_data, canvas):
    app = open_page("app_pages/train.py")
    assert app.number_input(key="lr-mlp").step == 0.001


def test_stop_ends_the_run_and_keeps_the_partial_model(with_data, canvas):
    """The button stops the run (how promptly, within a batch: test_core_train) and the page says so."""
    app = open_page("app_pages/train.py")
    app.radio[0].set_value("cnn").run()
    app.number_input(key="epochs-cnn").set_value(50)
    next(b for b in app.button if b.label == "Start training").click()
    app.run()
    job = training_queue().job
    assert not any(b.label == "Start training" for b in app.button)  # while the run lasts, it queues
    assert not button(app, "Queue training").disabled
    wait_until(lambda: job.snapshot().epochs, "a finished epoch, so that there is a model to keep")
    app.run()
    next(b for b in app.button if b.label == "Stop").click()
    app.run()
    job.join(timeout=STOP_WITHIN_S)
    snap = job.snapshot()
    assert snap.status == STOPPED and len(snap.epochs) < 50
    assert load_checkpoint(snap.checkpoint).metrics["stopped"] is True
    app.run()
    assert "stopped early; the partial model was saved" in texts(app)


def test_a_failed_run_shows_why(with_data, canvas, tiny_data_dir, tmp_path, monkeypatch):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_data_dir, damaged)
    images = damaged / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # present, so the page offers Start; cut short
    monkeypatch.setenv("MNIST_DATA_DIR", str(damaged))
    app = open_page("app_pages/train.py")
    button(app, "Start training").click().run()
    training_queue().job.join(timeout=TIMEOUT)
    app.run()
    assert [e.value for e in app.error] == [training_queue().job.snapshot().error]
    assert "train-images-idx3-ubyte" in app.error[0].value and "Training finished" not in texts(app)


def test_a_run_can_be_stopped_from_another_session_and_a_second_start_waits_its_turn(with_data, canvas):
    """A reload or a second tab is a new session: locally, where nobody signs in, it may stop the run.
    A Start pressed on a page drawn before the run began queues a run, which can be cancelled."""
    stale = open_page("app_pages/train.py")  # drawn before the run: its Start is enabled
    starter = open_page("app_pages/train.py")
    starter.radio[0].set_value("cnn").run()
    starter.number_input(key="epochs-cnn").set_value(50)
    button(starter, "Start training").click().run()
    job = training_queue().job
    button(stale, "Start training").click().run()
    assert "Your run waits for the one training now: number 1 of 1 in the queue." in texts(stale)
    assert training_queue().job is job and len(training_queue().waiting) == 1
    button(starter, "Queue training").click().run()  # drawn before the run was queued: told why not
    assert "Your run is already waiting (number 1 in the queue)." in [w.value for w in starter.warning]
    assert len(training_queue().waiting) == 1
    reloaded = open_page("app_pages/train.py")  # the same person after a reload
    assert button(reloaded, "Queue training").disabled  # one waiting run each
    button(reloaded, "Cancel my waiting run").click().run()
    assert training_queue().waiting == [] and not button(reloaded, "Queue training").disabled
    button(reloaded, "Stop").click().run()
    job.join(timeout=STOP_WITHIN_S)
    assert job.snapshot().status in (STOPPED, FAILED)  # FAILED: stopped before the first epoch


@pytest.mark.parametrize("page", PAGES)
def test_a_checkpoint_without_an_accuracy_does_not_break_any_page(with_data, canvas, models, page):
    save_untrained_mlp(models / "unrated.pt", metrics={})
    app = open_page(page)
    assert any(label.startswith("MLP · — · ") for label in app.selectbox(key="model_path").options)


def test_a_model_that_cannot_be_read_any_more_is_explained(with_data, canvas, models):
    save_untrained_mlp(models / "mine.pt", metrics={"test_accuracy": 100.0})  # the most accurate: the default
    app = open_page("app_pages/predict.py")
    stamp = (models / "mine.pt").stat().st_mtime
    (models / "mine.pt").write_bytes(b"damaged on disk")
    os.utime(models / "mine.pt", (stamp, stamp))  # same time stamp: the cached listing still has it
    cache._checkpoint.clear()  # as when the model cache (8 entries) has let it go
    app.run()
    assert not app.exception
    assert any(e.value.startswith("Cannot use the selected model: ") for e in app.error)


@pytest.mark.parametrize("page", ["app_pages/predict.py", "app_pages/inside.py", "app_pages/evaluate.py"])
def test_a_model_deleted_in_another_session_is_replaced_by_the_default_and_said(
    with_data, canvas, models, page
):
    save_untrained_mlp(models / "mine.pt", metrics={"test_accuracy": 50.0})
    canvas.png = encode(seven())
    app = open_page(page)
    app.selectbox(key="model_path").set_value(str(models / "mine.pt")).run()
    assert "`mine.pt`" in texts(app)
    (models / "mine.pt").unlink()  # the Models page of another session deletes it
    app.run()
    assert not app.exception and app.selectbox(key="model_path").value.endswith("cnn.pt")
    said = "`mine.pt` is no longer on this server (it was deleted): using the default, `cnn.pt`."
    assert [w.value for w in app.sidebar.warning] == [said]
    page_texts = texts(app).replace(said, "")
    assert "`mine.pt`" not in page_texts and "`cnn.pt`" in page_texts
    app.run()
    assert not app.sidebar.warning  # said once


def test_an_unreadable_file_dropped_in_the_folder_leaves_the_active_model_alone(with_data, canvas, models):
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    models.mkdir(parents=True, exist_ok=True)
    (models / "bad.pt").write_bytes(os.urandom(2048))
    app.run()
    assert app.selectbox(key="model_path").value.endswith("cnn.pt") and predictions(app) == ["7"]
    assert len(app.selectbox(key="model_path").options) == 2  # the bad file is not offered


def test_low_confidence_is_flagged_on_predict(with_data, canvas, models):
    save_untrained_mlp(
        models / "untrained.pt", metrics={"test_accuracy": 100.0}
    )  # the default, never confident
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    assert "Low confidence: the digit may be unclear." in texts(app)


def test_models_page_lists_compares_activates_and_deletes(with_data, canvas, models):
    trained, tuned = models / "mlp-trained.pt", models / "mlp-tuned.pt"
    save_untrained_mlp(trained, {"test_accuracy": 11.0, "train_seconds": 1.5})
    save_untrained_mlp(tuned, {"test_accuracy": 12.0, "finetune": {"finetuned_from": "mlp.pt"}})
    app = open_page("app_pages/models.py")
    table = app.dataframe[0].value
    assert dict(zip(table["name"], table["origin"], strict=True)) == {
        "cnn.pt": "shipped", "mlp.pt": "shipped", "mlp-tuned.pt": "fine-tuned from mlp.pt",
        "mlp-trained.pt": "trained here",
    }  # fmt: skip
    assert list(table.columns[:3]) == ["name", "origin", "test accuracy"]  # in view on a narrow screen
    tuned.unlink()
    app.run()
    table = app.dataframe[0].value
    assert list(table["model"]) == ["CNN conv 16-32-64, 128", "MLP 784-128-10", "MLP 784-8-10"]
    assert list(table["test accuracy"]) == pytest.approx([99.57, 98.55, 11.0], abs=0.01)
    assert list(table["train s"])[2] == 1.5 and list(table["parameters"])[2] == 784 * 8 + 8 + 8 * 10 + 10
    assert list(table["file MB"]) == pytest.approx([p.stat().st_size / 2**20 for p in (
        SHIPPED_MODELS_DIR / "cnn.pt", SHIPPED_MODELS_DIR / "mlp.pt", trained)])  # fmt: skip
    assert all(0 < ms < 1000 for ms in table["predict ms"])
    assert "Select rows in the table" in texts(app)

    model = next(s for s in app.selectbox if s.label == "Model")
    assert model.value.endswith("cnn.pt") and button(app, "Delete").disabled  # shipped: protected
    assert button(app, "Active").disabled  # the CNN is already the active model
    model.set_value(str(trained)).run()
    button(app, "Make active").click().run()
    assert app.session_state["model_path"] == str(trained)
    assert app.selectbox(key="model_path").value == str(trained)  # the sidebar follows

    button(app, "Delete").click().run()  # asks first
    assert trained.exists() and "will be removed from this server" in texts(app)
    app.button(key="confirm-delete").click().run()
    assert not app.exception and not trained.exists()
    assert list(app.dataframe[0].value["name"]) == ["cnn.pt", "mlp.pt"]
    assert app.selectbox(key="model_path").value.endswith("cnn.pt")  # back to the most accurate


def open_link(query: dict[str, str], page: str) -> AppTest:
    """What opening a shared link does: a new session whose first run has these query parameters."""
    app = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    app.query_params.update(query)
    app.switch_page(page)  # the link's page is the session's first run
    return app.run()


def test_a_shared_train_link_restores_its_settings_and_the_page_mirrors_them(with_data, canvas):
    link = {"arch": "cnn", "hidden": "64", "epochs": "2", "batch": "512", "lr": "0.003", "augment": "mild",
            "seed": "9", "model": "mlp.pt"}  # fmt: skip
    app = open_link(link, "app_pages/train.py")
    assert not app.exception and not app.warning
    assert app.radio(key="arch").value == "cnn"
    assert {w.label: w.value for w in app.number_input} == {
        "Hidden units / classifier width": 64, "Epochs": 2, "Peak learning rate": 0.003, "Seed": 9,
        "Minutes of training": READER_MINUTES,  # the number reader's, which links do not set
    }  # fmt: skip
    assert app.select_slider(key="batch-cnn").value == 512 and app.selectbox(key="aug-cnn").value == "mild"
    assert app.selectbox(key="model_path").value.endswith("mlp.pt")
    assert dict(app.query_params) == link  # the address bar, unchanged

    app.number_input(key="epochs-cnn").set_value(3)
    button(app, "Share these settings").click().run()
    assert app.query_params["epochs"] == "3"
    shared = app.code[0].value
    assert shared.endswith("?arch=cnn&hidden=64&epochs=3&batch=512&lr=0.003&augment=mild&seed=9&model=mlp.pt")


def test_a_link_with_bad_values_keeps_the_good_ones_and_says_what_it_ignored(with_data, canvas):
    app = open_link(
        {"arch": "mlp", "epochs": "many", "batch": "100", "lr": "0.004", "model": "gone.pt"},
        "app_pages/train.py",
    )
    assert not app.exception
    assert app.number_input(key="epochs-mlp").value == 8 and app.select_slider(key="batch-mlp").value == 256
    assert app.number_input(key="lr-mlp").value == 0.004
    warnings = [w.value for w in app.warning]
    assert "From the link: epochs='many' was ignored: it must be a whole number from 1 to 50." in warnings
    assert any("batch='100' was ignored" in w for w in warnings)
    assert "The link's model `gone.pt` is not on this server: using the default." in warnings
    assert app.selectbox(key="model_path").value.endswith("cnn.pt")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_stored_model_is_listed_used_by_every_page_and_deleted(with_data, canvas, models, request, backend):
    if backend == "postgresql":
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv(STORE_URL_ENV, request.getfixturevalue("postgres_url"))
    history = [{"epoch": 1, "test_accuracy": 100.0, "train_loss": 0.5}]
    save_untrained_mlp(models / "tmp.pt", {"test_accuracy": 100.0, "history": history})
    stored.save("mine.pt", (models / "tmp.pt").read_bytes(), "2026-12-05T01:00:00+00:00")
    (models / "tmp.pt").unlink()
    canvas.png = encode(seven())
    app = open_page("app_pages/models.py")
    assert list(app.dataframe[0].value["name"]) == ["cnn.pt", "mlp.pt", "store:mine.pt"]
    assert app.selectbox(key="model_path").value == "store:mine.pt"  # the most accurate: the default
    for page in ("app_pages/predict.py", "app_pages/evaluate.py", "app_pages/inside.py"):
        app.switch_page(page).run()
        assert not app.exception and "`store:mine.pt`" in texts(app), page
    app.switch_page("app_pages/models.py").run()
    chosen = next(s for s in app.selectbox if s.label == "Model")
    assert chosen.value == "store:mine.pt"
    assert [b.proto.label for b in app.get("download_button")] == ["Download .pt", "Download ONNX"]
    button(app, "Delete").click().run()
    app.button(key="confirm-delete").click().run()
    assert not app.exception and list(app.dataframe[0].value["name"]) == ["cnn.pt", "mlp.pt"]
    assert stored.listing() == []


def test_models_page_without_the_onnx_packages_says_what_to_install(with_data, canvas, monkeypatch):
    monkeypatch.setattr(export, "onnx_available", lambda: False)
    app = open_page("app_pages/models.py")
    onnx = next(b for b in app.get("download_button") if b.proto.label == "Download ONNX")
    assert onnx.proto.disabled and "pip install onnx onnxscript" in onnx.proto.help


def subheaders(app: AppTest) -> list[str]:
    return [h.value for h in app.subheader]


def test_inside_opens_on_the_predict_drawing_and_shows_the_cnn_layers(with_data, canvas):
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    canvas.png = None  # Inside's canvas sends nothing until drawn on: it shows Predict's drawing
    app.switch_page("app_pages/inside.py").run()
    assert not app.exception, app.exception
    assert canvas.initial["inside-canvas"] == {"objects": [STROKE, STROKE], "revision": 0}
    assert predictions(app) == ["7"]
    assert subheaders(app) == [
        "Feature maps", "Units for and against 7", "Map of the test digits", "First-layer filters"
    ]  # fmt: skip
    assert gallery(app)[:3] == ["block 1: 16 maps of 14×14", "block 2: 32 maps of 7×7",
                                       "block 3: 64 maps of 3×3"]  # fmt: skip
    pushes = json.loads(app.get("plotly_chart")[1].proto.spec)["data"][0]
    assert len(pushes["y"]) == 6 and pushes["x"][0] > 0 > pushes["x"][-1]  # strongest for, then against
    spec = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    digits, you = spec["layer"]
    assert len(digits["data"]["values"]) == TINY_TEST and you["data"]["values"][0]["what"] == "your drawing"
    assert len([c for c in gallery(app) if c.startswith("a ")]) == 8  # the nearest test digits


def test_inside_shows_an_mlps_hidden_units_and_their_templates(with_data, canvas):
    canvas.png = encode(seven())
    app = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=TIMEOUT)
    app.session_state["model_path"] = str(SHIPPED_MODELS_DIR / "mlp.pt")
    app.run()
    app.switch_page("app_pages/inside.py").run()
    assert not app.exception, app.exception
    assert subheaders(app)[:2] == ["Hidden layer", "Units for and against 7"]
    assert "What each hidden unit looks for" in subheaders(app)
    hidden = json.loads(app.get("plotly_chart")[1].proto.spec)["data"][0]
    assert sum(v is not None for row in hidden["z"] for v in row) == 128  # a cell per hidden unit
    templates = [c for c in gallery(app) if c.startswith("unit ")]
    assert len(templates) == 6 and float(templates[0].split(": ")[1]) > 0 > float(
        templates[-1].split(": ")[1]
    )
    logit_line = next(c.value for c in app.caption if "plus the bias" in c.value)
    assert "make the logit of 7" in logit_line


def test_inside_without_the_dataset_explains_the_map_and_shows_the_rest(without_data, canvas):
    canvas.png = encode(seven())
    app = open_page("app_pages/inside.py")
    assert predictions(app) == ["7"] and "Units for and against 7" in subheaders(app)
    assert "The map needs MNIST's test digits" in texts(app) and "MNIST is not on this server yet" in texts(
        app
    )
    assert not app.get("vega_lite_chart")


def test_inside_reads_an_upload_instead_of_the_drawing_and_refuses_a_broken_one(with_data, canvas):
    canvas.png = encode(seven())
    app = open_page("app_pages/inside.py")
    assert predictions(app) == ["7"]
    app.file_uploader(key="inside-upload").set_value(("one.png", encode(one()), "image/png")).run()
    assert predictions(app) == ["1"] and "Units for and against 1" in subheaders(app)
    app.file_uploader(key="inside-upload").set_value(("broken.png", b"not an image", "image/png")).run()
    assert not app.exception and any("broken.png" in e.value for e in app.error)
    assert predictions(app) == ["—"] and "Units for and against" not in " ".join(subheaders(app))


def _train_a_small_reader(monkeypatch):
    """A reader trained from the Train page as a person does, writing a few numbers and training for
    seconds (it then reads almost none): (the page after the run, the run)."""
    small = dataclasses.replace(
        ReaderTrainConfig(), numbers=60, val_numbers=20, test_numbers=20, workers=1, epochs=2
    )
    defaults = tuple(getattr(small, field.name) for field in dataclasses.fields(small))
    monkeypatch.setattr(ReaderTrainConfig.__init__, "__defaults__", defaults)
    app = open_page("app_pages/train.py")
    app.number_input(key="reader-minutes").set_value(0.1)
    button(app, "Train a number reader").click().run()
    job = training_queue().job
    job.join(timeout=TIMEOUT)
    app.run()
    return app, job


def test_train_trains_a_number_reader_and_number_mode_reads_with_it(with_data, canvas, models, monkeypatch):
    app, job = _train_a_small_reader(monkeypatch)
    assert not app.exception and "Training finished" in texts(app)
    new = job.snapshot().checkpoint
    assert new.startswith("store:reader-") and new not in [
        i.path for i in list_checkpoints()
    ]  # no digit model
    charts = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in app.get("plotly_chart")]
    assert charts == ["CTC loss (smoothed)", "Numbers read exactly, per round (%)"]
    reader, metrics = load_reader(new)
    best = max(r["val_accuracy"] for r in metrics["rounds"])
    assert len(metrics["rounds"]) == 2 and f"Kept: the round that read {best:.1f}%" in texts(app)
    button(app, "Read numbers with it").click().run()
    canvas.png = encode(number("12"))
    app.switch_page("app_pages/predict.py").run()
    expected = read_number(load_checkpoint(SHIPPED_MODELS_DIR / "cnn.pt").model, canvas.png, reader).number
    assert [m.value for m in app.metric if m.label == "Number"] == [expected or "—"]


def test_models_page_lists_the_number_readers_and_number_mode_reads_with_the_one_chosen(
    with_data, canvas, store
):
    store_reader("reader-mine.pt", "2026-12-05T10:00:00+00:00", 12.5)
    app = open_page("app_pages/models.py")
    table = app.dataframe[1].value  # under the digit models'
    assert list(table["name"]) == ["number-reader.pt", "store:reader-mine.pt"]
    assert list(table["origin"]) == ["shipped", "trained here"]
    assert list(table["numbers read exactly"]) == pytest.approx([load_reader()[1]["test_accuracy"], 12.5])
    chosen = next(s for s in app.selectbox if s.label == "Number reader")
    assert chosen.value.endswith("number-reader.pt") and button(app, "Reading numbers").disabled
    assert button(app, "Delete reader").disabled  # the shipped one: protected
    chosen.set_value("store:reader-mine.pt").run()
    button(app, "Read numbers with it").click().run()
    assert button(app, "Reading numbers").disabled

    canvas.png = encode(number("47", gap=-40))  # touching: read by the reader alone
    app.switch_page("app_pages/predict.py").run()
    cnn = load_checkpoint(SHIPPED_MODELS_DIR / "cnn.pt").model
    mine = read_number(cnn, canvas.png, load_reader("store:reader-mine.pt")[0]).number
    assert read_number(cnn, canvas.png).number == "47" != mine  # the untrained reader reads otherwise
    assert [m.value for m in app.metric if m.label == "Number"] == [mine or "—"]
    assert "Read with the number reader `store:reader-mine.pt` (Models changes it)." in texts(app)

    app.switch_page("app_pages/models.py").run()
    button(app, "Delete reader").click().run()  # asks first
    assert "`store:reader-mine.pt` will be removed from this server" in texts(app)
    app.button(key="confirm-delete").click().run()
    assert not app.exception and list(app.dataframe[1].value["name"]) == ["number-reader.pt"]
    app.switch_page("app_pages/predict.py").run()  # the session's reader is gone: the shipped one reads
    assert any("The number reader you chose cannot be used" in w.value for w in app.warning)
    assert [m.value for m in app.metric if m.label == "Number"] == [read_number(cnn, canvas.png).number]
    assert "Read with the number reader" not in texts(app)


def test_inside_shows_the_number_readers_probabilities_per_column_under_a_number(with_data, canvas):
    canvas.png = encode(number("2047"))
    app = open_page("app_pages/inside.py")
    assert not app.exception, app.exception
    assert [m.value for m in app.metric if m.label == "Number"] == ["2047"]
    line, columns = json.loads(app.get("plotly_chart")[-1].proto.spec)["data"]
    assert len(columns["y"]) == 11 and columns["y"][-1] == "blank"  # a row per digit, and blank
    assert len(columns["x"]) == len(line["z"][0]) // STRIDE  # a column per STRIDE px of the line
    assert all(abs(sum(row[i] for row in columns["z"]) - 1) < 1e-3 for i in range(len(columns["x"])))
    canvas.png = None
    app.run()
    assert "Write a number, digits side by side: the reader's columns appear under it." in texts(app)


def test_right_and_wrong_save_the_drawing_to_my_digits(with_data, canvas, store):
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    button(app, "Right").click().run()
    assert "Saved to My digits as a 7." in texts(app)
    app.get("button_group")[0].set_value(4).run()  # "Wrong? It is a" 4
    assert "Saved to My digits as a 4." in texts(app)
    stored = list_examples(store, by=LOCAL)
    assert [(e.label, e.predicted, e.source, e.checkpoint) for e in stored] == [
        (7, 7, "canvas", "cnn.pt"), (4, 7, "canvas", "cnn.pt")
    ]  # fmt: skip
    assert stored[0].png == canvas.png and stored[0].confidence > 0.9
    button(app, "Right").click().run()
    assert "Already in My digits as a 7." in texts(app) and len(list_examples(store, by=LOCAL)) == 2


def test_an_upload_marked_wrong_keeps_its_results_and_is_saved(with_data, canvas, store):
    app = open_page("app_pages/predict.py")
    upload(app, ("one.png", encode(one())))
    app.get("button_group")[0].set_value(7).run()
    assert predictions(app) == ["—", "1"]  # the results stay after the click
    assert [(e.label, e.predicted, e.source) for e in list_examples(store, by=LOCAL)] == [(7, 1, "upload")]


def test_a_right_or_wrong_click_does_not_read_the_uploads_again(with_data, canvas, store, monkeypatch):
    opened = []

    def counting_open_image(source):
        if isinstance(source, bytes):  # a file decoded, not an image already open
            opened.append(len(source))
        return open_image(source)

    monkeypatch.setattr(core.images, "open_image", counting_open_image)
    app = open_page("app_pages/predict.py")
    first, second = encode(one()), encode(seven())
    upload(app, ("one.png", first), ("seven.png", second))
    assert predictions(app) == ["—", "1", "7"] and opened == [len(first), len(second)]
    button(app, "Right").click().run()  # the first upload's
    assert predictions(app) == ["—", "1", "7"]
    assert opened[2:] == [len(first)]  # read once more, to be saved; neither predicted again
    assert [e.label for e in list_examples(store, by=LOCAL)] == [1]


def test_a_corrupt_store_does_not_stop_predict(with_data, canvas, store):
    store.write_bytes(b"not a database")
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    button(app, "Right").click().run()
    assert not app.exception and predictions(app) == ["7"]
    assert any("Not saved" in e.value and "left as it is" in e.value for e in app.error)
    assert store.read_bytes() == b"not a database"


def test_a_postgresql_store_that_stops_and_comes_back(with_data, canvas, monkeypatch):
    """The server stops while the app runs: Predict and the shipped models go on, teaching and My
    digits say plainly what is wrong and what to check, no page waits past the connect timeout, and
    nothing is half-written when the server is back."""
    server = start_postgres()
    try:
        monkeypatch.setenv(STORE_URL_ENV, server.url())
        canvas.png = encode(seven())
        app = open_page("app_pages/predict.py")
        app.get("button_group")[0].set_value(4).run()
        assert "Saved to My digits as a 4." in texts(app)
        server.stop()
        started = time.monotonic()
        button(app, "Right").click().run()
        assert time.monotonic() - started < CONNECT_TIMEOUT_S + 5
        assert not app.exception and predictions(app) == ["7"]  # Predict goes on
        (error,) = [e.value for e in app.error]
        assert error.startswith("Not saved: cannot use the store") and "check the server and the URL" in error
        app.switch_page("app_pages/my_digits.py").run()
        assert not app.exception and "cannot use the store" in app.error[0].value
        app.switch_page("app_pages/inside.py").run()
        assert not app.exception and "Units for and against 7" in subheaders(app)  # Inside goes on
        app.switch_page("app_pages/models.py").run()  # the shipped models are still listed
        assert not app.exception and list(app.dataframe[0].value["name"]) == ["cnn.pt", "mlp.pt"]
        assert app.warning[0].value.startswith(
            "The models trained here cannot be listed: cannot use the store"
        )
        server.start()
        assert [e.label for e in list_examples(server.url(), by=LOCAL)] == [4]  # nothing half-written
        app.switch_page("app_pages/predict.py").run()
        button(app, "Right").click().run()
        assert "Saved to My digits as a 7." in texts(app)
        assert sorted(e.label for e in list_examples(server.url(), by=LOCAL)) == [4, 7]
    finally:
        forget_engine(server.url())
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def _store_drawings(store, labels: list[int]) -> None:
    for i, label in enumerate(labels):
        add_example(
            example_from_image(encode(pen([(100 + 4 * i, 60), (140, 220)])), label, "canvas", 1, 0.5),
            store,
            by=LOCAL,
        )


def test_my_digits_counts_filters_relabels_deletes_and_exports(with_data, canvas, store):
    app = open_page("app_pages/my_digits.py")
    assert "No digits yet" in texts(app) and "not kept" in texts(app)  # the Community Cloud warning
    _store_drawings(store, [1, 1, 7])
    app.run()
    assert app.metric[0].value == "3"
    assert gallery(app) == ["a 7 · said 1 (50%)", "a 1 · said 1 (50%)", "a 1 · said 1 (50%)"]
    assert "Showing 3 of 3, newest first." in texts(app)
    app.get("button_group")[0].set_value(7).run()  # the filter
    assert gallery(app) == ["a 7 · said 1 (50%)"] and "Showing 1 of 1, newest first." in texts(app)
    newest = list_examples(store, by=LOCAL)[-1].id
    app.selectbox(key=f"relabel-{newest}").set_value(2).run()
    assert [e.label for e in list_examples(store, by=LOCAL)] == [1, 1, 2] and "is now a 2" in texts(app)
    app.get("button_group")[0].set_value("any").run()
    button(app, "Delete").click().run()  # the newest first
    assert [e.label for e in list_examples(store, by=LOCAL)] == [1, 1]
    export = next(b for b in app.get("download_button") if b.proto.label == "Export all as zip")
    assert not export.proto.disabled


def test_my_digits_imports_a_zip_and_refuses_a_bad_one(with_data, canvas, store, tmp_path):
    other = tmp_path / "other.sqlite"
    _store_drawings(other, [3, 5])
    app = open_page("app_pages/my_digits.py")
    app.file_uploader(key="my-digits-import").set_value(
        ("mine.zip", zip_bytes(list_examples(other, by=LOCAL)), "application/zip")
    )
    app.run()
    button(app, "Import").click().run()
    assert "Imported 2, skipped 0" in texts(app) and app.metric[0].value == "2"
    app.file_uploader(key="my-digits-import").set_value(("bad.zip", b"not a zip", "application/zip")).run()
    button(app, "Import").click().run()
    assert any("not a zip" in e.value for e in app.error) and app.metric[0].value == "2"


def test_train_offers_fine_tuning_once_there_are_10_digits_and_reports_before_and_after(
    with_data, canvas, store
):
    _store_drawings(store, [1] * 9)
    app = open_page("app_pages/train.py")
    offer = button(app, "Fine-tune the active model on my digits")
    assert offer.disabled and "needs at least 10 of your digits; you have added 9." in texts(app)
    _store_drawings(store, [7])
    app.run()
    button(app, "Fine-tune the active model on my digits").click().run()
    job = training_queue().job
    job.join(timeout=TIMEOUT)
    app.run()
    assert not app.exception and "Training finished" in texts(app), texts(app)
    assert "Fine-tuned from `cnn.pt` on 10 corrections:" in texts(app)
    table = app.dataframe[0].value
    assert list(table["measured on"]) == [
        "the digits (10, trained on: too few to hold any out)",
        "MNIST test set",
        "added locally (10)",  # each person's: here the one local user
    ]
    assert load_checkpoint(job.snapshot().checkpoint).metrics["finetune"]["corrections"] == 10


def test_number_mode_reads_each_digit_and_flags_none_when_sure(with_data, canvas):
    canvas.png = encode(number("2026"))
    app = open_page("app_pages/predict.py")
    assert [m.value for m in app.metric if m.label == "Number"] == ["2026"]
    digits = [c for c in gallery(app) if " · " in c and "%" in c]
    assert [c.split(" · ")[0] for c in digits] == ["2", "0", "2", "6"] and not any("⚠" in c for c in digits)


def test_number_mode_reads_a_lone_digit_as_draw_does(with_data, canvas):
    canvas.png = encode(seven())
    app = open_page("app_pages/predict.py")
    assert [m.value for m in app.metric if m.label == "Number"] == ["7"] and predictions(app)[0] == "7"
    canvas.png = None
    app.run()
    assert [m.value for m in app.metric if m.label == "Number"] == ["—"]


def test_after_a_reader_run_the_class_page_judges_with_the_digit_model_and_a_deleted_one_is_not_offered(
    with_data, canvas, store, monkeypatch
):
    _store_drawings(store, [1, 1, 7])
    app, job = _train_a_small_reader(monkeypatch)
    assert "This reader reads only" in texts(app)  # told before it is chosen
    app.switch_page("app_pages/class_view.py").run()
    assert not app.exception and not app.error
    assert "What `cnn.pt` gets wrong, by person" in [s.value for s in app.subheader]
    assert "The last run on this server" not in texts(app)  # a reader's run is no class model
    delete_checkpoint(job.snapshot().checkpoint, by=LOCAL)
    app.run()
    assert not app.exception and not app.error
    app.switch_page("app_pages/train.py").run()
    assert "has since been deleted (on Models)" in texts(app)
    assert not app.get("download_button") and not any(b.label == "Read numbers with it" for b in app.button)


def test_a_reader_that_reads_no_digit_says_so_instead_of_nothing_drawn(with_data, canvas, store, monkeypatch):
    canvas.png = encode(number("2026"))
    monkeypatch.setattr(core.numbers.read, "read_lines", lambda reader, lines: [([], torch.zeros(1, 11))])
    app = open_page("app_pages/predict.py")
    assert "read no digit in this ink" in texts(app) and "Nothing drawn" not in texts(app)


def test_an_image_of_several_digits_points_to_number_mode(with_data, canvas):
    canvas.png = encode(number("2026"))
    app = open_page("app_pages/predict.py")
    assert "the **Number** tab reads whole numbers" in texts(app)
    canvas.png = encode(seven())
    app.run()
    assert "the **Number** tab reads whole numbers" not in texts(app)


def test_an_empty_my_digits_filter_says_so(with_data, canvas, store):
    _store_drawings(store, [1, 1])
    app = open_page("app_pages/my_digits.py")
    app.get("button_group")[0].set_value(7).run()
    assert "No 7s among these digits yet" in texts(app) and "Showing 0 of 0" not in texts(app)


def test_the_device_chosen_on_train_is_the_one_the_run_uses(with_data, canvas, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # the page offers a GPU the child lacks
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100 80GB HBM3")
    app = open_page("app_pages/train.py")
    gpu = next(d for d in app.selectbox(key="device").options if "H100" in d)
    app.selectbox(key="device").set_value(gpu)
    app.number_input(key="epochs-mlp").set_value(1)
    button(app, "Start training").click().run()
    job = training_queue().job
    job.join(timeout=TIMEOUT)
    assert job.snapshot().status == FAILED and "cuda" in job.snapshot().error  # it asked for the GPU
