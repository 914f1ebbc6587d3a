from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

from app import session, signin
from app.cache import cached_checkpoint, training_queue
from app.run_view import view_of
from core.access import EVERYONE, AccessError
from core.checkpoint import checkpoint_exists, file_name
from core.config import AUGMENT_HELP, READER_MINUTES, ModelConfig, default_train_config
from core.corrections import StoreError, counts
from core.data import data_dir_from_env
from core.devices import available_devices
from core.digits.finetune import (
    CORRECTION_SHARE,
    FINETUNE_EPOCHS,
    HOLD_OUT_RULE,
    MIN_CORRECTIONS,
    finetune_config,
)
from core.numbers.reader import ReaderConfig
from core.numbers.train import ReaderTrainConfig
from core.runs.jobs import DONE, FAILED, RUNNING, QueueError, TrainingJob, WaitingRun
from core.runs.requests import DigitRun, FinetuneRun, ReaderRun
from core.share import (
    BATCH_SIZES,
    EPOCHS_RANGE,
    HIDDEN_RANGE,
    LR_RANGE,
    SEED_RANGE,
    STRENGTHS,
    read_setup,
    setup_query,
)
from core.store import store_url

# A watched run shares the CPU with the server and the browser: each redraw is CPU the run loses.
LOSS_POLL_S = 1.0  # the loss curve moves once a second
ACCURACY_POLL_S = 3.0  # a finished epoch's accuracy shows within 3 s
ARCH_LABELS = {"mlp": "MLP (784-hidden-10)", "cnn": "CNN"}
LR_STEP = 1e-3
QUEUE_POLL_S = 2.0  # a waiting run's place in the queue
READER_MINUTES_RANGE = (0.1, 60.0)
READER_MINUTES_KEY = "reader-minutes"
USERS_MAY_NOT_TRAIN = "Training is for the owners here: they have not let signed-in users train."
FIELD_KEYS = {  # setup field -> widget key; per-arch keys reset the fields when the model changes
    "hidden": "hidden-{arch}", "epochs": "epochs-{arch}", "batch": "batch-{arch}", "lr": "lr-{arch}",
    "augment": "aug-{arch}", "seed": "seed",
}  # fmt: skip
ARCH_KEY, DEVICE_KEY, LINK_READ_KEY = "arch", "device", "train_link_read"
SUBMITTED_KEY = "train_fields_submitted"  # {field key: value} as last set by a link, a default or a submit


def field_keys(arch: str) -> dict[str, str]:
    return {name: key.format(arch=arch) for name, key in FIELD_KEYS.items()}


def recipe_values(arch: str) -> dict[str, object]:
    recipe = default_train_config(arch)
    return {
        "hidden": ModelConfig(arch).hidden, "epochs": recipe.epochs, "batch": recipe.batch_size,
        "lr": recipe.lr, "augment": recipe.augment, "seed": recipe.seed,
    }  # fmt: skip


def read_link() -> list[str]:
    """On the session's first visit, a shared link's settings become the fields' values; returns
    a notice for each value it ignored."""
    if st.session_state.get(LINK_READ_KEY):
        return []
    st.session_state[LINK_READ_KEY] = True
    setup, notices = read_setup(st.query_params.to_dict())
    arch = setup.pop("arch", "mlp")
    st.session_state[ARCH_KEY] = arch
    keys = field_keys(arch)
    for name, value in setup.items():
        st.session_state[keys[name]] = value
    return notices


def settle_fields(arch: str) -> None:
    """Fields not set by the user or a link start at the arch's recipe (widgets take their value
    from session state only, so a link's value is never overridden by a default), and keep the
    values last submitted. In the browser, when Start was pressed while the page's first run was
    still drawing, the full rerun that follows the run's end received every field of the form at
    its minimum (8 units, 1 epoch, rate 0.00001), and a second Start trained with them. A form's
    fields change only when it is submitted, and both its buttons record the values then
    (`remember_fields`), so a field that differs from them is put back."""
    keys, submitted = field_keys(arch), st.session_state.setdefault(SUBMITTED_KEY, {})
    for name, value in recipe_values(arch).items():
        key = keys[name]
        submitted.setdefault(key, st.session_state.setdefault(key, value))
        if st.session_state[key] != submitted[key]:
            st.session_state[key] = submitted[key]


