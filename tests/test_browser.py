"""End to end in headless Chromium: `streamlit run Home.py`, then draw, upload and train like a user."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from core.checkpoint import SHIPPED_MODELS_DIR
from tests.conftest import ROOT
from tests.drawings import encode, one

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"
STARTUP_S = 60
WAIT_MS = 30_000
SEVEN_STROKE = [(70, 50), (210, 50), (120, 240)]  # canvas pixels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < STARTUP_S:
        assert process.poll() is None, "streamlit exited during start-up"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture(scope="module")
def server(tiny_data_dir, tmp_path_factory):
    models = tmp_path_factory.mktemp("app") / "models"
    shutil.copytree(SHIPPED_MODELS_DIR, models)
    port = free_port()
    env = {**os.environ, "MNIST_DATA_DIR": str(tiny_data_dir), "MNIST_MODELS_DIR": str(models)}
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(port),
               "--server.address", "127.0.0.1"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        print(f"server healthy after {wait_healthy(url, process):.1f} s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


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
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
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
    canvas = page.locator("canvas").last  # fabric.js draws on its upper canvas
    canvas.wait_for(timeout=WAIT_MS)
    box = canvas.bounding_box()
    (x0, y0), *rest = SEVEN_STROKE
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for x, y in rest:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=25)
    page.mouse.up()
    released = time.perf_counter()
    expect_prediction(page, "7")
    print(f"mouse-up to prediction shown: {1000 * (time.perf_counter() - released):.0f} ms")
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


def test_training_to_the_end_and_using_the_model(server, page):
    open_app(page, server, "train")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Training finished").wait_for(timeout=WAIT_MS)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=WAIT_MS)  # loss and accuracy
    shot(page, "train")
    page.get_by_role("button", name="Use as active model").click()
    picker = page.get_by_role("combobox", name="Active model")
    expect(picker).to_have_value(re.compile(r"^mlp-\d{8}-\d{6} \(MLP, "), timeout=WAIT_MS)
