from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app_pages import ui
from core.cache import training_slot
from core.config import AUGMENTATIONS, NO_AUGMENT, ModelConfig, default_train_config
from core.data import data_dir_from_env
from core.devices import available_devices
from core.jobs import DONE, FAILED, RUNNING, BusyError

POLL_SECONDS = 0.5
BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
ARCH_LABELS = {"mlp": "MLP (784-hidden-10)", "cnn": "CNN"}
JOB_KEY = "training_job_id"
LR_STEP = 1e-3
YOUR_RUN_IS_GOING = "Your run is still going: press Stop to end it first."
# Distinct hues, not two shades of one: the curves cross.
COLOURS = {"train": "#4c9aff", "test": "#ff8b3d", "validation": "#36b37e", "loss": "#4c9aff"}
CHART_LAYOUT = dict(height=260, margin=dict(l=10, r=10, t=30, b=10))

st.title("Train")
if not ui.data_ready():
    st.stop()

arch = st.radio("Model", list(ARCH_LABELS), format_func=ARCH_LABELS.get, horizontal=True)
recipe = default_train_config(arch)
slot = training_slot()
slot.warm_up()
running = slot.job is not None and slot.job.running
with st.form("settings", enter_to_submit=False):  # only the Start button starts a run
    left, right = st.columns(2)
    # Keys name the arch, so choosing a model resets these fields to that model's recipe.
    default_hidden = ModelConfig(arch).hidden
    hidden = left.number_input(
        "Hidden units / classifier width", 8, 1024, default_hidden, step=8, key=f"hidden-{arch}"
    )
    epochs = left.number_input("Epochs", 1, 50, recipe.epochs, key=f"epochs-{arch}")
    batch_size = left.select_slider("Batch size", BATCH_SIZES, recipe.batch_size, key=f"batch-{arch}")
    lr = right.number_input(
        "Peak learning rate", 1e-5, 1.0, recipe.lr, step=LR_STEP, format="%.4f", key=f"lr-{arch}"
    )
    strengths = [NO_AUGMENT, *AUGMENTATIONS]
    augment = right.selectbox("Augmentation", strengths, strengths.index(recipe.augment), key=f"aug-{arch}")
    seed = right.number_input("Seed", 0, 2**31 - 1, 0)
    devices = available_devices()
    device = right.selectbox("Device", devices, format_func=lambda d: d.label)  # fastest first
    start = st.form_submit_button("Start training", type="primary", disabled=running)

if start:
    config = default_train_config(
        arch, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), augment=augment, seed=int(seed),
        device=device.id,
    )  # fmt: skip
    try:
        job = slot.start(ModelConfig(arch, hidden=int(hidden)), config, data_dir_from_env())
        st.session_state[JOB_KEY] = id(job)
        st.rerun()  # draws the form again, its Start button disabled while the run lasts
    except BusyError as exc:  # another session started one since this page was drawn, or a double click
        mine = st.session_state.get(JOB_KEY) == id(slot.job)
        st.warning(YOUR_RUN_IS_GOING if mine else f"{exc.args[0]}.".capitalize())


def _waiting_for(figure: go.Figure, what: str) -> None:
    figure.add_annotation(text=what, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)


def loss_figure(losses: list[tuple[float, float]], epochs: int) -> go.Figure:
    """Smoothed training loss against the epoch position of each report."""
    figure = go.Figure(
        go.Scatter(x=[x for x, _ in losses], y=[y for _, y in losses], mode="lines", name="loss",
                   line=dict(color=COLOURS["loss"]))
    )  # fmt: skip
    figure.update_layout(title="Training loss (smoothed)", **CHART_LAYOUT)
    figure.update_xaxes(title="epoch", range=[0, epochs], dtick=1)
    if not losses:
        _waiting_for(figure, "The loss appears once training starts")
    return figure


def accuracy_figure(epochs, total_epochs: int) -> go.Figure:
    """Train, test (and validation) accuracy after each epoch, on whole-epoch ticks."""
    x = [e.epoch for e in epochs]
    series = {"train": [e.train_accuracy for e in epochs], "test": [e.test_accuracy for e in epochs]}
    if epochs and epochs[0].val_accuracy is not None:
        series["validation"] = [e.val_accuracy for e in epochs]
    figure = go.Figure()
    for name, values in series.items():
        figure.add_scatter(x=x, y=values, mode="lines+markers", name=name, line=dict(color=COLOURS[name]))
    figure.update_layout(title="Accuracy per epoch (%)", **CHART_LAYOUT)
    figure.update_xaxes(title="epoch", range=[0.5, total_epochs + 0.5], dtick=1)
    if not epochs:
        figure.update_yaxes(range=[0, 100])
        _waiting_for(figure, "Accuracy appears after the first epoch")
    return figure


def show(snap, mine: bool) -> None:
    """Status line, progress and the two live charts for one job snapshot."""
    if snap.status == RUNNING:
        if mine:
            st.button("Stop", on_click=slot.job.stop)
        else:
            st.info("Another session is training on this server; you can watch its progress.")
        if snap.latest is None:
            st.caption("Starting the training process and loading MNIST…")
        else:
            latest = snap.latest
            st.progress(
                latest.fraction_done,
                f"epoch {latest.epoch}/{snap.train_config.epochs} · {latest.samples_per_s:,.0f} images/s · "
                f"ETA {latest.eta_s:.0f} s",
            )
    elif snap.status == FAILED:
        st.error(snap.error)
    else:
        finished = "finished" if snap.status == DONE else "stopped early; the partial model was saved"
        st.success(f"Training {finished}: `{Path(snap.checkpoint).name}`")
        published(snap.checkpoint)  # in every session: the model is the server's, not the starter's
    cols = st.columns(2)
    total_epochs = snap.train_config.epochs
    cols[0].plotly_chart(loss_figure(snap.losses, total_epochs), key="loss")
    cols[1].plotly_chart(accuracy_figure(snap.epochs, total_epochs), key="accuracy")
    if snap.epochs:
        last = snap.epochs[-1]
        st.caption(f"Epoch {last.epoch}: test accuracy {last.test_accuracy:.2f}% after {last.seconds:.1f} s")


@st.fragment(run_every=POLL_SECONDS)
def live(mine: bool) -> None:
    """Polls the worker; once it ends, one full rerun swaps in the static result."""
    snap = slot.job.snapshot()
    if snap.status != RUNNING:
        st.rerun(scope="app")
    show(snap, mine)


def published(path: str) -> None:
    """Buttons to use or download a finished run's checkpoint."""
    cols = st.columns(2)
    cols[0].button("Use as active model", on_click=ui.make_active, args=(path,))
    # A callable is read only on click, not on every rerun of this page.
    cols[1].download_button("Download checkpoint", Path(path).read_bytes, file_name=Path(path).name)


job = slot.job
if job is None:
    st.caption("Choose settings and press Start.")
else:
    mine = st.session_state.get(JOB_KEY) == id(job)
    if job.running:
        live(mine)
    else:
        show(job.snapshot(), mine)