def remember_fields(keys: dict[str, str]) -> None:
    """The form's buttons' callback (first thing Start does): these are the fields' values now."""
    st.session_state[SUBMITTED_KEY].update({key: st.session_state[key] for key in keys.values()})


def start_run(arch: str, keys: dict[str, str]) -> None:
    """Start's callback. It runs before the page does, so the page's one run already shows the run
    in progress with Start disabled: a second run to get there redrew the page in the run's first
    second, CPU the run needs on a small machine."""
    remember_fields(keys)
    values = {name: st.session_state[key] for name, key in keys.items()}
    config = default_train_config(
        arch, epochs=int(values["epochs"]), batch_size=int(values["batch"]), lr=float(values["lr"]),
        augment=values["augment"], seed=int(values["seed"]), device=st.session_state[DEVICE_KEY].id,
    )  # fmt: skip
    session.queue_run(DigitRun(ModelConfig(arch, hidden=int(values["hidden"])), config, data_dir_from_env()))


def start_finetune(path: str) -> None:
    """The fine-tune button's callback: a run from the active checkpoint, corrections mixed in."""
    start = cached_checkpoint(path)
    config = finetune_config(start.model_config.arch, device=st.session_state[DEVICE_KEY].id)
    run = FinetuneRun(
        start.model_config, config, data_dir_from_env(), start=path, corrections=store_url(), whose=yours()
    )
    session.queue_run(run)


def yours() -> str | None:
    """The examples a fine-tune learns from: a signed-in person's own; everything on a local run."""
    who = signin.actor()
    return who.email if who.signed_in else EVERYONE


def finetune_offer() -> None:
    """Teach the active model the person's corrections (My digits), when there are enough."""
    if not who.teaches:
        return
    path = st.session_state.get(session.MODEL_KEY)
    try:
        stored = sum(counts(by=who, whose=yours()).values())
        # A signed-in owner's My digits shows everyone's: say how many that is, and where to use them.
        everyone = sum(counts(by=who, whose=EVERYONE).values()) if who.owner and who.signed_in else None
    except (StoreError, AccessError) as exc:
        st.error(f"My digits cannot be read: {session.problem_text(exc)}")
        return
    enough = stored >= MIN_CORRECTIONS
    label = "Fine-tune the active model on my digits"
    blocked = not who.may_train or not enough or not path
    st.button(label, icon=":material/school:", disabled=blocked, on_click=start_finetune, args=(path,))
    if enough:
        st.caption(
            f"From `{Path(path).name}`: {FINETUNE_EPOCHS} epoch of MNIST with your {stored} digits as "
            f"{CORRECTION_SHARE:.0%} of every batch, augmented; {HOLD_OUT_RULE}."
        )
    else:
        shown = (
            "" if everyone is None else f" (My digits shows everyone's {everyone}: Class fine-tunes on them)"
        )
        st.caption(
            f"Fine-tuning needs at least {MIN_CORRECTIONS} of your digits; you have added {stored}{shown}. "
            "Mark predictions Right or Wrong on Predict to add them."
        )


def share_link(setup: dict[str, object]) -> str:
    page_url = (st.context.url or "").split("?")[0]  # None when the browser's address is unknown
    return f"{page_url}?{urlencode(setup_query(setup) | session.model_query())}"


st.title("Train")
if not session.data_ready():
    st.stop()

for notice in read_link():
    st.warning(f"From the link: {notice}.")
arch = st.radio("Model", list(ARCH_LABELS), format_func=ARCH_LABELS.get, horizontal=True, key=ARCH_KEY)
settle_fields(arch)
keys = field_keys(arch)
who = signin.actor()
if not who.may_train:
    if not signin.sign_in_on():
        st.info(signin.DEMO_NOTE)
    else:
        st.info(USERS_MAY_NOT_TRAIN if who.teaches else signin.needs_sign_in("train models"))
