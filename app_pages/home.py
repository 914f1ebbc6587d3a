import streamlit as st

from app import session, show
from app.cache import test_split
from core.data import split_size, to_pixels

SAMPLE_COUNT = 20

st.title("MNIST Digit Recognizer")
st.markdown(
    "Train PyTorch models on MNIST and watch them learn (**Train**), see where they fail "
    "(**Evaluate**), and draw or upload a digit to have it read (**Predict**). Drawings and photos "
    "go through MNIST's own recipe: the digit is cropped, scaled into a 20×20 box and centred by "
    "its centre of mass in 28×28, white on black."
)

st.subheader("Active model")
checkpoint = session.active_checkpoint()
if checkpoint:
    show.model_card(checkpoint)

st.subheader("Dataset")
if session.data_ready():  # otherwise it explains and offers the download
    test = test_split()
    st.success(f"MNIST ready: {split_size(train=True):,} training and {len(test):,} test images.")
    images = to_pixels(test.images[:SAMPLE_COUNT, 0]).numpy()
    cols = st.columns(SAMPLE_COUNT // 2)
    for i, image in enumerate(images):
        with cols[i % len(cols)]:
            show.digit_image(image, caption=str(int(test.labels[i])))
else:
    st.caption("Predict works without the dataset: the app ships trained models.")
