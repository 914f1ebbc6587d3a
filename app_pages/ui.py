"""Drawing helpers shared by the pages: they render core results and hold no logic of their own."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

# Plotly takes pandas from sys.modules without the import lock: a session whose chart ran while
# another session's first st.dataframe was importing pandas got a half-imported module ("partially
# initialized module 'pandas'", in a browser test's server log). Every run imports this module
# first, so pandas is whole before any page draws.
import pandas  # noqa: F401
import plotly.graph_objects as go
import streamlit as st
from PIL import Image, ImageDraw

from app import signin
from app.cache import (
    cached_checkpoint,
    cached_checkpoint_list,
    cached_reader,
    cached_reader_list,
    training_queue,
)
from core.access import AccessError
from core.catalog import CheckpointInfo, default_among, is_shipped
from core.checkpoint import Checkpoint, CheckpointError, checkpoint_exists
from core.clock import SHORT, shown
from core.corrections import StoreError, add_example, example_from_image
from core.data import DATA_DIR_ENV, RAW_FILES, MissingDataError, data_present, download_mnist, raw_folder
from core.digits.classroom import LOCAL_AUTHOR
from core.digits.predict import Prediction, saliency
from core.nets import NUM_CLASSES, count_parameters
from core.numbers.read import looks_like_a_number
from core.numbers.reader import READER_PATH
from core.preprocess import MAX_FILE_BYTES, ImageError
from core.runs.jobs import QueueError
from core.share import MODEL_PARAM
from core.store import StoreUnavailable

MODEL_KEY = "model_path"
LAST_DRAWING_KEY = "last_drawing"  # Predict's latest drawing {"png", "objects"}: Inside opens on it
INSIDE_CANVAS = "inside-canvas"
NUMBER_CANVAS = (700, 220)  # Number mode's canvas, and Inside's for numbers
READER_KEY = "number_reader"  # a reader trained here that this session reads numbers with
READER_USE_HELP = "Number mode and Inside read numbers with this reader, in this session"
CANVAS_SIDE = 280
PEN_WIDTH = 18  # px, the canvas pen's default
MOBILE_AGENT_TOKEN = "Mobi"  # in the User-Agent of phone browsers (Chrome, Safari, Firefox)
# Ten bars need no zoom or pan, and on a phone Plotly's toolbar would sit over them.
NO_TOOLBAR = {"displayModeBar": False}
PRIMARY, MUTED = "#4c9aff", "#7a869a"  # the chosen digit's bar, the others
POSITIVE, NEGATIVE = "#b2182b", "#2166ac"  # red and blue, as core.digits.inside's diverging colours
LINK_READ_KEY = "model_link_read"
MODEL_GONE_KEY = "model_gone"  # what the sidebar says once when the active model was deleted
DIGIT_PIXELS = 140  # 28x28 inputs are shown 5x, pixel-sharp
# A download click does not rerun the page: a rerun replaces the page's download links, and a click on
# another one before the browser has the new links (a double click, a second download) got no file.
KEEP_PAGE = "ignore"
PICKER_HELP = "Shipped models come with the app; trained ones were trained on this server, newest first."


STORE_DOWN = (
    "The store that keeps what this app is taught is unavailable right now; nothing was changed. "
    "Try again later, or tell the app's owner."
)


def problem_text(exc: Exception) -> str:
    """What to tell this session's person of a refusal: a store that cannot be used names its
    database and how to fix it, which is for owners; everyone else hears that it is unavailable."""
    if isinstance(exc, StoreUnavailable) and not signin.actor().owner:
        return STORE_DOWN
    return str(exc)


def _model_label(info: CheckpointInfo) -> str:
    """Short enough for the sidebar: arch, accuracy, and where the model comes from."""
    accuracy = "—" if info.test_accuracy is None else f"{info.test_accuracy:.2f}%"
    origin = "shipped" if info.shipped else shown(info.created_at, SHORT, unknown="trained")
    return f"{info.arch.upper()} · {accuracy} · {origin}"


def _ensure_active_model() -> dict[str, str]:
    """{path: label} of the available models; the active one defaults to the one an owner chose for
    everyone, else the most accurate, also when the active one has gone (deleted in another
    session), which the sidebar then says."""
    infos = cached_checkpoint_list()
    labels = {info.path: _model_label(info) for info in infos}
    active = st.session_state.get(MODEL_KEY)
    if labels and active not in labels:
        fallback = default_among(infos).path
        if active:
            st.session_state[MODEL_GONE_KEY] = (
                f"`{Path(active).name}` is no longer on this server (it was deleted): "
                f"using the default, `{Path(fallback).name}`."
            )
        st.session_state[MODEL_KEY] = fallback
    return labels


def rerun_if_model_gone(checkpoint: Checkpoint) -> None:
    """In a fragment, which reruns alone: a model deleted since the page ran reruns the whole page,
    which falls back to the default model and says so."""
    if str(checkpoint.path) not in {info.path for info in cached_checkpoint_list()}:
        st.rerun(scope="app")


def _read_model_link(paths: list[str]) -> None:
    """On a session's first run, `?model=<file name>` from a shared link picks the active model."""
    if st.session_state.get(LINK_READ_KEY):
        return
    st.session_state[LINK_READ_KEY] = True
    name = st.query_params.get(MODEL_PARAM)
    if name is None:
        return
    match = next((path for path in paths if Path(path).name == name), None)
    if match:
        st.session_state[MODEL_KEY] = match
    else:
        st.sidebar.warning(f"The link's model `{name}` is not on this server: using the default.")


