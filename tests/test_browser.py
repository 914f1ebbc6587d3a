"""End to end in headless Chromium: `streamlit run Home.py`, then draw, upload and train like a user."""

import os
import re
import shutil
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from bench.app_latency import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, draw_and_time, measure, serve_app
from core.checkpoint import SHIPPED_MODELS_DIR
from tests.conftest import ROOT
from tests.drawings import encode, one

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "tests" / "artifacts"
WAIT_MS = 30_000


def _serve_shipped_models(data_dir, tmp_path_factory):
    """The app on the tiny MNIST with a copy of the shipped models."""
    models = tmp_path_factory.mktemp("app") / "models"
    shutil.copytree(SHIPPED_MODELS_DIR, models)
    env = {"MNIST_DATA_DIR": str(data_dir), "MNIST_MODELS_DIR": str(models)}
    return serve_app(env, tmp_path_factory.mktemp("log") / "streamlit.log")


@pytest.fixture(scope="module")
def server(tiny_data_dir, tmp_path_factory):
    with _serve_shipped_models(tiny_data_dir, tmp_path_factory) as url:
        yield url


@pytest.fixture
def training_server(tiny_data_dir, tmp_path_factory):
    # A model trained on the tiny set can score 100 % on its tiny test split and so become every new
    # session's default: training gets a server of its own, so that other tests see the shipped models.
    with _serve_shipped_models(tiny_data_dir, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it with apt")
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def open_app(page, url: str, path: str = "") -> float:
    started = time.perf_counter()
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", level=1).first.wait_for(timeout=WAIT_MS)
    return time.perf_counter() - started


def expect_prediction(page, digit: str) -> None:
    tab = page.get_by_role("tabpanel")  # the open tab: the other one has its own metric
    metric = tab.locator('[data-testid="stMetric"]').filter(has_text="Prediction").first
    expect(metric.locator('[data-testid="stMetricValue"]')).to_have_text(digit, timeout=WAIT_MS)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_home_renders(server, page):
    seconds = open_app(page, server)
    print(f"Home rendered {seconds:.2f} s after navigation")
    assert page.get_by_role("heading", name="MNIST Digit Recognizer").is_visible()
    shot(page, "home")


def test_drawing_a_seven_with_the_mouse(server, page):
    open_app(page, server, "predict")
    page.get_by_text("Nothing drawn yet.").wait_for(timeout=WAIT_MS)
    shown_after = draw_and_time(page, "7")  # resolves only once the metric reads 7
    expect_prediction(page, "7")
    expect(page.get_by_text("Nothing drawn yet.")).to_be_hidden(timeout=WAIT_MS)  # the run has finished
    stages = page.locator('[data-testid="stImage"] img').first  # preprocessing stages and saliency
    expect(stages).to_be_visible(timeout=WAIT_MS)
    assert stages.evaluate("img => img.decode().then(() => img.naturalWidth)", timeout=WAIT_MS) > 0
    print(f"mouse-up to prediction shown: {shown_after:.0f} ms")
    shot(page, "predict-draw")


def test_uploading_a_png(server, page, tmp_path):
    image = tmp_path / "one.png"
    image.write_bytes(encode(one()))
    open_app(page, server, "predict")
    page.get_by_role("tab", name="Upload").click()
    page.locator('input[type="file"]').set_input_files(str(image))
    page.get_by_role("button", name="Predict Digit").click()
    expect_prediction(page, "1")
    shot(page, "predict-upload")


def test_training_to_the_end_and_using_the_model(training_server, page):
    open_app(page, training_server, "train")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Training finished").wait_for(timeout=WAIT_MS)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=WAIT_MS)  # loss and accuracy
    shot(page, "train")
    page.get_by_role("button", name="Use as active model").click()
    picker = page.get_by_role("combobox", name="Active model")
    expect(picker).to_have_value(re.compile(r"^mlp-\d{8}-\d{6} \(MLP, "), timeout=WAIT_MS)


def test_the_latency_bench_draws_and_reports(server, browser):
    results = measure(browser, server, strokes=2, pages=1)
    assert results["strokes"] == 2
    assert results["first_stroke_ms_median"] > 0 and results["later_strokes_ms_median"] > 0
