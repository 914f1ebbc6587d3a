"""python -m docs.screenshots: the README's screenshots, from a real run of the app on the real MNIST.

Needs MNIST_DATA_DIR (the real data) and Debian's Chromium. Models trained here go to a temporary
folder, so the shipped ones stay the defaults.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from bench.app_latency import (
    CHROMIUM,
    CHROMIUM_ARGS,
    click_confusion_cell,
    draw_and_time,
    hover_map_point,
    select_table_rows,
    serve_app,
    touch_stroke,
    visible_canvas,
    write_number,
)
from tests.drawings import DIGIT_STROKES  # the digits the Number browser test writes

DOCS = Path(__file__).resolve().parent
DESKTOP = {"width": 1400, "height": 1250}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
WAIT_MS = 120_000
SEVEN = [(70, 50), (210, 50), (120, 240)]


def _desktop_shot(browser, url: str, path: str, name: str, act) -> None:
    """Open `path` on a desktop-sized page, let act(page) bring it to the state shown, save `name`."""
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{url}/{path}")
    act(page)
    page.wait_for_timeout(1000)  # the charts' transitions
    page.screenshot(path=DOCS / name)
    page.close()


def _drawn_seven(page) -> None:
    page.get_by_text("Nothing drawn yet.").wait_for(timeout=WAIT_MS)
    draw_and_time(page, "7")
    page.locator('[data-testid="stImage"] img').first.wait_for(timeout=WAIT_MS)


def _predict_phone(browser, url: str) -> None:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(f"{url}/predict")
    page.get_by_text("Nothing drawn yet.").wait_for(timeout=WAIT_MS)
    touch_stroke(page, SEVEN)
    page.get_by_text(re.compile("confident")).first.wait_for(timeout=WAIT_MS)
    page.screenshot(path=DOCS / "predict-phone.png")
    context.close()


def _trained(page) -> None:
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Training finished").wait_for(timeout=WAIT_MS)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=WAIT_MS)


def _clicked_cell(page) -> None:
    page.get_by_text("Showing the").wait_for(timeout=WAIT_MS)
    click_confusion_cell(page, 9, 4)  # the shipped CNN's most frequent mistake
    page.get_by_text("Showing all").wait_for(timeout=WAIT_MS)


def _compared(page) -> None:
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=WAIT_MS)
    select_table_rows(page, 2)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=WAIT_MS)


def _inside_seven(page) -> None:
    page.get_by_text("Draw a digit, or upload one").wait_for(timeout=WAIT_MS)
    draw_and_time(page, "7")
    page.get_by_text("Units for and against 7").wait_for(timeout=WAIT_MS)


def _inside_units(page) -> None:
    _inside_seven(page)
    page.get_by_text("Each unit's template under your ink").scroll_into_view_if_needed()
    page.mouse.wheel(0, -600)  # up to the hidden layer: it, then the units for and against, templates


def _inside_map(page) -> None:
    _inside_seven(page)
    hover_map_point(page)


def _number(page) -> None:
    page.get_by_text("Nothing drawn yet.").wait_for(timeout=WAIT_MS)
    page.get_by_role("tab", name="Number").click()
    visible_canvas(page).wait_for(timeout=WAIT_MS)
    write_number(page, "2026", DIGIT_STROKES)
    page.get_by_text(re.compile("6 · ")).wait_for(timeout=WAIT_MS)


def _marked_wrong(page) -> None:
    _drawn_seven(page)
    group = page.get_by_role("tabpanel").locator('[data-testid="stButtonGroup"]')
    group.get_by_role("radio", name="1", exact=True).click()
    page.get_by_text("Saved to My digits").wait_for(timeout=WAIT_MS)
    page.get_by_role("link", name="My digits").click()
    page.get_by_text(re.compile("a 1 · said 7")).wait_for(timeout=WAIT_MS)


DESKTOP_SHOTS = [  # (page, file, what to do first); Train last: its run must not slow the others
    ("predict", "predict-draw.png", _drawn_seven),
    ("evaluate", "evaluate.png", _clicked_cell),
    ("models", "models.png", _compared),
    ("inside", "inside.png", _inside_seven),
    ("inside?model=mlp.pt", "inside-mlp.png", _inside_units),
    ("inside", "inside-map.png", _inside_map),
    ("predict", "predict-number.png", _number),
    ("predict", "my-digits.png", _marked_wrong),
    ("train", "train.png", _trained),
]


def main() -> None:
    if not os.environ.get("MNIST_DATA_DIR"):
        raise SystemExit("error: set MNIST_DATA_DIR to the real MNIST")
    trained = tempfile.mkdtemp(prefix="screenshots-")
    log = Path(trained) / "streamlit.log"
    env = {"MNIST_MODELS_DIR": trained, "MNIST_CORRECTIONS_DB": str(Path(trained) / "corrections.sqlite")}
    with serve_app(env, log) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        _predict_phone(browser, url)
        for path, name, act in DESKTOP_SHOTS:
            _desktop_shot(browser, url, path, name, act)
        browser.close()
    print(f"screenshots in {DOCS}")


if __name__ == "__main__":
    main()
