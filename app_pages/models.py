import itertools
from pathlib import Path

import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from app import session, show, signin
from app.cache import (
    cached_checkpoint,
    cached_checkpoint_list,
    cached_latency_ms,
    cached_onnx,
    cached_reader_list,
)
from core.access import AccessError
from core.catalog import (
    CheckpointInfo,
    chosen_default,
    delete_checkpoint,
    set_default_model,
    stored_models_problem,
)
from core.checkpoint import CheckpointError, checkpoint_bytes, file_name
from core.clock import shown
from core.digits.export import NEEDS, onnx_available

MB = 2**20
CURVE_LAYOUT = dict(height=300, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
TABLE_KEY = "models_table"
READERS_TABLE_KEY = "readers_table"
PENDING_DELETE_KEY = "models_pending_delete"
NOTICE_KEY = "models_notice"  # what the last default-model click did: ("success" | "error", text)
ONNX_HELP = (
    "Input `image`: float32 (N, 1, 28, 28), MNIST-normalised; output `logits` (N, 10). Opens in Netron."
)
CURVE_COLOURS = plotly.colors.qualitative.D3  # distinct hues: the curves cross
CURVES = {"test_accuracy": "Test accuracy per epoch (%)", "train_loss": "Training loss per epoch"}


def model_table(infos: list[CheckpointInfo]) -> list[int]:
    """One row per checkpoint, where a model comes from next to its name; returns the rows the user
    selected."""
    rows = {
        "name": [Path(i.path).name for i in infos],
        "origin": [i.origin for i in infos],
        "test accuracy": [i.test_accuracy for i in infos],
        "trained by": [show.trainer(i.trained_by, i.shipped) for i in infos],
        "model": [f"{i.arch.upper()} {i.shape}" for i in infos],
        "parameters": [i.parameters for i in infos],
        "file MB": [i.file_bytes / MB for i in infos],
        "train s": [i.train_seconds for i in infos],
        "predict ms": [cached_latency_ms(i.path) for i in infos],
        "trained (UTC)": [f"{shown(i.created_at)} on {i.device}" for i in infos],
    }
    event = st.dataframe(
        rows,
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        key=TABLE_KEY,
        # Narrow number columns: the whole table fits a 1400 px window without scrolling sideways.
        column_config={
            "parameters": st.column_config.NumberColumn(format="localized", width="small"),
            "file MB": st.column_config.NumberColumn(format="%.2f", width="small"),
            "test accuracy": st.column_config.NumberColumn(format="%.2f%%", width="small"),
            "train s": st.column_config.NumberColumn(
                format="%.1f", help="training time, without evaluation", width="small"
            ),
            "predict ms": st.column_config.NumberColumn(
                format="%.3f", help="one preprocessed image on this server's CPU, median of 50", width="small"
            ),
        },
    )
    return list(event.selection.rows) if event else []


def curves_figure(infos: list[CheckpointInfo], metric: str) -> go.Figure:
    figure = go.Figure()
    for info, colour in zip(infos, itertools.cycle(CURVE_COLOURS)):
        history = cached_checkpoint(info.path).metrics.get("history") or []
        figure.add_scatter(
            x=[e["epoch"] for e in history],
            y=[e[metric] for e in history],
            mode="lines+markers",
            name=Path(info.path).name,
            line_color=colour,
        )
    figure.update_layout(title=CURVES[metric], **CURVE_LAYOUT)
    figure.update_xaxes(title="epoch", dtick=1)
    return figure


def learning_curves(infos: list[CheckpointInfo]) -> None:
    if not infos:
        st.caption("Select rows in the table to overlay their learning curves.")
        return
    cols = st.columns(len(CURVES))
    for col, metric in zip(cols, CURVES, strict=True):
        col.plotly_chart(curves_figure(infos, metric), key=f"curves-{metric}")


def _forget_pending_delete() -> None:
    st.session_state.pop(PENDING_DELETE_KEY, None)


# The request is kept in session state: a click inside the dialog reruns the page, and the dialog
# must still be there to receive it.
@st.dialog("Delete this model?", on_dismiss=_forget_pending_delete)
def confirm_delete(path: str) -> None:
    st.write(f"`{Path(path).name}` will be removed from this server. This cannot be undone.")
    cols = st.columns(2)
    if cols[0].button("Delete", type="primary", key="confirm-delete"):
        try:
            delete_checkpoint(path, by=signin.actor())  # the sidebar then falls back to the default
        except (CheckpointError, AccessError) as exc:
            st.error(str(exc))
            return
        _forget_pending_delete()
        st.rerun()
    if cols[1].button("Cancel", key="cancel-delete"):
        _forget_pending_delete()
        st.rerun()


def actions(info: CheckpointInfo) -> None:
    name = file_name(info.path)
    active = st.session_state.get(session.MODEL_KEY) == info.path
    cols = st.columns(4)
    cols[0].button(
        "Active" if active else "Make active",
        on_click=session.make_active,
        args=(info.path,),
        disabled=active,
    )
    # Callables are read on click only: no file is read and no ONNX exported on every rerun.
    cols[1].download_button(
        "Download .pt", lambda: checkpoint_bytes(info.path), file_name=name, on_click=session.KEEP_PAGE
    )
    exportable = onnx_available()
    cols[2].download_button(
        "Download ONNX",
        lambda: cached_onnx(info.path),
        file_name=Path(name).with_suffix(".onnx").name,
        mime="application/octet-stream",
        help=ONNX_HELP if exportable else NEEDS,
        disabled=not exportable,
        on_click=session.KEEP_PAGE,
    )
    if not signin.actor().owner:
        return  # deleting and the default for everyone are the owners'
    protected = "Shipped models come with the app and cannot be deleted." if info.shipped else None
    if cols[3].button("Delete", disabled=info.shipped, help=protected):
        st.session_state[PENDING_DELETE_KEY] = info.path
    default = Path(info.path).name == chosen_default()
    st.button(
        "Everyone's default" if default else "Make the default for everyone",
        icon=":material/star:",
        disabled=default,
        on_click=make_default,
        args=(info.path,),
        help="The model every new session starts with, instead of the most accurate.",
    )


def reader_table(readers: list[CheckpointInfo]) -> None:
    st.dataframe(
        {
            "name": [Path(r.path).name for r in readers],
            "origin": ["shipped" if r.shipped else "trained here" for r in readers],
            "trained by": [show.trainer(r.trained_by, r.shipped) for r in readers],
            "numbers read exactly": [r.test_accuracy for r in readers],
            "train s": [r.train_seconds for r in readers],
            "date (UTC)": [shown(r.created_at) for r in readers],
        },
        hide_index=True,
        key=READERS_TABLE_KEY,
        column_config={
            "numbers read exactly": st.column_config.NumberColumn(
                format="%.1f%%", help="of its test numbers, written with MNIST test digits"
            ),
            "train s": st.column_config.NumberColumn(format="%.0f", help="writing its numbers and training"),
        },
    )


def reader_actions(by_path: dict[str, CheckpointInfo]) -> None:
    """Read numbers with a reader in this session; owners delete the ones trained here."""
    paths, in_use = list(by_path), session.reader_in_use()
    chosen = st.selectbox(
        "Number reader",
        paths,
        index=paths.index(in_use) if in_use in by_path else 0,
        format_func=lambda p: Path(p).name,
    )
    using = chosen == in_use
    show.warn_if_poor_reader(by_path[chosen].test_accuracy)
    cols = st.columns(4)
    cols[0].button(
        "Reading numbers" if using else "Read numbers with it",
        on_click=session.use_reader,
        args=(chosen,),
        disabled=using,
        help=session.READER_USE_HELP,
    )
    if not signin.actor().owner:
        return
    shipped = by_path[chosen].shipped
    protected = "The shipped reader comes with the app and cannot be deleted." if shipped else None
    if cols[1].button("Delete reader", disabled=shipped, help=protected):
        st.session_state[PENDING_DELETE_KEY] = chosen


def number_readers() -> dict[str, CheckpointInfo]:
    """The number readers' section; returns them by path."""
    readers = cached_reader_list()
    st.subheader("Number readers")
    st.caption(
        "Number mode reads whole numbers with a number reader. Train one on the Train page "
        "(*Train a number reader*): the readers trained here are kept, and any of them can read "
        "numbers for you."
    )
    reader_table(readers)
    by_path = {r.path: r for r in readers}
    if by_path:
        reader_actions(by_path)
    return by_path


def make_default(path: str) -> None:
    try:
        set_default_model(path, by=signin.actor())
        st.session_state[NOTICE_KEY] = ("success", f"`{Path(path).name}` is now everyone's default model.")
    except (CheckpointError, AccessError) as exc:
        st.session_state[NOTICE_KEY] = ("error", str(exc))


st.title("Models")
if problem := stored_models_problem():
    why = problem if signin.actor().owner else session.STORE_DOWN
    st.warning(f"The models trained here cannot be listed: {why}")
infos = cached_checkpoint_list()
if not infos:
    st.info("No models yet: train one on the Train page.")
    st.stop()
st.caption("Every checkpoint on this server. Select rows to compare their learning curves.")
selected = [infos[row] for row in model_table(infos)]
learning_curves(selected)

st.subheader("Use, download or delete")
by_path = {info.path: info for info in infos}
default = selected[-1].path if selected else st.session_state.get(session.MODEL_KEY)
paths = list(by_path)
chosen = st.selectbox(
    "Model",
    paths,
    index=paths.index(default) if default in by_path else 0,
    format_func=lambda p: Path(p).name,
)
actions(by_path[chosen])
if notice := st.session_state.pop(NOTICE_KEY, None):
    (st.success if notice[0] == "success" else st.error)(notice[1])
readers = number_readers()
pending = st.session_state.get(PENDING_DELETE_KEY)
if pending in by_path or pending in readers:
    confirm_delete(pending)
