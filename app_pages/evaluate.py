import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app_pages import ui
from core.cache import cached_evaluation, test_split
from core.data import to_pixels
from core.evaluate import PERCENT
from core.models import NUM_CLASSES

GALLERY_SIZE = 24
GALLERY_COLUMNS = 8
ANY = "any"

st.title("Evaluate")
checkpoint = ui.active_checkpoint()
if checkpoint is None or not ui.data_ready():
    st.stop()

st.caption(f"Model `{checkpoint.path.name}` on the 10,000 MNIST test images.")
with st.spinner("Evaluating…"):
    report = cached_evaluation(checkpoint.path)

cols = st.columns(3)
cols[0].metric("Accuracy", f"{report.accuracy:.2f}%")
cols[1].metric("Loss", f"{report.loss:.4f}")
cols[2].metric("Mistakes", f"{len(report.mistakes):,} of {report.count:,}")

left, right = st.columns([3, 2])
confusion = np.array(report.confusion)
figure = go.Figure(
    go.Heatmap(
        z=np.log1p(confusion),  # log colour: the diagonal would otherwise hide every mistake
        x=list(range(NUM_CLASSES)),
        y=list(range(NUM_CLASSES)),
        text=confusion,
        texttemplate="%{text}",
        colorscale="Blues",
        showscale=False,
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    )
)
figure.update_layout(
    height=460,
    margin=dict(l=10, r=10, t=30, b=10),
    title="Confusion matrix (click a cell to see its mistakes)",
    xaxis=dict(title="predicted", dtick=1),
    yaxis=dict(title="true", dtick=1, autorange="reversed"),
)
event = left.plotly_chart(figure, on_select="rerun", selection_mode="points", key="confusion")
points = event.selection.points if event and event.selection else []
cell = (int(points[0]["y"]), int(points[0]["x"])) if points else None
if cell and cell != st.session_state.get("applied_cell"):  # a new click sets both filters once
    st.session_state["true_digit"], st.session_state["predicted_digit"] = cell
st.session_state["applied_cell"] = cell

percent = st.column_config.NumberColumn(format="%.2f%%")  # every score with two decimals
right.dataframe(
    {
        "digit": [c.digit for c in report.per_class],
        "precision": [c.precision * PERCENT for c in report.per_class],
        "recall": [c.recall * PERCENT for c in report.per_class],
        "F1": [c.f1 * PERCENT for c in report.per_class],
        "support": [c.support for c in report.per_class],
    },
    hide_index=True,
    column_config={"precision": percent, "recall": percent, "F1": percent},
)

st.subheader("Mistakes, most confident first")
choices = [ANY, *range(NUM_CLASSES)]
filters = st.columns(2)
true_digit = filters[0].selectbox("True digit", choices, key="true_digit")
predicted_digit = filters[1].selectbox("Predicted digit", choices, key="predicted_digit")
mistakes = [
    m for m in report.mistakes if true_digit in (ANY, m.label) and predicted_digit in (ANY, m.predicted)
]
if not mistakes:
    st.info("No mistakes match this filter.")
elif len(mistakes) > GALLERY_SIZE:
    st.caption(f"Showing the {GALLERY_SIZE} most confident of {len(mistakes):,} mistakes.")
else:
    st.caption(f"Showing all {len(mistakes):,} mistakes.")
images = test_split().images
cols = st.columns(GALLERY_COLUMNS)
for i, mistake in enumerate(mistakes[:GALLERY_SIZE]):
    pixels = to_pixels(images[mistake.index, 0]).numpy()
    with cols[i % GALLERY_COLUMNS]:
        ui.digit_image(pixels, f"true {mistake.label} → {mistake.predicted} ({mistake.confidence:.2%})")
