import plotly.graph_objects as go
import streamlit as st

from app import session, show, signin
from core.access import EVERYONE, AccessError, may_change
from core.corrections import StoreError, counts, delete, list_examples, relabel, where_stored
from core.corrections_zip import import_zip, zip_bytes
from core.nets import NUM_CLASSES
from core.store import embedded, store_url

ANY = "any"
GALLERY_COLUMNS = 6
MAX_SHOWN = 60  # examples drawn at once; a filter narrows them down
THUMBNAIL_PX = 84
CLOUD_NOTICE = (
    "This store is a file on the server's disk. On Streamlit Community Cloud that disk is **not kept** "
    "across restarts and redeploys: give the app a PostgreSQL store (docs/deploying.md), or **export** "
    "your digits and import the zip after a restart."
)
MESSAGE_KEY = "my_digits_message"

st.title("My digits")
who = signin.actor()
if not who.teaches:
    st.info(signin.needs_sign_in(show.TEACHING) if signin.sign_in_on() else signin.DEMO_NOTE)
    st.stop()
# Owners see and change everyone's examples; a signed-in user only their own.
whose = EVERYONE if who.owner else who.email
whose_digits = "Everyone's" if who.owner and who.signed_in else "The"
where = f"`{where_stored()}`" if who.owner else "the app's store"  # its address is for owners only
st.caption(
    f"{whose_digits} digits marked Right or Wrong on Predict, "
    f"with their true label: the Train page can fine-tune the active model on them. Stored in "
    f"{where}."
)
if embedded(store_url()):
    st.info(CLOUD_NOTICE, icon=":material/cloud_off:")


def say(kind: str, text: str) -> None:
    st.session_state[MESSAGE_KEY] = (kind, text)


def do_relabel(example_id: int, widget: str) -> None:
    try:
        relabel(example_id, st.session_state[widget], by=signin.actor())
        say("success", f"Example {example_id} is now a {st.session_state[widget]}.")
    except (StoreError, AccessError) as exc:
        say("error", session.problem_text(exc))


def do_delete(example_id: int) -> None:
    try:
        delete(example_id, by=signin.actor())
        say("success", f"Example {example_id} deleted.")
    except (StoreError, AccessError) as exc:
        say("error", session.problem_text(exc))


def counts_chart(per_digit: dict[int, int]) -> go.Figure:
    figure = go.Figure(
        go.Bar(
            x=list(per_digit),
            y=list(per_digit.values()),
            marker_color=show.PRIMARY,
            text=list(per_digit.values()),
            textposition="outside",
        )
    )
    figure.update_layout(
        height=200,
        margin=dict(l=10, r=10, t=20, b=10),
        xaxis=dict(dtick=1, title="true digit"),
        yaxis=dict(title="examples", rangemode="tozero"),
    )
    return figure


def gallery(examples) -> None:
    for start in range(0, len(examples), GALLERY_COLUMNS):
        for column, example in zip(
            st.columns(GALLERY_COLUMNS), examples[start : start + GALLERY_COLUMNS], strict=False
        ):
            with column:
                said = "—" if example.predicted is None else example.predicted
                sure = "" if example.confidence is None else f" ({example.confidence:.0%})"
                st.image(example.png, width=THUMBNAIL_PX, caption=f"a {example.label} · said {said}{sure}")
                if who.signed_in:
                    st.caption(example.author or "added locally")
                if not may_change(who, example.author):
                    continue
                widget = f"relabel-{example.id}"
                st.selectbox(
                    "Label",
                    range(NUM_CLASSES),
                    index=example.label,
                    key=widget,
                    on_change=do_relabel,
                    args=(example.id, widget),
                    label_visibility="collapsed",
                )
                st.button(
                    "Delete",
                    key=f"delete-{example.id}",
                    icon=":material/delete:",
                    on_click=do_delete,
                    args=(example.id,),
                )


def export_and_import(total: int) -> None:
    left, right = st.columns(2)
    with left:
        st.download_button(
            "Export all as zip" if who.owner else "Export mine as zip",
            # Read on click, outside any script run (where st.user is unknown): the identity of the
            # run that drew the button is bound now. Signing out starts a new session, whose
            # buttons are new.
            data=lambda by=who: zip_bytes(list_examples(by=by, whose=whose)),
            file_name="my-digits.zip",
            mime="application/zip",
            icon=":material/download:",
            disabled=not total,
            help="PNGs, plus labels.csv: file, label, predicted, confidence, source, time, author",
            on_click=session.KEEP_PAGE,
        )
    if not who.owner:
        return  # importing is for owners: a zip may hold anyone's examples
    with right:
        upload = st.file_uploader(
            "Import a zip exported here (merged; duplicates skipped)", type=["zip"], key="my-digits-import"
        )
        if upload is not None and st.button("Import", icon=":material/upload:"):
            try:
                summary = import_zip(upload.getvalue(), by=signin.actor())
                say("success", f"Imported {summary['imported']}, skipped {summary['skipped']} already here.")
            except (StoreError, AccessError) as exc:
                say("error", session.problem_text(exc))
            st.rerun()


try:
    per_digit = counts(by=who, whose=whose)
except StoreError as exc:
    st.error(session.problem_text(exc))
    st.stop()
message = st.session_state.pop(MESSAGE_KEY, None)
if message:
    (st.success if message[0] == "success" else st.error)(message[1])
total = sum(per_digit.values())
st.metric("Examples", total)
st.plotly_chart(counts_chart(per_digit), key="my-digits-counts")
export_and_import(total)
if not total:
    st.info("No digits yet: on Predict, mark a prediction Right, or Wrong with its true digit.")
    st.stop()
choice = st.segmented_control("Show", [ANY, *range(NUM_CLASSES)], default=ANY, key="my-digits-filter")
label = None if choice in (ANY, None) else choice
shown = list_examples(label=label, newest=MAX_SHOWN, by=who, whose=whose)
matching = total if label is None else per_digit[label]
if matching:
    st.caption(f"Showing {len(shown)} of {matching}, newest first. Change a label or delete one below.")
else:
    st.info(f"No {label}s among these digits yet: choose another digit, or Any.")
gallery(shown)
