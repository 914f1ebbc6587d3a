"""python -m bench.app_latency [--strokes N] [--pages N]: mouse-up to prediction shown, in Chromium.

Starts `streamlit run Home.py`, opens Predict in headless Chromium, draws digits with the mouse and
times, inside the page, from the pointer's release to the Prediction metric showing the digit (a
timer in Python would add its own polling to the 2 cores). The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
STARTUP_S = 60
START_TRIES = 3
SETTLE_MS = 300  # after a reset, so that strokes do not queue behind the previous rerun
P90 = 0.9
SHOWN_WITHIN_MS = 30_000
# Canvas pixels of one stroke each, and the digit the default model reads.
STROKES = {"7": [(70, 50), (210, 50), (120, 240)], "1": [(140, 40), (140, 240)]}
MOVE_STEPS = 15

# Resolves with the milliseconds from the last pointerup to the Prediction metric reading `digit`.
SHOWN_AFTER_RELEASE_JS = """([digit, timeoutMs]) => new Promise((resolve, reject) => {
  setTimeout(() => reject(new Error(`prediction ${digit} not shown within ${timeoutMs} ms`)), timeoutMs);
  const shown = () => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .filter(m => m.innerText.includes("Prediction") && m.checkVisibility())
    .some(m => m.querySelector('[data-testid="stMetricValue"]').innerText.trim() === digit);
  const finish = () => { observer.disconnect(); resolve(performance.now() - window.__released); };
  const observer = new MutationObserver(() => shown() && finish());
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  if (shown()) finish();
})"""
RECORD_RELEASE_JS = "addEventListener('pointerup', () => { window.__released = performance.now(); }, true)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < STARTUP_S:
        if process.poll() is not None:
            raise RuntimeError("streamlit exited during start-up")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("streamlit did not become healthy")


def _start_streamlit(
    env: dict[str, str], log, root: Path = ROOT, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """Start the app on a free loopback port, trying again on another one if it exits at once: the
    port can be taken between finding it free and Streamlit binding it. A given `port` (one that a
    sign-in's redirect URL names) is tried once."""
    for _ in range(1 if port else START_TRIES):
        chosen = port or free_port()
        command = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(chosen),
                   "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
        process = subprocess.Popen(command, cwd=root, env={**os.environ, **env}, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{chosen}"
        try:
            print(f"server healthy after {_wait_healthy(url, process):.1f} s")
            return process, url
        except RuntimeError:  # it exited during start-up
            continue
        except TimeoutError:
            process.kill()
            raise
    raise RuntimeError(f"streamlit exited during start-up {START_TRIES} times; see {log.name}")


@contextmanager
def serve_app_process(
    env: dict[str, str], log_path: Path, root: Path = ROOT, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run Home.py` (of the checkout at `root`) on a loopback port (free, or `port`); yields
    its URL and process once healthy."""
    with open(log_path, "w") as log:
        process, url = _start_streamlit(env, log, root, port)
        try:
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def serve_app(
    env: dict[str, str], log_path: Path, root: Path = ROOT, port: int | None = None
) -> Iterator[str]:
    """serve_app_process's URL alone."""
    with serve_app_process(env, log_path, root, port) as (url, _):
        yield url


def visible_canvas(page):
    """The drawing canvas in view (a page's other tabs hold canvases of their own); fabric.js draws
    on its upper canvas, the last of its two."""
    return page.locator("canvas >> visible=true").last


def draw_and_time(page, digit: str, timeout_ms: int = SHOWN_WITHIN_MS) -> float:
    """Draw `digit` (a key of STROKES) on the Predict canvas; ms from mouse-up to it being shown."""
    page.evaluate(RECORD_RELEASE_JS)
    box = visible_canvas(page).bounding_box()
    (x0, y0), *rest = STROKES[digit]
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    for x, y in rest:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=MOVE_STEPS)
    page.mouse.up()
    return page.evaluate(SHOWN_AFTER_RELEASE_JS, [digit, timeout_ms])


# Page pixels of a confusion-matrix cell (true, predicted), from the Plotly figure's own axes.
CELL_CENTRE_JS = """([truth, predicted]) => {
  const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const box = plot.getBoundingClientRect(), layout = plot._fullLayout;
  return [box.left + layout._size.l + layout.xaxis.l2p(predicted),
          box.top + layout._size.t + layout.yaxis.l2p(truth)];
}"""
ROW_CHECKBOX_X, ROW_HEIGHT = 15, 35  # st.dataframe's row selection column and row height, in pixels
SELECT_SETTLE_MS = 1_500  # a row click reruns the page


def click_confusion_cell(page, truth: int, predicted: int) -> None:
    """Click Evaluate's confusion-matrix cell as a user does, with the mouse."""
    page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first.wait_for(timeout=SHOWN_WITHIN_MS)
    page.mouse.click(*page.evaluate(CELL_CENTRE_JS, [truth, predicted]))


def select_table_rows(page, rows: int) -> None:
    """Tick the selection box of the first `rows` rows of the page's first st.dataframe."""
    box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    for row in range(rows):
        page.mouse.click(box["x"] + ROW_CHECKBOX_X, box["y"] + ROW_HEIGHT * (row + 1.5))
        page.wait_for_timeout(SELECT_SETTLE_MS)


MAP_SWEEP = 24  # steps across the map in each direction while looking for a point to hover
TOOLTIP_IMAGE = "#vg-tooltip-element img"  # vega-tooltip's picture of the hovered point


def hover_map_point(page) -> str:
    """Move the mouse over the Inside page's embedding map until a point's tooltip shows its image;
    return the tooltip's text ('' if no point was found)."""
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    for i, j in itertools.product(range(2, MAP_SWEEP - 1), range(2, MAP_SWEEP - 1)):
        page.mouse.move(box["x"] + box["width"] * i / MAP_SWEEP, box["y"] + box["height"] * j / MAP_SWEEP)
        tip = page.locator(TOOLTIP_IMAGE)
        if tip.count() and tip.first.is_visible():
            return page.locator("#vg-tooltip-element").inner_text()
    return ""


NUMBER_ORIGIN, DIGIT_STEP = (60, 30), 130  # canvas px: where the first digit's box starts, and the next's


def number_strokes(
    text: str,
    strokes: dict[str, list[list[tuple[int, int]]]],
    origin: tuple[float, float] = NUMBER_ORIGIN,
    step: float = DIGIT_STEP,
    scale: float = 1.0,
) -> list[list[tuple[float, float]]]:
    """Canvas px of the pen strokes that write `text`: each digit's strokes (`strokes`, in its own
    box) scaled by `scale`, the first digit's box at `origin`, the next ones `step` px apart."""
    return [
        [(origin[0] + step * i + x * scale, origin[1] + y * scale) for x, y in stroke]
        for i, char in enumerate(text)
        for stroke in strokes[char]
    ]


def write_number(
    page, text: str, strokes: dict[str, list[list[tuple[int, int]]]], step: float = DIGIT_STEP
) -> None:
    """Write `text` with the mouse on the canvas in view, at number_strokes' default place and size,
    the digits' boxes `step` px apart."""
    box = visible_canvas(page).bounding_box()
    for (first_x, first_y), *rest in number_strokes(text, strokes, step=step):
        page.mouse.move(box["x"] + first_x, box["y"] + first_y)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=MOVE_STEPS)
        page.mouse.up()


def touch_stroke(page, points: list[tuple[int, int]]) -> None:
    """One finger stroke through canvas pixels `points`, as a phone's touch screen sends it."""
    box = visible_canvas(page).bounding_box()
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, x: float | None = None, y: float | None = None) -> None:
        at = [] if x is None else [{"x": box["x"] + x, "y": box["y"] + y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": at})

    touch("touchStart", *points[0])
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        for step in range(1, MOVE_STEPS + 1):
            t = step / MOVE_STEPS
            touch("touchMove", x0 + t * (x1 - x0), y0 + t * (y1 - y0))
    touch("touchEnd")
    cdp.detach()


def measure(browser, url: str, strokes: int, pages: int) -> dict:
    """Median and p90 milliseconds over `pages` fresh loads of Predict, `strokes` strokes each."""
    first, later = [], []
    for _ in range(pages):
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{url}/predict")
        page.get_by_text("Nothing drawn yet.").wait_for()
        for i in range(strokes):
            if i:
                page.locator('button[title="Reset canvas & history"] >> visible=true').click()
                page.get_by_text("Nothing drawn").first.wait_for()  # the cleared canvas is blank
                page.wait_for_timeout(SETTLE_MS)
            (later if i else first).append(draw_and_time(page, "71"[i % 2]))
        page.close()
    return {
        "first_stroke_ms_median": round(statistics.median(first)),
        "later_strokes_ms_median": round(statistics.median(later)) if later else None,
        "later_strokes_ms_p90": round(sorted(later)[int(P90 * (len(later) - 1))]) if later else None,
        "strokes": len(first) + len(later),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.app_latency", description=__doc__)
    parser.add_argument("--strokes", type=int, default=8, help="strokes per page (default 8)")
    parser.add_argument("--pages", type=int, default=4, help="fresh page loads (default 4)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with serve_app({}, Path(os.devnull)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        results = measure(browser, url, args.strokes, args.pages)
        browser.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