# The image uploaders' keys. Their labels state the app's 20 MB limit (core.preprocess); their drop
# zones would state the server's larger one (.streamlit/config.toml), which only lets a bigger file
# reach the page to be refused there by name: that line is hidden, so the limit is stated once.
MAX_UPLOAD_MB = MAX_FILE_BYTES // 2**20
DIGIT_UPLOADS, NUMBER_UPLOAD, INSIDE_UPLOAD = "uploads", "number-upload", "inside-upload"
IMAGE_UPLOADS = (DIGIT_UPLOADS, NUMBER_UPLOAD, INSIDE_UPLOAD)
DROPZONE_LIMIT = '[data-testid="stFileUploaderDropzoneInstructions"]'


def state_upload_limit_once() -> None:
    hidden = ", ".join(f".st-key-{key} {DROPZONE_LIMIT}" for key in IMAGE_UPLOADS)
    st.html(f"<style>{hidden} {{ display: none; }}</style>")


def model_picker() -> None:
    """Sidebar selector of the active model, shared by every page through session state."""
    labels = _ensure_active_model()
    _read_model_link(list(labels))
    if gone := st.session_state.pop(MODEL_GONE_KEY, None):
        st.sidebar.warning(gone)
    if not labels:
        st.sidebar.warning("No trained models yet: train one on the Train page.")
        return
    st.sidebar.selectbox(
        "Active model", list(labels), key=MODEL_KEY, format_func=labels.get, help=PICKER_HELP
    )


def model_query() -> dict[str, str]:
    """The active model as a link's query parameter."""
    path = st.session_state.get(MODEL_KEY)
    return {MODEL_PARAM: Path(path).name} if path else {}


def mirror_in_address_bar(params: dict[str, str]) -> None:
    """Keep these query parameters in the browser's address, so that a copied link reopens them.
    Written on every run: a page switch clears the address's parameters."""
    st.query_params.update(params)


def make_active(path: str) -> None:
    """A button callback: the model every page uses from now on (the sidebar picker's value)."""
    st.session_state[MODEL_KEY] = path


def use_reader(path: str) -> None:
    """A button callback: Number mode and Inside read numbers with this reader from now on (the
    shipped one: back to the default, loaded once for every session)."""
    if is_shipped(path):
        st.session_state.pop(READER_KEY, None)
    else:
        st.session_state[READER_KEY] = path


def reader_in_use() -> str:
    """The path of the reader this session reads numbers with."""
    return st.session_state.get(READER_KEY) or str(READER_PATH)


def number_reader():
    """The reader this session chose on Train (core.numbers.reader.Reader), or None for the shipped one; one
    that can no longer be loaded is dropped with a message."""
    path = st.session_state.get(READER_KEY)
    if path is None:
        return None
    try:
        if path not in {reader.path for reader in cached_reader_list()}:  # deleted, maybe in another session
            raise CheckpointError(f"{path} is no longer on this server")
        return cached_reader(path)
    except CheckpointError as exc:
        st.session_state.pop(READER_KEY)
        st.warning(f"The number reader you chose cannot be used ({exc}): back to the shipped one.")
        return None


