"""python -m bench.class_load [--students N] [--minutes M] [--train]: a class drawing on one server.

N students, without browsers: each is a websocket client speaking Streamlit's own protocol to a real
`streamlit run Home.py`, and sends what Chromium sends for a stroke (recorded once with `--record`
into class_load_frames.json; the drawings vary). A student writes a digit (or, on Number, a number)
of 2-3 strokes, a stroke a second after the last one was read, waits 5 s, clears the canvas and
writes the next; a share of them use Number mode and the Inside page.

First a lone student draws every drawing of the pool on the quiet server, mode by mode: that gives
the server's CPU per stroke of each mode and the reading a lone session gets for each stroke. Then the
class draws for M minutes, each stroke timed on its client from sending it to the delta that carries
its reading. With --train, a CNN training run is started on the Train page (as a teacher would,
watching it) first on the quiet server, then again at the start of the class. The last stdout line
is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import io
import json
import os
import random
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from google.protobuf import json_format
from PIL import Image, ImageDraw

from core.config import NUMBER_CANVAS
from core.data import data_dir_from_env
from core.store import blobs as stored
from tests.drawings import DIGIT_STROKES

from .app_latency import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    draw_and_time,
    serve_app,
    serve_app_process,
    write_number,
)

FRAMES = Path(__file__).with_name("class_load_frames.json")
STREAM_PATH = "/_stcore/stream"
SUBPROTOCOL = "streamlit"
STROKE_GAP_S = 1.0  # a student's next stroke, after the last one was read
DIGIT_PAUSE_S = 5.0  # looking at the reading before clearing and writing the next
STAGGER_S = 6.0  # students start within this many seconds of each other
READING_TIMEOUT_S = 30.0  # a stroke unread by then is an error
POOL = 10  # drawings per mode; every stroke of the class has a lone reading to compare with
STROKES_PER_DRAWING = (2, 3)
SHARES = {"number": 0.2, "inside": 0.1}  # of the students; the others use Predict's Draw tab
TRAIN_QUERY = "arch=cnn&epochs=2"  # the Train page's shared link: the CNN recipe, two epochs
TRAIN_POLL_S = 1.0  # the Train page's loss panel polls once a second while a run trains
TRAIN_LIMIT_S = 20 * 60
ETA_TEXT = re.compile(r"ETA (?P<s>\d+) s")  # in the Train page's progress bar (app.run_view)
CPU_SAMPLE_S = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
P90 = 0.9
MS = 1000
KB, MB = 2**10, 2**20


@dataclass(frozen=True)
class Mode:
    page: str  # the page's URL path
    canvas: str  # the canvas widget's key
    reading: str  # the label of the metric that shows the reading
    size: tuple[int, int]


MODES = {
    "draw": Mode("predict", "canvas", "Prediction", (280, 280)),
    "number": Mode("predict", "number-canvas", "Number", NUMBER_CANVAS),
    "inside": Mode("inside", "inside-canvas", "Prediction", (280, 280)),
}


# --- drawings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drawing:
    label: str  # what it says
    strokes: list[list[tuple[float, float]]]  # canvas px
    pen: int


def _split_longest(strokes: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
    """One more stroke: the longest one lifted at its middle point (the ink stays the same)."""
    longest = max(range(len(strokes)), key=lambda i: len(strokes[i]))
    points = strokes[longest]
    if len(points) < 3:  # a straight line: lift at its middle
        points = [points[0], tuple((a + b) / 2 for a, b in zip(*points, strict=True)), points[-1]]
    middle = len(points) // 2
    return [*strokes[:longest], points[: middle + 1], points[middle:], *strokes[longest + 1 :]]


def _digit_strokes(char: str, left: float, top: float, scale: float) -> list[list[tuple[float, float]]]:
    return [[(left + x * scale, top + y * scale) for x, y in stroke] for stroke in DIGIT_STROKES[char]]


def make_drawing(mode: str, rng: random.Random) -> Drawing:
    """A digit (a two-digit number on Number), varied in place, size and pen, in 2-3 strokes."""
    digits = sorted(DIGIT_STROKES)
    if mode == "number":
        text = "".join(rng.choice(digits) for _ in range(2))
        scale, step = rng.uniform(0.9, 1.1), rng.uniform(125, 145)
        left, top = rng.uniform(60, 200), rng.uniform(20, 40)
        strokes = [s for i, c in enumerate(text) for s in _digit_strokes(c, left + i * step, top, scale)]
    else:
        text = rng.choice(digits)
        scale = rng.uniform(1.1, 1.4)
        left, top = rng.uniform(30, 280 - 100 * scale - 30), rng.uniform(20, 280 - 160 * scale - 10)
        strokes = _digit_strokes(text, left, top, scale)
    wanted = rng.choice(STROKES_PER_DRAWING)
    while len(strokes) < wanted:
        strokes = _split_longest(strokes)
    return Drawing(text, strokes, rng.randint(15, 20))


def canvas_png(drawing: Drawing, strokes: int, size: tuple[int, int]) -> bytes:
    """What the canvas sends after `strokes` strokes: white ink with round ends on black."""
    image = Image.new("RGBA", size, (0, 0, 0, 255))
    draw, radius = ImageDraw.Draw(image), drawing.pen / 2
    for points in drawing.strokes[:strokes]:
        draw.line(points, fill="white", width=drawing.pen, joint="curve")
        for x, y in points:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill="white")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def fabric_path(points: list[tuple[float, float]], pen: int, template: dict) -> dict:
    """A fabric.js Path object for one stroke, with the fields the canvas sends (`template`)."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    commands = [["M", *points[0]], *(["L", x, y] for x, y in points[1:])]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    return template | {"left": min(xs) + width / 2, "top": min(ys) + height / 2, "width": width,
                       "height": height, "strokeWidth": pen, "path": commands}  # fmt: skip