queue = training_queue()
if who.may_train:
    queue.warm_up()
running = queue.busy
waiting = queue.waiting_run_of(who) if who.may_train else None
if (canceller := queue.cancelled_by_other(who)) is not None:
    st.warning(f"Your waiting run was cancelled by {canceller}.")
with st.form("settings", enter_to_submit=False):  # only the Start button starts a run
    left, right = st.columns(2)
    hidden = left.number_input("Hidden units / classifier width", *HIDDEN_RANGE, step=8, key=keys["hidden"])
    epochs = left.number_input("Epochs", *EPOCHS_RANGE, key=keys["epochs"])
    batch_size = left.select_slider("Batch size", BATCH_SIZES, key=keys["batch"])
    lr = right.number_input("Peak learning rate", *LR_RANGE, step=LR_STEP, format="%.4f", key=keys["lr"])
    augment = right.selectbox("Augmentation", STRENGTHS, key=keys["augment"], help=AUGMENT_HELP)
    seed = right.number_input("Seed", *SEED_RANGE, key=keys["seed"])
    devices = available_devices()
    right.selectbox("Device", devices, format_func=lambda d: d.label, key=DEVICE_KEY)  # fastest first
    buttons = st.columns([1, 1, 2])
    buttons[0].form_submit_button(
        "Queue training" if running else "Start training",
        type="primary",
        disabled=not who.may_train or waiting is not None,
        on_click=start_run,
        args=(arch, keys),
        help="One run trains at a time on this server; yours waits its turn" if running else None,
    )
    share = buttons[1].form_submit_button("Share these settings", on_click=remember_fields, args=(keys,))

setup = {"arch": arch, "hidden": hidden, "epochs": epochs, "batch": batch_size, "lr": lr, "augment": augment,
         "seed": seed}  # fmt: skip
session.mirror_in_address_bar(setup_query(setup))
if share:
    st.caption("Anyone who opens this link gets these settings:")
    st.code(share_link(setup), language=None)


def start_reader() -> None:
    """The reader button's callback: a number reader trained for the minutes chosen."""
    # The numbers are written in the training process itself: two more processes would import torch
    # twice more, about 1.4 GB, past what a Community Cloud app may use beside the server.
    config = ReaderTrainConfig(minutes=float(st.session_state[READER_MINUTES_KEY]), workers=1)
    session.queue_run(ReaderRun(ReaderConfig(), config, data_dir_from_env()))


def reader_offer() -> None:
    """Train a number reader: the network Number mode reads whole numbers with."""
    with st.expander("Train a number reader (Number mode)", icon=":material/pin:"):
        st.caption(
            "Number mode reads a whole number at once with a second network, the number reader (a CRNN "
            "trained with CTC). It learns from 12,000 numbers written with MNIST's training digits "
            "(about 4 minutes to write), then trains for the minutes chosen; each round ends with the "
            "share of numbers written with MNIST's test digits that it reads exactly right."
        )
        st.number_input("Minutes of training", *READER_MINUTES_RANGE, READER_MINUTES, step=0.5,
                        key=READER_MINUTES_KEY)  # fmt: skip
        st.button(
            "Queue training a reader" if running else "Train a number reader",
            disabled=not who.may_train or waiting is not None,
            on_click=start_reader,
        )


finetune_offer()
reader_offer()
session.queue_notice()


def cancel(run: WaitingRun) -> None:
    try:
        queue.cancel(run.id, signin.actor())
    except (QueueError, AccessError) as exc:
        st.session_state[session.QUEUE_NOTICE_KEY] = signin.sentence(str(exc))


def queue_panel() -> None:
    """Where this person's run waits, with Cancel; reruns the page once it has started."""
    run = queue.waiting_run_of(signin.actor())
    if run is None:
        st.rerun(scope="app")
    place = queue.position(run)
    st.info(f"Your run waits for the one training now: number {place} of {len(queue.waiting)} in the queue.")
    st.button("Cancel my waiting run", icon=":material/cancel:", on_click=cancel, args=(run,))


if waiting is not None:
    st.fragment(run_every=QUEUE_POLL_S)(queue_panel)()