def active_checkpoint() -> Checkpoint | None:
    """The active model, or None with a message when there is none or it cannot be loaded."""
    _ensure_active_model()  # pages can run before the picker (tests) or after a model vanished
    path = st.session_state.get(MODEL_KEY)
    if not path:
        st.info("No model available yet: train one on the Train page.")
        return None
    try:
        return cached_checkpoint(path)
    except (CheckpointError, OSError) as exc:
        st.error(f"Cannot use the selected model: {exc}")
        return None


POOR_READER = 50.0  # % of its test numbers read exactly: a reader below this misreads most numbers


def warn_if_poor_reader(test_accuracy: float | None) -> None:
    """Said before a reader is chosen: one trained for too short a time reads almost nothing."""
    if test_accuracy is not None and test_accuracy < POOR_READER:
        st.warning(
            f"This reader reads only {test_accuracy:.1f}% of its test numbers exactly: with it, Number mode "
            "will misread or miss most numbers. A reader needs a few minutes of training."
        )


def trainer(email: str | None, shipped: bool) -> str:
    """Who trained a model, for the tables: an email, or where it came from."""
    return email or ("—" if shipped else "local or CLI")


def model_card(ckpt: Checkpoint) -> None:
    config = ckpt.model_config
    cols = st.columns(4)
    # The second lines are facts, not changes: no arrows.
    cols[0].metric("Architecture", config.arch.upper(), config.shape, delta_color="off", delta_arrow="off")
    cols[1].metric("Parameters", f"{count_parameters(ckpt.model):,}")
    cols[2].metric("Test accuracy", f"{ckpt.test_accuracy:.2f}%" if ckpt.test_accuracy else "—")
    when = shown(ckpt.created_at)
    cols[3].metric("Trained on", ckpt.device, when, delta_color="off", delta_arrow="off")


def data_missing_message() -> None:
    files = "\n".join(f"- `{name}`" for name in RAW_FILES)
    st.warning(
        f"MNIST is not on this server yet. Download it below (about 11 MB), or put these four files "
        f"in `{raw_folder()}`:\n{files}\n\nor set `{DATA_DIR_ENV}` to a folder that holds `MNIST/raw/`."
    )


def data_ready() -> bool:
    """True when MNIST is on disk; otherwise explains and offers a download."""
    if data_present():
        return True
    data_missing_message()
    if st.button("Download MNIST (about 11 MB)"):
        status = st.empty()  # the progress bar goes once the download ends, well or not
        bar = status.progress(0.0, text="Downloading MNIST…")
        try:
            download_mnist(progress=lambda done, total: bar.progress(done / total, f"{done}/{total} files"))
        except MissingDataError as exc:
            status.empty()
            st.error(f"Could not download MNIST: {exc.why}.")
            return False
        st.rerun()
    return False


def digit_image(pixels: np.ndarray, caption: str | None = None) -> None:
    """Show a (h, w) or (h, w, 3) array in 0..1, enlarged without blurring."""
    st.image(_panel(pixels), caption=caption)


def probability_chart(probabilities: list[float], digit: int | None) -> go.Figure:
    colours = [PRIMARY if d == digit else MUTED for d in range(NUM_CLASSES)]
    figure = go.Figure(go.Bar(x=list(range(NUM_CLASSES)), y=probabilities, marker_color=colours))
    figure.update_layout(
        height=240,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(dtick=1, title="digit"),
        yaxis=dict(range=[0, 1], title="probability"),
    )
    return figure


def saliency_overlay(image28: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """RGB (28, 28, 3): the input in grey, the pixels that drove the prediction in orange."""
    grey = np.stack([image28] * 3, -1) * 0.5
    orange = np.array([1.0, 0.55, 0.1])
    return np.clip(grey + heat[..., None] * orange, 0, 1)


STAGE_CAPTIONS = ("input (ink)", "cropped", "28×28 model input", "why this digit")
STRIP_GAP = 12


def _panel(pixels: np.ndarray) -> Image.Image:
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    scale = DIGIT_PIXELS / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST)


