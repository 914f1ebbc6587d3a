"""Rendering core's results: predictions and their charts, model cards, corrections' buttons and reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from app import signin
from app.cache import (
    cached_checkpoint,
)
from app.session import MODEL_KEY, problem_text
from core.access import AccessError
from core.checkpoint import Checkpoint, CheckpointError, checkpoint_exists
from core.clock import shown
from core.corrections import StoreError, add_example, example_from_image
from core.digits.classroom import LOCAL_AUTHOR
from core.digits.predict import Prediction, saliency
from core.images import ImageError
from core.nets import NUM_CLASSES, count_parameters
from core.numbers.read import looks_like_a_number

# Ten bars need no zoom or pan, and on a phone Plotly's toolbar would sit over them.
NO_TOOLBAR = {"displayModeBar": False}
PRIMARY, MUTED = "#4c9aff", "#7a869a"  # the chosen digit's bar, the others
POSITIVE, NEGATIVE = "#b2182b", "#2166ac"  # red and blue, as core.digits.inside's diverging colours
DIGIT_PIXELS = 140  # 28x28 inputs are shown 5x, pixel-sharp
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


def digit_image(pixels: np.ndarray, caption: str | None = None) -> None:
    """Show a (h, w) or (h, w, 3) array in 0..1, enlarged without blurring."""
    st.image(_panel(pixels), caption=caption)


def probability_chart(probabilities: list[float], digit: int | None) -> dict:
    """The ten probabilities as a Plotly spec. A plain dict, because st.plotly_chart validates what it
    is given: a go.Figure would be built and validated twice on every stroke (3 ms of a 19 ms stroke)."""
    colours = [PRIMARY if d == digit else MUTED for d in range(NUM_CLASSES)]
    digits = list(range(NUM_CLASSES))
    bars = {"type": "bar", "x": digits, "y": list(probabilities), "marker": {"color": colours}}
    layout = {
        "height": 240,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "xaxis": {"dtick": 1, "title": "digit"},
        "yaxis": {"range": [0, 1], "title": "probability"},
    }
    return {"data": [bars], "layout": layout}


def saliency_overlay(image28: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """RGB (28, 28, 3): the input in grey, the pixels that drove the prediction in orange."""
    grey = np.stack([image28] * 3, -1) * 0.5
    orange = np.array([1.0, 0.55, 0.1])
    return np.clip(grey + heat[..., None] * orange, 0, 1)


STAGE_CAPTIONS = ("input (ink)", "cropped", "28×28 model input")
STRIP_GAP = 12
WHY_TITLE = "Why this digit?"
WHY_CAPTION = "The model's 28×28 input in grey, the pixels that pushed it towards {digit} in orange."


def _panel(pixels: np.ndarray) -> Image.Image:
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    scale = DIGIT_PIXELS / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST)


def stage_strip(prediction: Prediction) -> Image.Image:
    """The preprocessing stages side by side: one image, one fetch."""
    stages = prediction.processed.stages
    panels = [_panel(stages["ink"]), _panel(stages["cropped"]), _panel(prediction.processed.image28)]
    strip = Image.new("RGB", (len(panels) * (DIGIT_PIXELS + STRIP_GAP), DIGIT_PIXELS))
    for i, panel in enumerate(panels):
        strip.paste(panel, (i * (DIGIT_PIXELS + STRIP_GAP), (DIGIT_PIXELS - panel.height) // 2))
    return strip


def why_overlay(prediction: Prediction, model, key: str) -> None:
    """The saliency overlay, in an expander: integrated gradients cost a stroke about as much as
    reading it, so they run only while the expander is open (its state reruns the panel)."""
    why = st.expander(WHY_TITLE, icon=":material/lightbulb:", key=f"{key}-why", on_change="rerun")
    if why.open:
        heat = saliency(model, prediction.processed.tensor, prediction.digit)
        overlay = _panel(saliency_overlay(prediction.processed.image28, heat))
        why.image(overlay, caption=WHY_CAPTION.format(digit=prediction.digit), width=DIGIT_PIXELS)


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
    """The ten probabilities, then the preprocessing stages and, on request, the saliency overlay.

    Drawn before the first stroke too (empty), so that the chart's frontend code is loaded and the
    first prediction shows as fast as the next ones."""
    if prediction is None or prediction.blank:
        st.plotly_chart(probability_chart(EMPTY_PROBABILITIES, None), key=f"{key}-probs", config=NO_TOOLBAR)
        return
    chart = probability_chart(prediction.probabilities, prediction.digit)
    st.plotly_chart(chart, key=f"{key}-probs", config=NO_TOOLBAR)
    st.image(stage_strip(prediction), caption=" · ".join(STAGE_CAPTIONS))
    why_overlay(prediction, model, key)


def show_prediction(prediction: Prediction, model, key: str, blank_message: str) -> None:
    """Summary beside the details, for one uploaded image."""
    left, right = st.columns([1, 2])
    with left:
        prediction_summary(prediction, blank_message)
    with right:
        prediction_details(prediction, model, key)


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
