"""The store's speed as the app uses it: mark one drawing right or wrong, list My digits' newest.

Measured on a SQLite file and on a throwaway local PostgreSQL server (bench.postgres), one after the
other in one process. Each save is a new drawing, as each click saves another example.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageDraw

from core.access import LOCAL
from core.checkpoint import load_checkpoint
from core.corrections import add_example, example_from_image, list_examples
from core.paths import SHIPPED_MODELS_DIR
from core.store import blobs as stored
from core.store import store_url
from core.store.engine import STORE_URL_ENV

from .postgres import PostgresMissing, start_server

MS = 1000.0
NEWEST = 60  # what My digits shows at once
MODEL_LOADS = 5
CANVAS = 280
PEN = 18


def _drawing(i: int) -> bytes:
    """A canvas stroke of its own for each i: every save is a new example."""
    image = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 255))
    ImageDraw.Draw(image).line(
        [(60 + i % 150, 50), (200, 60 + i // 150), (120, 240)], fill="white", width=PEN
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _p50_ms(calls) -> float:
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * MS)
    return round(statistics.median(times), 2)


def load_model_ms(where: str) -> float:
    """Milliseconds to load the shipped CNN from the store the first time (no cache), median of a few:
    what the first page that uses a stored model waits for."""
    stored.save(
        "bench-cnn.pt", (SHIPPED_MODELS_DIR / "cnn.pt").read_bytes(), "2026-12-05T00:00:00+00:00", where
    )
    with _store_of(where):
        return _p50_ms(lambda: load_checkpoint("store:bench-cnn.pt") for _ in range(MODEL_LOADS))


@contextmanager
def _store_of(where: str):
    """core.checkpoint reads store:NAME from the store of the settings: point them at `where`."""
    before = os.environ.get(STORE_URL_ENV)
    os.environ[STORE_URL_ENV] = store_url(where)
    try:
        yield
    finally:
        if before is None:
            del os.environ[STORE_URL_ENV]
        else:
            os.environ[STORE_URL_ENV] = before


def measure(where: str, samples: int) -> dict[str, float]:
    """add_ms_p50, list_ms_p50 and load_model_ms on the store at `where` (its schema made by the
    first save)."""
    examples = [
        example_from_image(_drawing(i), i % 10, "canvas", 7, 0.9, "cnn.pt") for i in range(samples + 1)
    ]
    add_example(examples[0], where, by=LOCAL)  # the first call creates the schema: not what a click costs
    add = _p50_ms(lambda e=e: add_example(e, where, by=LOCAL) for e in examples[1:])
    listing = _p50_ms(lambda: list_examples(where, newest=NEWEST, by=LOCAL) for _ in range(samples))
    return {"add_ms_p50": add, "list_ms_p50": listing, "load_model_ms": load_model_ms(where)}


def measure_both(samples: int) -> dict[str, float | None]:
    """The store_* keys of the bench's JSON: SQLite, then PostgreSQL (None where it is not installed)."""
    folder = Path(tempfile.mkdtemp(prefix="mnist-bench-store-"))
    try:
        sqlite = measure(str(folder / "store.sqlite"), samples)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        server = start_server()
    except PostgresMissing:
        postgres = {"add_ms_p50": None, "list_ms_p50": None, "load_model_ms": None}
    else:
        try:
            postgres = measure(server.url(), samples)
        finally:
            server.stop()
            shutil.rmtree(server.folder, ignore_errors=True)
    return {
        "store_add_ms_p50": sqlite["add_ms_p50"],
        "store_list_ms_p50": sqlite["list_ms_p50"],
        "postgresql_store_add_ms_p50": postgres["add_ms_p50"],
        "postgresql_store_list_ms_p50": postgres["list_ms_p50"],
        "store_load_model_ms": sqlite["load_model_ms"],
        "postgresql_store_load_model_ms": postgres["load_model_ms"],
    }
