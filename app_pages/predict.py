import streamlit as st
from streamlit_drawable_canvas import st_canvas

from app_pages import ui
from core.predict import predict, predict_batch
from core.preprocess import ImageError, open_image

CANVAS_SIDE = 280

st.title("Predict")
checkpoint = ui.active_checkpoint()
if checkpoint is None:
    st.stop()
model = checkpoint.model
st.caption(f"Model `{checkpoint.path.name}` · {checkpoint.model_config.arch.upper()}")

draw, upload = st.tabs(["Draw", "Upload"])


@st.fragment  # a stroke reruns only this panel, not the page
def drawing_panel() -> None:
    """Canvas and result, predicting after every stroke."""
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
            return_image_data=True,
            key="canvas",
        )
        st.caption("Draw one digit; the toolbar undoes, redoes and clears.")
    with right:
        drawing = canvas.image_bytes if canvas is not None else None
        if drawing is None:
            ui.show_no_digit("Nothing drawn yet.", key="canvas")
        else:
            ui.show_prediction(predict(model, drawing), model, key="canvas")


with draw:
    drawing_panel()

with upload:
    files = st.file_uploader(
        "Images of digits (PNG, JPEG, WebP, BMP, GIF, …)", accept_multiple_files=True, key="uploads"
    )
    if files and st.button("Predict Digit", type="primary"):
        readable, names = [], []
        for file in files:
            try:
                readable.append(open_image(file.getvalue()))
                names.append(file.name)
            except ImageError as exc:
                st.error(f"**{file.name}**: {exc}")
        for name, prediction in zip(names, predict_batch(model, readable), strict=True):
            st.divider()
            st.markdown(f"**{name}**")
            ui.show_prediction(prediction, model, key=f"upload-{name}")
