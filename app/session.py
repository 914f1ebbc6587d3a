"""What a session holds: its model and reader, the address bar's link, the data, the store's state and
the training queue's notices. The pages read widgets, call core, and render through app/."""

from __future__ import annotations

from pathlib import Path

# Plotly takes pandas from sys.modules without the import lock: a session whose chart ran while
# another session's first st.dataframe was importing pandas got a half-imported module ("partially
# initialized module 'pandas'", in a browser test's server log). Every run imports this module
# first, so pandas is whole before any page draws.
import pandas  # noqa: F401
import streamlit as st

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
from core.data import DATA_DIR_ENV, RAW_FILES, MissingDataError, data_present, download_mnist, raw_folder
from core.images import MAX_FILE_BYTES
from core.numbers.reader import READER_PATH
from core.runs.jobs import QueueError
from core.runs.requests import RunRequest
from core.share import MODEL_PARAM
from core.store import StoreUnavailable

MODEL_KEY = "model_path"
READER_KEY = "number_reader"  # a reader trained here that this session reads numbers with
READER_USE_HELP = "Number mode and Inside read numbers with this reader, in this session"
LINK_READ_KEY = "model_link_read"
MODEL_GONE_KEY = "model_gone"  # what the sidebar says once when the active model was deleted
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
    which falls back to the default model and says so. Only this model is looked up: listing every
    model (a glob, a stat per file and a store query) cost a Draw stroke about a tenth of its CPU."""
    if not checkpoint_exists(checkpoint.path):
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


QUEUE_NOTICE_KEY = "queue_notice"  # why the last Start, Stop or Cancel did nothing


def queue_run(request: RunRequest) -> None:
    """A button callback: start or queue a run as this session's person, or keep why not for
    queue_notice."""
    try:
        training_queue().submit(signin.actor(), request)
    except (QueueError, AccessError) as exc:  # a second run while one waits, or not allowed
        st.session_state[QUEUE_NOTICE_KEY] = signin.sentence(str(exc))


def queue_notice() -> None:
    if notice := st.session_state.pop(QUEUE_NOTICE_KEY, None):
        st.warning(notice)