def canvas_value(drawing: Drawing | None, strokes: int, mode: Mode, template: dict) -> str:
    """The canvas widget's JSON value after `strokes` strokes (None: the cleared canvas)."""
    if drawing is None:
        raw, data = {"version": template["version"], "objects": [], "background": "#000000"}, None
    else:
        objects = [fabric_path(p, drawing.pen, template) for p in drawing.strokes[:strokes]]
        raw = {"version": template["version"], "objects": objects, "background": "#000000"}
        data = "data:image/png;base64," + base64.b64encode(canvas_png(drawing, strokes, mode.size)).decode()
    return json.dumps({"drawing": {"raw": raw, "data": data}})


# --- the protocol -----------------------------------------------------------------------------------


def _messages():
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    return BackMsg, ForwardMsg


def widget_key(widget_id: str) -> str:
    """The user key in a widget id ("$$ID-<hash>-<key>"), or the id itself."""
    return widget_id.split("-", 2)[2] if widget_id.startswith("$$ID-") else widget_id


def _element_id(element) -> str:
    kind = element.WhichOneof("type")
    inner = getattr(element, kind) if kind else None
    return inner.id if inner is not None and "id" in inner.DESCRIPTOR.fields_by_name else ""


@dataclass
class Run:
    """What the server sent for one script or fragment run."""

    reading: str | None = None
    read_after_s: float | None = None
    error: str | None = None
    ids: dict[str, str] = field(default_factory=dict)  # widget key -> widget id
    fragments: dict[str, str] = field(default_factory=dict)  # widget key -> its fragment's id
    page_hash: str = ""
    query: str | None = None
    texts: list[str] = field(default_factory=list)  # the alerts' bodies
    progress: str | None = None  # a progress bar's text