elif queue.waiting and who.owner:  # owners may cancel anyone's waiting run
    for number, run in enumerate(list(queue.waiting), 1):
        row = st.container(horizontal=True, vertical_alignment="center")
        row.caption(f"Waiting {number}: {run.by}'s {run.request.name.upper()} run")
        row.button("Cancel", key=f"cancel-{run.id}", on_click=cancel, args=(run,))


def stop(job: TrainingJob) -> None:
    try:
        job.stop_by(signin.actor())
    except AccessError as exc:
        st.session_state[session.QUEUE_NOTICE_KEY] = signin.sentence(str(exc))


def stop_button(job: TrainingJob) -> None:
    """Stop for the person who started the run; an owner's Stop of another's run names them."""
    mine = job.started_by.email == who.email
    st.button("Stop" if mine else f"Stop {job.started_by}'s run", on_click=stop, args=(job,))


def status(job: TrainingJob | None) -> None:
    """Above the charts: Stop (or a note) while a run trains; how it ended once it has."""
    snap = job.snapshot() if job else None
    if snap is None:
        st.caption("Choose settings and press Start.")
    elif snap.status == RUNNING:
        if job.may_stop(who):
            stop_button(job)
        else:
            st.info("Another person's run is training on this server; you can watch its progress.")
    elif snap.status == FAILED:
        st.error(snap.error)
    else:
        finished = "finished" if snap.status == DONE else "stopped early; the partial model was saved"
        st.success(f"Training {finished}: `{Path(snap.checkpoint).name}`")
        if not checkpoint_exists(snap.checkpoint):
            st.warning(f"`{file_name(snap.checkpoint)}` has since been deleted (on Models).")
            return
        view_of(snap).ended(snap)


def shown_run() -> TrainingJob | None:
    """The run this page shows: the person's own latest run (training, or ended: its result stays
    while the next person's trains, until they start another); else the server's current or last
    run, which anyone may watch."""
    return (queue.latest_run_of(who) if who.may_train else None) or queue.job


def planned_epochs(snap, form_epochs: int) -> int:
    """The charts' x range: the run's epochs, or before any run the form's."""
    return snap.planned_epochs if snap else form_epochs


def loss_panel(job: TrainingJob | None, form_epochs: int, polling: bool) -> None:
    """The loss curve, and the progress under it while a run trains. A polling panel that sees the
    run end reruns the page once: that stops the polling and shows the finished view."""
    snap = job.snapshot() if job else None
    if polling and snap.status != RUNNING:
        st.rerun(scope="app")
    view = view_of(snap)
    st.plotly_chart(
        view.loss_figure(snap.losses if snap else [], planned_epochs(snap, form_epochs)), key="loss"
    )
    if polling and snap.latest is None:
        st.caption("Starting the training process and loading MNIST…")
    elif polling:
        view.progress(snap)


def accuracy_panel(job: TrainingJob | None, form_epochs: int) -> None:
    snap = job.snapshot() if job else None
    view = view_of(snap)
    st.plotly_chart(
        view.accuracy_figure(snap.epochs if snap else [], planned_epochs(snap, form_epochs)), key="accuracy"
    )
    if snap and snap.epochs:
        view.caption(snap)


def panels(job: TrainingJob | None, form_epochs: int) -> None:
    """Status above, loss and accuracy side by side, laid out the same before, during and after a run:
    Start then updates the two charts the page already shows instead of creating them, which cost the
    browser about a second of CPU in the run's first second. While the run trains, only the two charts
    (and the progress under the loss) are polled: the loss every second, the accuracy every 3 s."""
    polling = job is not None and job.running
    status(job)
    if queue.busy and queue.job is not job:
        st.caption("Another person's run is training on this server now.")
    left, right = st.columns(2)
    with left:
        st.fragment(run_every=LOSS_POLL_S if polling else None)(loss_panel)(job, form_epochs, polling)
    with right:
        st.fragment(run_every=ACCURACY_POLL_S if polling else None)(accuracy_panel)(job, form_epochs)


panels(shown_run(), int(epochs))
