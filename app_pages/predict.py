import streamlit as st
from streamlit_drawable_canvas import st_canvas

from app_pages import ui
from core.predict import predict, predict_batch
from core.preprocess import MAX_FILE_BYTES, ImageError, open_image

CANVAS_SIDE = 280
INITIAL_DRAWING_KEY = "canvas_initial"  # what Undo and Clear put on the canvas
NOTHING_YET = "Nothing drawn yet."
MAX_UPLOAD_MB = MAX_FILE_BYTES // 2**20

st.title("Predict")
checkpoint = ui.active_checkpoint()
if checkpoint is None:
    st.stop()
model = checkpoint.model
st.caption(f"Model `{checkpoint.path.name}` · {checkpoint.model_config.arch.upper()}")

draw, upload = st.tabs(["Draw", "Upload"])


def redraw(objects: list) -> None:
    """Put `objects` on the canvas; it then sends the new drawing, which is predicted.

    The canvas reloads only when the initial drawing changes, so each one carries a new revision."""
    previous = st.session_state.get(INITIAL_DRAWING_KEY, {"revision": 0})
    st.session_state[INITIAL_DRAWING_KEY] = {"objects": objects, "revision": previous["revision"] + 1}


def undo_and_clear(drawn: list) -> None:
    """Buttons that stay visible on touch screens, where the canvas's own toolbar (shown on hover) is not."""
    row = st.container(horizontal=True)  # side by side on a phone too, where columns stack
    row.button("Undo", icon=":material/undo:", disabled=not drawn, on_click=redraw, args=(drawn[:-1],))
    row.button("Clear", icon=":material/delete:", disabled=not drawn, on_click=redraw, args=([],))


@st.fragment  # a stroke reruns only this panel, not the page
def drawing_panel() -> None:
    """Canvas, its controls and the result beside it (below it on a phone), predicted after every stroke."""
    left, right = st.columns([1, 2])
    with left:
        stroke = st.slider("Pen width", 5, 40, 18)
        canvas = st_canvas(
            stroke_width=stroke,
            stroke_color="#FFFFFF",
            background_color="#000000",
            width=CANVAS_SIDE,
            height=CANVAS_SIDE,
            drawing_mode="freedraw",
            initial_drawing=st.session_state.get(INITIAL_DRAWING_KEY),
            return_image_data=True,
            key="canvas",
        )
        undo_and_clear((canvas.json_data or {}).get("objects", []) if canvas is not None else [])
        drawing = canvas.image_bytes if canvas is not None else None
        prediction = predict(model, drawing) if drawing is not None else None
        ui.prediction_summary(prediction, NOTHING_YET if drawing is None else ui.NOTHING_DRAWN)
    with right:
        ui.prediction_details(prediction, model, key="canvas")


with draw:
    drawing_panel()

with upload:
    files = st.file_uploader(
        f"Images of digits (PNG, JPEG, WebP, BMP, GIF, …), up to {MAX_UPLOAD_MB} MB each",
        accept_multiple_files=True,
        key="uploads",
    )
    if files and st.button("Predict Digit", type="primary"):
        readable, names = [], []
        for file in files:
            try:
                readable.append(open_image(file.getvalue()))
                names.append(file.name)
            except ImageError as exc:
                st.error(f"**{file.name}**: {exc}")
        for index, (name, prediction) in enumerate(zip(names, predict_batch(model, readable), strict=True)):
            st.divider()
            st.markdown(f"**{name}**")
            ui.show_prediction(prediction, model, key=f"upload-{index}", blank_message=ui.NOTHING_IN_IMAGE)
