"""The class view, for owners: who taught what, what the active model gets wrong for each person,
and one fine-tune on everyone's digits."""

import streamlit as st

from app import session, show, signin
from app.cache import cached_checkpoint, training_queue
from core.access import EVERYONE, AccessError
from core.corrections import StoreError, counts_by_author, list_examples
from core.data import data_dir_from_env, data_present
from core.digits.classroom import LOCAL_AUTHOR, by_person
from core.digits.finetune import MIN_CORRECTIONS, finetune_config
from core.nets import NUM_CLASSES
from core.runs.jobs import RUNNING
from core.runs.requests import FinetuneRun
from core.store import store_url

st.title("Class")
who = signin.actor()
if not who.owner:  # not in a non-owner's navigation at all; the core calls below refuse them too
    st.error("The class view is for the app's owners.")
    st.stop()
st.caption("Everyone's digits, person by person: what they taught, and what the active model gets wrong.")


def counts_table(per_author: dict) -> dict[str, list]:
    people = sorted(per_author, key=lambda author: -sum(per_author[author].values()))
    table = {"person": [author or LOCAL_AUTHOR for author in people],
             "examples": [sum(per_author[author].values()) for author in people]}  # fmt: skip
    for digit in range(NUM_CLASSES):
        table[str(digit)] = [per_author[author][digit] for author in people]
    return table


def mistakes_table(reports) -> dict[str, list]:
    return {
        "person": [report.who for report in reports],
        "examples": [report.examples for report in reports],
        "read right": [report.accuracy for report in reports],
        "most frequent mistakes": [report.mistakes_text() for report in reports],
    }


def class_finetune(path: str) -> None:
    """The button's callback: a fine-tune of the active model on every person's examples."""
    start = cached_checkpoint(path)
    config = finetune_config(start.model_config.arch)
    everyone = {"corrections": store_url(), "whose": EVERYONE}
    session.queue_run(FinetuneRun(start.model_config, config, data_dir_from_env(), start=path, **everyone))


try:
    per_author = counts_by_author(by=who)
    examples = list_examples(by=who, whose=EVERYONE)
except (StoreError, AccessError) as exc:
    st.error(session.problem_text(exc))
    st.stop()
if not examples:
    st.info("Nobody has taught the model yet: digits marked Right or Wrong on Predict appear here.")
    st.stop()

st.subheader("Examples per person and digit")
st.dataframe(counts_table(per_author), hide_index=True)

checkpoint = session.active_checkpoint()
if checkpoint is None:
    st.stop()
st.subheader(f"What `{checkpoint.path.name}` gets wrong, by person")
percent = st.column_config.NumberColumn(format="%.1f%%")
st.dataframe(mistakes_table(by_person(checkpoint.model, examples)), hide_index=True,
             column_config={"read right": percent})  # fmt: skip

st.subheader("A class model")
queue = training_queue()
st.button(
    "Fine-tune on everyone's digits",
    icon=":material/school:",
    type="primary",
    disabled=len(examples) < MIN_CORRECTIONS or queue.waiting_run_of(who) is not None or not data_present(),
    on_click=class_finetune,
    args=(str(checkpoint.path),),
)
st.caption(
    f"From `{checkpoint.path.name}`, on the {len(examples)} digits everyone taught (it needs at least "
    f"{MIN_CORRECTIONS}). The run shows on the Train page; its report gives before and after for each "
    "person and on MNIST."
)
if not data_present():
    st.caption("Fine-tuning needs MNIST on this server: the Train page downloads it.")
session.queue_notice()
snap = queue.job.snapshot() if queue.job else None
if snap is not None and snap.checkpoint:  # a class model's report; a reader's run has none
    show.finetune_report(snap.checkpoint, intro=f"The last run on this server: `{snap.checkpoint}`")
elif snap is not None and snap.status == RUNNING:
    st.info("A run is training: follow it on the Train page.")
