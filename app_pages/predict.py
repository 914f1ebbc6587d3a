import streamlit as st

from app import canvas, session, show
from core.checkpoint import CheckpointError
from core.config import NUMBER_CANVAS
from core.digits.predict import predict, predict_batch
from core.images import ImageError, open_image
from core.numbers.read import read_number

NOTHING_YET = "Nothing drawn yet."
PHONE_NUMBER_CANVAS = (350, 110)  # fits a 390 px wide phone screen beside the page's margins
PHONE_NUMBER_PEN = 10  # px: the digits are written half as large there
PHONE_NUMBER_HINT = "The grey corner belongs to the canvas's toolbar: start each digit outside it."
MIN_DIGIT_COLUMNS = 8  # digit crops keep their size for numbers of up to 8 digits
NOTHING_READ = (
    "The number reader read no digit in this ink. Write the digits larger and side by side, or, if "
    "a reader trained here is in use, choose a better one on Models."
)
NUMBER_HINT = "Write a number, digits side by side (a year, a price), or upload a photo of one."
PREDICTED_UPLOADS_KEY = "predicted_uploads"  # the files Predict Digit was pressed for
UPLOAD_RESULTS_KEY = "upload_results"  # (model, files) -> their results, kept across reruns

st.title("Predict")
checkpoint = session.active_checkpoint()
if checkpoint is None:
    st.stop()
model = checkpoint.model
if not canvas.on_phone():  # there the sidebar's picker names it: the reading and Right / Wrong fit on screen
    st.caption(f"Model `{checkpoint.path.name}` · {checkpoint.model_config.arch.upper()}")

draw, number, upload = st.tabs(["Draw", "Number", "Upload"])


@st.fragment  # a stroke reruns only this panel, not the page
def drawing_panel() -> None:
    """Canvas, its controls and the result beside it (below it on a phone), predicted after every stroke."""
    session.rerun_if_model_gone(checkpoint)
    phone = canvas.on_phone()  # the columns stack there: Right / Wrong go under the reading, on screen
    left, right = st.columns([1, 2])
    with left:
        drawing, strokes = canvas.drawing_canvas("canvas")
        if drawing is not None:
            canvas.remember_drawing(drawing, strokes)
        prediction = predict(model, drawing) if drawing is not None else None
        show.prediction_summary(prediction, NOTHING_YET if drawing is None else show.NOTHING_DRAWN)
        if phone:
            show.correction_buttons(prediction, drawing, "canvas", key="canvas")
    with right:
        show.prediction_details(prediction, model, key="canvas")
    if not phone:
        show.correction_buttons(prediction, drawing, "canvas", key="canvas")


def digit_row(reading) -> None:
    """Each digit's 28x28 input with what it was read as; unsure ones flagged."""
    columns = st.columns(max(len(reading.digits), MIN_DIGIT_COLUMNS))
    for column, digit in zip(columns, reading.digits, strict=False):
        flag = " ⚠" if digit.low_confidence else ""
        with column:
            show.digit_image(digit.processed.image28, caption=f"{digit.digit} · {digit.confidence:.0%}{flag}")
    unsure = ", ".join(str(i + 1) for i, d in enumerate(reading.digits) if d.low_confidence)
    if unsure:
        st.warning(f"Low confidence on digit {unsure} (⚠): write it more clearly, or apart from the others.")


@st.fragment  # a stroke reruns only this panel
def number_panel() -> None:
    """A wide canvas (or a photo) of a number, read digit by digit after every stroke."""
    session.rerun_if_model_gone(checkpoint)
    phone = canvas.on_phone()
    size, pen = (PHONE_NUMBER_CANVAS, PHONE_NUMBER_PEN) if phone else (NUMBER_CANVAS, canvas.PEN_WIDTH)
    drawing, _ = canvas.drawing_canvas("number-canvas", size=size, pen=pen)
    if phone:
        st.caption(PHONE_NUMBER_HINT)
    photo = st.file_uploader(
        f"…or upload a photo of a number (up to {session.MAX_UPLOAD_MB} MB)", key=session.NUMBER_UPLOAD
    )
    source = photo.getvalue() if photo is not None else drawing
    reading = None
    try:
        reading = read_number(model, source, session.number_reader()) if source is not None else None
    except ImageError as exc:
        st.error(f"**{photo.name}**: {exc}")
    except CheckpointError as exc:
        st.error(f"Number mode cannot read: {exc}.")
    st.metric("Number", reading.number if reading is not None and reading.number else show.NO_DIGIT)
    if session.READER_KEY in st.session_state:  # a reader chosen on Train or Models, not the shipped one
        st.caption(f"Read with the number reader `{session.reader_in_use()}` (Models changes it).")
    if reading is None:
        st.info(NUMBER_HINT)
    elif reading.unread:
        st.warning(NOTHING_READ)
    elif reading.blank:
        st.info(show.NOTHING_DRAWN if photo is None else show.NOTHING_IN_IMAGE)
    else:
        digit_row(reading)


def upload_results(files) -> tuple[list[tuple[str, str]], list[tuple]]:
    """([(name, why it cannot be read)], [(name, prediction, file bytes)]) for the uploaded files,
    predicted once per model and set of files: a Right or Wrong click does not decode them again."""
    key = (str(checkpoint.path), tuple(file.file_id for file in files))
    kept = st.session_state.get(UPLOAD_RESULTS_KEY)
    if kept is not None and kept[0] == key:
        return kept[1]
    errors, readable = [], []
    for file in files:
        data = file.getvalue()
        try:
            readable.append((file.name, open_image(data), data))
        except ImageError as exc:
            errors.append((file.name, str(exc)))
    predictions = predict_batch(model, [image for _, image, _ in readable])
    results = [
        (name, prediction, data) for (name, _, data), prediction in zip(readable, predictions, strict=True)
    ]
    st.session_state[UPLOAD_RESULTS_KEY] = (key, (errors, results))
    return errors, results


with draw:
    drawing_panel()

with number:
    number_panel()

with upload:
    files = st.file_uploader(
        f"Images of digits (PNG, JPEG, WebP, BMP, GIF, …), up to {session.MAX_UPLOAD_MB} MB each",
        accept_multiple_files=True,
        key=session.DIGIT_UPLOADS,
    )
    chosen = [file.file_id for file in files or []]
    if not files:  # the results of removed uploads would keep their bytes alive
        st.session_state.pop(UPLOAD_RESULTS_KEY, None)
    if files and st.button("Predict Digit", type="primary"):
        st.session_state[PREDICTED_UPLOADS_KEY] = chosen
    if files and st.session_state.get(PREDICTED_UPLOADS_KEY) == chosen:  # stays while Right/Wrong rerun
        errors, results = upload_results(files)
        for name, error in errors:
            st.error(f"**{name}**: {error}")
        for index, (name, prediction, png) in enumerate(results):
            st.divider()
            st.markdown(f"**{name}**")
            show.show_prediction(
                prediction, model, key=f"upload-{index}", blank_message=show.NOTHING_IN_IMAGE
            )
            show.correction_buttons(prediction, png, "upload", key=f"upload-{index}")
