"""Entry point: `streamlit run Home.py`."""

import streamlit as st

from app import session, signin
from app.cache import cpu_threads

APP_NAME = "MNIST Digit Recognizer"
HOME = "Home"

st.set_page_config(page_title=APP_NAME, page_icon=":material/draw:", layout="wide")
cpu_threads()

who = signin.sidebar()
# The class view is for owners: for anyone else it is not a page at all (its core calls refuse too).
class_view = st.Page("app_pages/class_view.py", title="Class", icon=":material/groups:")
for_owners = [class_view] if who.owner else []
navigation = st.navigation(
    [
        st.Page("app_pages/home.py", title=HOME, icon=":material/home:", default=True),
        st.Page("app_pages/train.py", title="Train", icon=":material/monitoring:"),
        st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("app_pages/predict.py", title="Predict", icon=":material/draw:"),
        st.Page("app_pages/inside.py", title="Inside", icon=":material/neurology:"),
        st.Page("app_pages/my_digits.py", title="My digits", icon=":material/collections_bookmark:"),
        st.Page("app_pages/models.py", title="Models", icon=":material/inventory_2:"),
        *for_owners,
    ]
)
if navigation.title != HOME:  # each page's browser tab says which page it is
    st.set_page_config(page_title=f"{navigation.title} · {APP_NAME}")
session.model_picker()
session.state_upload_limit_once()
try:
    navigation.run()
finally:  # after the page: a page switch clears the query parameters set before it
    session.mirror_in_address_bar(session.model_query())