class Session:
    """One browser tab's websocket, speaking Streamlit's protocol."""

    def __init__(self, websocket, url: str):
        self.websocket, self.url = websocket, url
        self.ids: dict[str, str] = {}
        self.fragments: dict[str, str] = {}
        self.page_hash, self.query = "", ""

    @classmethod
    async def connect(cls, url: str) -> Session:
        import websockets

        ws_url = url.replace("http", "ws", 1) + STREAM_PATH
        websocket = await websockets.connect(ws_url, subprotocols=[SUBPROTOCOL], max_size=None)
        return cls(websocket, url)

    async def close(self) -> None:
        await self.websocket.close()

    def _context(self, message, page: str) -> None:
        info = message.rerun_script.context_info
        info.timezone, info.locale, info.url = "UTC", "en-US", f"{self.url}/{page}"

    async def open(self, page: str, query: str = "") -> Run:
        """Load `page` as a new tab does."""
        back_msg, _ = _messages()
        message = back_msg()
        message.rerun_script.page_name, message.rerun_script.query_string = page, query
        self._context(message, page)
        return await self.send(message, reading_label=None)

    def message(self, template: dict, page: str, values: dict[str, str] | None = None, fragment: str = ""):
        """`template` (a recorded rerun) with this session's widget ids, page and fragment, and the
        JSON values `values` (widget key -> value) in place of the recorded ones."""
        back_msg, _ = _messages()
        recorded = copy.deepcopy(template)
        rerun = recorded["rerunScript"]
        rerun["widgetStates"]["widgets"] = [
            w | {"id": self.ids.get(widget_key(w["id"]), w["id"])} for w in rerun["widgetStates"]["widgets"]
        ]
        for widget in rerun["widgetStates"]["widgets"]:
            if widget_key(widget["id"]) in (values or {}):
                widget["jsonValue"] = values[widget_key(widget["id"])]
        rerun.update(pageScriptHash=self.page_hash, queryString=self.query)
        rerun.pop("fragmentId", None)
        if fragment:
            rerun["fragmentId"] = fragment
        message = json_format.ParseDict(recorded, back_msg())
        self._context(message, page)
        return message

    async def send(self, message, reading_label: str | None) -> Run:
        """Send a rerun and read until it finishes; times the first metric labelled `reading_label`."""
        _, forward_msg = _messages()
        sent = time.perf_counter()
        await self.websocket.send(message.SerializeToString())
        run = Run()
        while True:
            incoming = forward_msg()
            incoming.ParseFromString(await asyncio.wait_for(self.websocket.recv(), READING_TIMEOUT_S))
            kind = incoming.WhichOneof("type")
            if kind == "script_finished":
                break
            if kind == "navigation":
                self.page_hash = incoming.navigation.page_script_hash  # the page this run shows
            if kind == "page_info_changed":
                run.query = incoming.page_info_changed.query_string
            if kind == "delta" and incoming.delta.WhichOneof("type") == "new_element":
                self._note_element(incoming, run, sent, reading_label)
        self.ids.update(run.ids)
        self.fragments.update(run.fragments)
        if run.query is not None:
            self.query = run.query
        return run

    def _note_element(self, incoming, run: Run, sent: float, reading_label: str | None) -> None:
        element = incoming.delta.new_element
        kind = element.WhichOneof("type")
        if kind == "metric" and element.metric.label == reading_label and run.reading is None:
            run.reading, run.read_after_s = element.metric.body, time.perf_counter() - sent
        elif kind == "exception":
            run.error = f"{element.exception.type}: {element.exception.message}"
        elif kind == "alert":
            run.texts.append(element.alert.body)
        elif kind == "progress":
            run.progress = element.progress.text
        if widget_id := _element_id(element):
            key = widget_key(widget_id)
            run.ids[key] = widget_id
            run.fragments[key] = incoming.delta.fragment_id


# --- a student --------------------------------------------------------------------------------------


@dataclass
class Stroke:
    mode: str
    drawing: int  # its index in the mode's pool
    strokes: int  # strokes on the canvas once it is sent
    sent_at: float  # monotonic s
    latency_s: float | None
    reading: str | None
    error: str | None = None