def stage_strip(prediction: Prediction, heat: np.ndarray) -> Image.Image:
    """The preprocessing stages and the saliency overlay side by side: one image, one fetch."""
    stages = prediction.processed.stages
    image28 = prediction.processed.image28
    panels = [_panel(stages["ink"]), _panel(stages["cropped"]), _panel(image28)]
    panels.append(_panel(saliency_overlay(image28, heat)))
    strip = Image.new("RGB", (len(panels) * (DIGIT_PIXELS + STRIP_GAP), DIGIT_PIXELS))
    for i, panel in enumerate(panels):
        strip.paste(panel, (i * (DIGIT_PIXELS + STRIP_GAP), (DIGIT_PIXELS - panel.height) // 2))
    return strip


NO_DIGIT = "—"
EMPTY_PROBABILITIES = [0.0] * NUM_CLASSES
NOTHING_DRAWN = "Nothing drawn: draw a digit, white on black."
NOTHING_IN_IMAGE = "No digit found: the image looks blank."
LOW_CONFIDENCE_WARNING = "Low confidence: the digit may be unclear."
NUMBER_POINTER = "This looks like several digits side by side: the **Number** tab reads whole numbers."


def _no_digit_message(prediction: Prediction, blank_message: str) -> str:
    reason = prediction.processed.not_a_digit
    return f"Not a digit: {reason}." if reason else blank_message


def prediction_summary(prediction: Prediction | None, blank_message: str) -> None:
    """The Prediction metric and what to make of it: shown next to the canvas or the upload."""
    if prediction is None or prediction.blank:
        st.metric("Prediction", NO_DIGIT)
        st.info(blank_message if prediction is None else _no_digit_message(prediction, blank_message))
    else:
        confident = f"{prediction.confidence:.2%} confident"
        st.metric("Prediction", prediction.digit, confident, delta_color="off", delta_arrow="off")
        if prediction.low_confidence:
            st.warning(LOW_CONFIDENCE_WARNING)
    if prediction is not None and looks_like_a_number(prediction.processed):
        st.info(NUMBER_POINTER, icon=":material/pin:")


def prediction_details(prediction: Prediction | None, model, key: str) -> None:
    """The ten probabilities, then the preprocessing stages and the saliency overlay.

    Drawn before the first stroke too (empty), so that the chart's frontend code is loaded and the
    first prediction shows as fast as the next ones."""
    if prediction is None or prediction.blank:
        st.plotly_chart(probability_chart(EMPTY_PROBABILITIES, None), key=f"{key}-probs", config=NO_TOOLBAR)
        return
    chart = probability_chart(prediction.probabilities, prediction.digit)
    st.plotly_chart(chart, key=f"{key}-probs", config=NO_TOOLBAR)
    heat = saliency(model, prediction.processed.tensor, prediction.digit)
    st.image(stage_strip(prediction, heat), caption=" · ".join(STAGE_CAPTIONS))


def show_prediction(prediction: Prediction, model, key: str, blank_message: str) -> None:
    """Summary beside the details, for one uploaded image."""
    left, right = st.columns([1, 2])
    with left:
        prediction_summary(prediction, blank_message)
    with right:
        prediction_details(prediction, model, key)


def _redraw(key: str, objects: list) -> None:
    """Put `objects` on canvas `key`; it then sends the new drawing, which is predicted.

    The canvas reloads only when the initial drawing changes, so each one carries a new revision."""
    previous = st.session_state.get(f"{key}-initial") or {"revision": 0}
    st.session_state[f"{key}-initial"] = {"objects": objects, "revision": previous["revision"] + 1}


def _undo_and_clear(key: str, drawn: list):
    """Buttons that stay visible on touch screens, where the canvas's own toolbar (shown on hover) is
    not; returns their row."""
    row = st.container(horizontal=True, vertical_alignment="center")  # side by side on a phone too
    row.button("Undo", icon=":material/undo:", key=f"{key}-undo", disabled=not drawn, on_click=_redraw,
               args=(key, drawn[:-1]))  # fmt: skip
    row.button("Clear", icon=":material/delete:", key=f"{key}-clear", disabled=not drawn, on_click=_redraw,
               args=(key, []))  # fmt: skip
    return row


def remember_drawing(png: bytes, strokes: list) -> None:
    """Predict's latest drawing: the Inside page opens on it (dropping what its own Undo or Clear
    put on its canvas before)."""
    st.session_state[LAST_DRAWING_KEY] = {"png": png, "objects": strokes}
    st.session_state.pop(f"{INSIDE_CANVAS}-initial", None)


# On a touch screen the canvas's toolbar, invisible until hovered, lies over its top-right corner and
# takes the touches there (streamlit-drawable-canvas 0.13; its card measured 133x30 px, 22 px of it
# over the canvas): that corner is shown as not for drawing.
TOOLBAR_CORNER = (140, 26)  # px, width and height, with a few px to spare
TOOLBAR_CORNER_GREY = (70, 72, 82)


@functools.cache
def toolbar_corner_background(size: tuple[int, int]) -> Image.Image:
    """A black canvas background whose top-right corner, where the toolbar takes touches, is grey."""
    image = Image.new("RGB", size, (0, 0, 0))
    width, height = TOOLBAR_CORNER
    ImageDraw.Draw(image).rectangle([size[0] - width, 0, size[0] - 1, height - 1], fill=TOOLBAR_CORNER_GREY)
    return image


def on_phone() -> bool:
    """True when the browser says it runs on a phone (its User-Agent), where a wide canvas would not fit."""
    return MOBILE_AGENT_TOKEN in st.context.headers.get("User-Agent", "")


def drawing_canvas(
    key: str,
    opening: dict | None = None,
    size: tuple[int, int] = (CANVAS_SIDE, CANVAS_SIDE),
    pen: int = PEN_WIDTH,
) -> tuple[bytes | None, list]:
    """A pen-width slider, the canvas and its Undo and Clear buttons: (the PNG drawn, its strokes).

    `opening` ({"png", "objects"}, a drawing made on another page) is what the canvas starts with
    until Undo or Clear. The canvas sends only what is drawn on it, so until then `opening` stands in.
    On a phone the toolbar's corner is marked on the background, which is not part of the PNG (then
    transparent but for the ink)."""
    from streamlit_drawable_canvas import st_canvas  # tests stand in for it

    override = st.session_state.get(f"{key}-initial")
    initial = override or (opening and {"objects": opening["objects"], "revision": 0})
    # On a phone the slider goes beside Undo and Clear, so that the reading and Right / Wrong fit on
    # the first screen (844 px high); the canvas takes the slider's value from the session meanwhile.
    phone, slider = on_phone(), f"{key}-pen"
    stroke = st.session_state.get(slider, pen) if phone else pen_slider(slider, pen)
    canvas = st_canvas(
        stroke_width=stroke,
        stroke_color="#FFFFFF",
        background_color="#000000",
        background_image=toolbar_corner_background(size) if phone else None,
        width=size[0],
        height=size[1],
        drawing_mode="freedraw",
        initial_drawing=initial,
        return_image_data=True,
        key=key,
    )
    png = canvas.image_bytes if canvas is not None else None
    strokes = (canvas.json_data or {}).get("objects", []) if canvas is not None else []
    if png is None and override is None and opening is not None:
        png, strokes = opening["png"], opening["objects"]
    row = _undo_and_clear(key, strokes)
    if phone:
        with row:
            pen_slider(slider, pen, label_visibility="collapsed")  # its name stays for screen readers
    return png, strokes


def pen_slider(key: str, pen: int, **options) -> int:
    return st.slider("Pen width", 5, 40, pen, key=key, **options)


TEACHING = "teach the model this digit (it is kept as yours)"
SAVED_KEY = "correction_saved"  # what the last Right / Wrong click did: ("success" | "error", text)


def _save_correction(
    png: bytes,
    prediction: Prediction,
    label: int | None,
    source: str,
    checkpoint: str,
    widget: str | None = None,
) -> None:
    """A Right / Wrong callback: the example goes to the corrections store (My digits)."""
    if widget is not None:
        label = st.session_state[widget]
        st.session_state[widget] = None  # ready for the next correction
    if label is None:
        return
    try:
        example = example_from_image(
            png,
            label,
            source,
            prediction.digit,
            prediction.confidence,
            checkpoint,
            processed=prediction.processed,
        )
        _, new = add_example(example, by=signin.actor())
        said = f"Saved to My digits as a {label}." if new else f"Already in My digits as a {label}."
        st.session_state[SAVED_KEY] = ("success", said)
    except (StoreError, ImageError, AccessError) as exc:
        st.session_state[SAVED_KEY] = ("error", f"Not saved: {problem_text(exc)}")


def correction_buttons(prediction: Prediction | None, png: bytes | None, source: str, key: str) -> None:
    """Right, or Wrong with the true digit: one click saves the example to teach the model later."""
    if prediction is None or prediction.blank or png is None:
        return
    if not signin.actor().teaches:
        st.caption(signin.needs_sign_in(TEACHING) if signin.sign_in_on() else signin.DEMO_NOTE)
        return
    checkpoint = Path(st.session_state.get(MODEL_KEY, "")).name
    common = (png, prediction)
    row = st.container(horizontal=True, vertical_alignment="bottom")  # full width: all ten digits fit
    row.button(
        "Right",
        icon=":material/check:",
        key=f"{key}-right",
        on_click=_save_correction,
        args=(*common, prediction.digit, source, checkpoint),
    )
    wrong = f"{key}-wrong"
    row.pills(
        "Wrong? It is a",
        [d for d in range(NUM_CLASSES) if d != prediction.digit],
        key=wrong,
        on_change=_save_correction,
        args=(*common, None, source, checkpoint, wrong),
    )
    outcome = st.session_state.pop(SAVED_KEY, None)
    if outcome is not None:
        (st.success if outcome[0] == "success" else st.error)(outcome[1])


QUEUE_NOTICE_KEY = "queue_notice"  # why the last Start, Stop or Cancel did nothing


def queue_run(*args, **kwargs) -> None:
    """A button callback: start or queue a run (core.runs.jobs.TrainingJob's arguments) as this session's
    person, or keep why not for queue_notice."""
    try:
        training_queue().submit(signin.actor(), *args, **kwargs)
    except (QueueError, AccessError) as exc:  # a second run while one waits, or not allowed
        st.session_state[QUEUE_NOTICE_KEY] = signin.sentence(str(exc))


def queue_notice() -> None:
    if notice := st.session_state.pop(QUEUE_NOTICE_KEY, None):
        st.warning(notice)


def _finetune_metrics(path: str) -> dict | None:
    """A fine-tune's report, or None: another kind of run, a number reader, or a model deleted since."""
    if not checkpoint_exists(path):
        return None
    try:
        return cached_checkpoint(path).metrics.get("finetune")
    except CheckpointError:  # a number reader (core.checkpoint.NumberReaderCheckpoint)
        return None


def finetune_report(path: str, intro: str | None = None) -> None:
    """Before and after, for a fine-tuned checkpoint: on the held-out digits, MNIST, and each person's;
    `intro` above it. Nothing for another kind of run."""
    report = _finetune_metrics(path)
    if not report:
        return
    if intro:
        st.caption(intro)
    measured = "held out" if report["held_out"] else "trained on: too few to hold any out"
    people = report.get("per_person") or []
    rows = {
        "measured on": [f"the digits ({report['corrections_measured']}, {measured})", "MNIST test set",
                        *(f"{row['author'] or LOCAL_AUTHOR} ({row['examples']})" for row in people)],
        "before": [report["corrections_accuracy_before"], report["mnist_accuracy_before"],
                   *(row["before"] for row in people)],
        "after": [report["corrections_accuracy_after"], report["mnist_accuracy_after"],
                  *(row["after"] for row in people)],
    }  # fmt: skip
    kept = report.get("blend")
    blend = f"; {kept:.0%} of the change kept, so that MNIST is not forgotten" if kept and kept < 1 else ""
    st.caption(f"Fine-tuned from `{report['finetuned_from']}` on {report['corrections']} corrections{blend}:")
    percent = st.column_config.NumberColumn(format="%.2f%%")
    st.dataframe(rows, hide_index=True, column_config={"before": percent, "after": percent})