class Student:
    def __init__(self, url: str, mode: str, frames: dict):
        self.url, self.mode_name, self.mode = url, mode, MODES[mode]
        self.template, self.path_template = frames["modes"][mode], frames["path_object"]

    async def start(self) -> None:
        self.session = await Session.connect(self.url)
        await self.session.open(self.mode.page)

    async def stroke(self, pool: list[Drawing], index: int, strokes: int) -> Stroke:
        drawing = pool[index] if index >= 0 else None
        value = canvas_value(drawing, strokes, self.mode, self.path_template)
        fragment = self.session.fragments.get(self.mode.canvas, "")
        message = self.session.message(self.template, self.mode.page, {self.mode.canvas: value}, fragment)
        sent_at = time.monotonic()
        try:
            run = await self.session.send(message, self.mode.reading)
        except Exception as exc:  # a timeout or a closed socket: the student sees nothing
            return Stroke(self.mode_name, index, strokes, sent_at, None, None, f"{type(exc).__name__}: {exc}")
        error = run.error or (None if run.reading is not None or drawing is None else "no reading shown")
        return Stroke(self.mode_name, index, strokes, sent_at, run.read_after_s, run.reading, error)

    async def write(
        self,
        pool: list[Drawing],
        index: int,
        out: list[Stroke],
        gap_s: float = STROKE_GAP_S,
        pause_s: float = DIGIT_PAUSE_S,
    ) -> None:
        """Every stroke of drawing `index`, `gap_s` apart, then a pause of `pause_s` and Clear."""
        for strokes in range(1, len(pool[index].strokes) + 1):
            out.append(await self.stroke(pool, index, strokes))
            await asyncio.sleep(gap_s)
        await asyncio.sleep(pause_s)
        await self.stroke(pool, -1, 0)  # the cleared canvas

    async def draw_while(self, pool: list[Drawing], busy: Callable[[], bool], rng: random.Random, out: list):
        await asyncio.sleep(rng.uniform(0, STAGGER_S))
        while busy():
            await self.write(pool, rng.randrange(len(pool)), out)


# --- the server -------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process `pid` (0 once it is gone)."""
    try:
        fields = _proc_stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
            children = [int(c) for t in tasks for c in (t / "children").read_text().split()]
        except OSError:
            continue
        found += children
        todo += children
    return found


def _rss(pid: int) -> int:
    return int(_proc_stat(pid)[21]) * PAGE_SIZE


def _pss(pid: int) -> int:
    """Proportional set size: pages shared by the server and its children (torch's libraries) are
    split between them, so the sum is what the processes hold together, as a memory limit counts."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return next((int(line.split()[1]) * KB for line in rollup.splitlines() if line.startswith("Pss:")), 0)


def memory_bytes(pids: list[int], measure: Callable[[int], int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += measure(pid)
        except OSError:  # gone between listing and reading
            continue
    return total


class Monitor:
    """The server's and its children's peak memory, RSS and PSS summed, sampled every second."""

    def __init__(self, pid: int):
        self.pid, self.peak_rss, self.peak_pss = pid, 0, 0

    async def run(self) -> None:
        while True:
            pids = [self.pid, *descendants(self.pid)]
            self.peak_rss = max(self.peak_rss, memory_bytes(pids, _rss))
            self.peak_pss = max(self.peak_pss, memory_bytes(pids, _pss))
            await asyncio.sleep(CPU_SAMPLE_S)


# --- the teacher's training run ---------------------------------------------------------------------


@dataclass
class TrainingRun:
    train_s: float  # the run's own train_seconds, from its checkpoint
    eta_errors_s: list[float]  # at each poll, the Train page's finish (now + ETA) less the real one


async def train_once(url: str, frames: dict, store: str) -> TrainingRun:
    """Start the Train page's CNN run as a teacher does and watch it to the end."""
    before = {name for name, _, _ in stored.listing(store)}
    teacher = await Session.connect(url)
    await teacher.open("train", TRAIN_QUERY)
    await teacher.send(teacher.message(frames["train_start"], "train"), reading_label=None)
    deadline = time.monotonic() + TRAIN_LIMIT_S
    loss_fragment = teacher.fragments.get("loss", "")
    finishes = []  # the finish each poll's ETA promised, monotonic s
    while not (saved := {name for name, _, _ in stored.listing(store)} - before):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the CNN run did not finish in {TRAIN_LIMIT_S} s")
        await asyncio.sleep(TRAIN_POLL_S)
        poll_message = teacher.message(frames["train_poll"], "train", fragment=loss_fragment)
        poll = await teacher.send(poll_message, reading_label=None)
        if eta := ETA_TEXT.search(poll.progress or ""):
            finishes.append(time.monotonic() + float(eta["s"]))
    finished = time.monotonic()
    await teacher.close()
    (name,) = saved
    payload = torch.load(io.BytesIO(stored.load(name, store)), weights_only=True)
    return TrainingRun(payload["metrics"]["train_seconds"], [promised - finished for promised in finishes])


def eta_summary(run: TrainingRun) -> dict:
    """How far the Train page's ETA was from the real finish: the median and worst miss in seconds
    (found at 1 s polls, so within about a second), over the polls of the run's second half."""
    late = [abs(error) for error in run.eta_errors_s[len(run.eta_errors_s) // 2 :]]
    if not late:
        return {}
    return {"eta_miss_p50_s": round(percentile(late, 0.5), 1), "eta_miss_max_s": round(max(late), 1)}


# --- the phases -------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return ordered[round(share * (len(ordered) - 1))] if ordered else None


async def lone_pass(url: str, pid: int, frames: dict, pools: dict) -> tuple[dict, dict]:
    """Each mode's pool drawn by one student on the quiet server: ({mode: server CPU ms per stroke},
    {(mode, drawing, strokes): the reading})."""
    cpu_ms, readings = {}, {}
    for mode, pool in pools.items():
        student = Student(url, mode, frames)
        await student.start()
        await student.write(pool, 0, [], gap_s=0, pause_s=0)  # warm: the mode's first run loads its models
        spent, strokes = 0.0, []
        for index in range(len(pool)):
            for count in range(1, len(pool[index].strokes) + 1):
                before = cpu_s(pid)
                strokes.append(await student.stroke(pool, index, count))
                spent += cpu_s(pid) - before
            await student.stroke(pool, -1, 0)
        await student.session.close()
        cpu_ms[mode] = round(spent * MS / len(strokes), 1)
        readings |= {(mode, s.drawing, s.strokes): s.reading for s in strokes}
    return cpu_ms, readings


def students_by_mode(students: int) -> list[str]:
    modes = []
    for mode, share in SHARES.items():
        modes += [mode] * round(students * share)
    return modes + ["draw"] * (students - len(modes))


async def class_pass(url: str, frames: dict, pools: dict, args, training: asyncio.Task | None) -> list:
    """The class draws for args.minutes, and on while `training` runs."""
    out: list[Stroke] = []
    class_ = [Student(url, mode, frames) for mode in students_by_mode(args.students)]
    await asyncio.gather(*(s.start() for s in class_))
    deadline = time.monotonic() + args.minutes * 60

    def busy() -> bool:
        return time.monotonic() < deadline or (training is not None and not training.done())

    rngs = [random.Random(args.seed * 1000 + i) for i in range(len(class_))]
    drawing = (s.draw_while(pools[s.mode_name], busy, r, out) for s, r in zip(class_, rngs, strict=True))
    await asyncio.gather(*drawing)
    await asyncio.gather(*(s.session.close() for s in class_))
    return out


def stroke_summary(strokes: list[Stroke], lone: dict, pools: dict) -> dict:
    timed = [s.latency_s for s in strokes if s.latency_s is not None]
    read = [s for s in strokes if not s.error]
    finished = [s for s in strokes if s.strokes == len(pools[s.mode][s.drawing].strokes) and not s.error]
    return {
        "strokes": len(strokes),
        "p50_s": round(percentile(timed, 0.5), 3) if timed else None,
        "p90_s": round(percentile(timed, P90), 3) if timed else None,
        "max_s": round(max(timed), 3) if timed else None,
        "errors": sum(1 for s in strokes if s.error),
        "error_examples": sorted({s.error for s in strokes if s.error})[:3],
        "not_the_lone_reading": sum(1 for s in read if s.reading != lone[s.mode, s.drawing, s.strokes]),
        "drawings_read_right": sum(1 for s in finished if s.reading == pools[s.mode][s.drawing].label),
        "drawings_finished": len(finished),
    }  # fmt: skip


async def simulate(url: str, pid: int, frames: dict, args, store: str) -> dict:
    rng = random.Random(args.seed)
    pools = {mode: [make_drawing(mode, rng) for _ in range(POOL)] for mode in MODES}
    cpu_ms, lone = await lone_pass(url, pid, frames, pools)
    result = {"students": args.students, "minutes": args.minutes, "server_cpu_ms_per_stroke": cpu_ms}
    quiet = None
    if args.train:
        quiet = await train_once(url, frames, store)
        result |= {"train_quiet_s": round(quiet.train_s, 1), "eta_quiet": eta_summary(quiet)}
    monitor = Monitor(pid)
    watcher = asyncio.create_task(monitor.run())
    training = asyncio.create_task(train_once(url, frames, store)) if args.train else None
    started, cpu_before = time.monotonic(), cpu_s(pid)
    strokes = await class_pass(url, frames, pools, args, training)
    elapsed = time.monotonic() - started
    result["class"] = stroke_summary(strokes, lone, pools)
    result["class"]["strokes_per_s"] = round(len(strokes) / elapsed, 1)
    result["class"]["server_cpu_share"] = round((cpu_s(pid) - cpu_before) / elapsed, 2)  # of one core
    if training is not None:
        beside = await training
        result |= {"train_with_class_s": round(beside.train_s, 1), "eta_with_class": eta_summary(beside)}
        result["train_slowdown"] = round(beside.train_s / quiet.train_s, 2)
        during = [s for s in strokes if s.sent_at < started + beside.train_s]
        result["class_while_training"] = stroke_summary(during, lone, pools)
    watcher.cancel()
    result["peak_rss_mb"] = round(monitor.peak_rss / MB)
    result["peak_pss_mb"] = round(monitor.peak_pss / MB)
    return result


# --- recording --------------------------------------------------------------------------------------


def _decode(payload: bytes) -> dict:
    back_msg, _ = _messages()
    message = back_msg()
    message.ParseFromString(payload)
    return json_format.MessageToDict(message)


def _only(frame: dict, canvas: str | None) -> dict:
    """A recorded rerun without what does not replay: the URL's port, other canvases' drawings and
    this canvas's image (the simulator sends its own)."""
    rerun = frame["rerunScript"]
    rerun.pop("contextInfo", None)
    widgets = rerun["widgetStates"]["widgets"]
    rerun["widgetStates"]["widgets"] = [
        w | ({"jsonValue": ""} if widget_key(w["id"]) == canvas else {})
        for w in widgets
        if "jsonValue" not in w or widget_key(w["id"]) == canvas
    ]
    return frame


def _stroke_frame(frames: list[dict], canvas: str) -> dict:
    for frame in frames:
        widgets = frame["rerunScript"].get("widgetStates", {}).get("widgets", [])
        if frame["rerunScript"].get("fragmentId") and any(widget_key(w["id"]) == canvas for w in widgets):
            return frame
    raise RuntimeError(f"no stroke on {canvas!r} was recorded")


def _path_template(frame: dict, canvas: str) -> dict:
    (value,) = [
        w["jsonValue"]
        for w in frame["rerunScript"]["widgetStates"]["widgets"]
        if widget_key(w["id"]) == canvas
    ]
    path = json.loads(value)["drawing"]["raw"]["objects"][0]
    return {k: v for k, v in path.items() if k not in ("path", "left", "top", "width", "height")} | {
        "version": path.get("version", "")
    }  # fmt: skip


def record(data_dir: str) -> dict:
    """Draw in Chromium on Predict's Draw and Number tabs and on Inside, and start a CNN run on Train,
    keeping the websocket frames the page sends."""
    from playwright.sync_api import sync_playwright

    sent: dict[str, list[dict]] = {}

    def recorded_page(browser, where: str):
        page = browser.new_page(viewport=VIEWPORT)
        page.on(
            "websocket",
            lambda ws: ws.on("framesent", lambda p: sent.setdefault(where, []).append(_decode(p))),
        )
        return page

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        env = {"MNIST_DATA_DIR": data_dir, "MNIST_STORE_URL": f"sqlite:///{Path(folder) / 'store.sqlite'}"}
        with serve_app(env, Path(folder) / "streamlit.log") as url:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = recorded_page(browser, "predict")
            page.goto(f"{url}/predict")
            page.get_by_text("Nothing drawn yet.").wait_for()
            draw_and_time(page, "7")
            page.get_by_role("tab", name="Number").click()
            write_number(page, "17", DIGIT_STROKES)
            page.get_by_text("17").first.wait_for()
            page = recorded_page(browser, "inside")
            page.goto(f"{url}/inside")
            page.get_by_text("Draw a digit").first.wait_for()
            draw_and_time(page, "7")
            page = recorded_page(browser, "train")
            page.goto(f"{url}/train?{TRAIN_QUERY}")
            page.get_by_text("Choose settings").wait_for()
            page.get_by_role("button", name="Start training").click()
            page.get_by_role("button", name="Stop").wait_for()
            page.wait_for_timeout(int(3 * TRAIN_POLL_S * MS))  # a few polls of the loss panel
            browser.close()
    draw_frame = _stroke_frame(sent["predict"], "canvas")
    train = [f for f in sent["train"] if f["rerunScript"].get("widgetStates")]
    starts = [
        f for f in train if any("triggerValue" in w for w in f["rerunScript"]["widgetStates"]["widgets"])
    ]
    polls = [f for f in train if f["rerunScript"].get("fragmentId")]
    modes = {name: _only(_stroke_frame(sent[m.page], m.canvas), m.canvas) for name, m in MODES.items()}
    path = _path_template(draw_frame, "canvas")
    return {
        "path_object": path,
        "modes": modes,
        "train_start": _only(starts[0], None),
        "train_poll": _only(polls[0], None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.class_load", description=__doc__)
    parser.add_argument("--students", type=int, default=30, help="websocket clients drawing (30)")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long the class draws (2)")
    parser.add_argument("--train", action="store_true", help="time a CNN run quiet, then beside the class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help=f"record {FRAMES.name} again in Chromium")
    parser.add_argument("--data-dir", help="folder with MNIST/raw (default: $MNIST_DATA_DIR or data/)")
    args = parser.parse_args()
    data_dir = str(data_dir_from_env(args.data_dir))
    if args.record:
        FRAMES.write_text(json.dumps(record(data_dir), indent=1) + "\n")
        print(f"wrote {FRAMES}")
        return
    frames = json.loads(FRAMES.read_text())
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{Path(folder) / 'store.sqlite'}"
        env = {"MNIST_DATA_DIR": data_dir, "MNIST_STORE_URL": store}
        with serve_app_process(env, Path(folder) / "streamlit.log") as (url, process):
            result = asyncio.run(simulate(url, process.pid, frames, args, store))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
