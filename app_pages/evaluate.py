import numpy as np
import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from app import session, show
from app.cache import cached_evaluation, test_split
from core.data import to_pixels
from core.digits.evaluate import PERCENT, EvalReport, Mistake
from core.digits.predict import saliency
from core.nets import NUM_CLASSES

GALLERY_SIZE = 24
GALLERY_COLUMNS = 8
ANY = "any"
PLOT_PX = 400  # the square plot area, fixed so that each square marker fills its cell
MATRIX_MARGIN_PX = dict(l=50, r=10, t=40, b=50)
CELL_FILL = 0.92  # a thin gap between squares
DIAGONAL_COLOUR = "#9ecae1"  # right answers: a calm blue, so the mistakes stand out
MISTAKE_SCALE = [[0, "#fbe9e7"], [1, "#d84315"]]  # up to the cell with most mistakes
MISTAKE_FLOOR = 0.25  # where a single mistake starts on that scale: visibly tinted
NO_MISTAKE_COLOUR = "#f5f5f5"
COUNT_COLOUR = "#1f2937"  # dark on every cell colour, in the light and the dark theme
UNSELECTED_OPACITY = 0.55  # after a click the chosen cell stands out, the rest stays readable
OPEN_HINT = "Under each, its three most likely digits; Why? shows what the model looked at."
TRUE_KEY, PREDICTED_KEY, APPLIED_KEY = "true_digit", "predicted_digit", "applied_cell"


def _mistake_colour(count: int, most: int) -> str:
    """Mistake cells on their own scale: the diagonal's thousands would wash them out."""
    if count == 0:
        return NO_MISTAKE_COLOUR
    share = count / max(most, 1)
    return plotly.colors.sample_colorscale(MISTAKE_SCALE, MISTAKE_FLOOR + (1 - MISTAKE_FLOOR) * share)[0]


def confusion_figure(confusion: np.ndarray) -> go.Figure:
    """A scatter of squares, one per (true, predicted) cell: unlike a heatmap, Streamlit reports clicks
    on scatter points (streamlit/streamlit#8760)."""
    true, predicted = (a.tolist() for a in np.divmod(np.arange(NUM_CLASSES * NUM_CLASSES), NUM_CLASSES))
    counts = confusion[true, predicted].tolist()  # lists: plotly would base64-encode arrays
    most = int((confusion - np.diag(np.diag(confusion))).max())
    colours = [
        DIAGONAL_COLOUR if t == p else _mistake_colour(c, most)
        for t, p, c in zip(true, predicted, counts, strict=True)
    ]
    figure = go.Figure(
        go.Scatter(
            x=predicted,
            y=true,
            mode="markers+text",
            text=[str(c) if c else "" for c in counts],
            customdata=counts,
            textfont_color=COUNT_COLOUR,
            unselected=dict(marker_opacity=UNSELECTED_OPACITY, textfont_color=COUNT_COLOUR),
            marker=dict(symbol="square", size=CELL_FILL * PLOT_PX / NUM_CLASSES, color=colours, line_width=0),
            hovertemplate="true %{y}, predicted %{x}: %{customdata}<extra>click to see them</extra>",
        )
    )
    axis = dict(dtick=1, range=[-0.5, NUM_CLASSES - 0.5], showgrid=False, zeroline=False, fixedrange=True)
    figure.update_layout(
        width=PLOT_PX + MATRIX_MARGIN_PX["l"] + MATRIX_MARGIN_PX["r"],
        height=PLOT_PX + MATRIX_MARGIN_PX["t"] + MATRIX_MARGIN_PX["b"],
        margin=MATRIX_MARGIN_PX,
        title="Confusion matrix: click a cell to see its mistakes",
        xaxis=dict(axis, title="predicted", side="bottom"),
        yaxis=dict(axis, title="true", range=[NUM_CLASSES - 0.5, -0.5]),
        plot_bgcolor="white",
        clickmode="event+select",
        dragmode=False,
    )
    return figure


def apply_clicked_cell(event) -> None:
    """A newly clicked mistake cell sets both filters; the diagonal or a cleared selection shows all."""
    points = event.selection.points if event and event.selection else []
    cell = (int(points[0]["y"]), int(points[0]["x"])) if points else None
    if cell == st.session_state.get(APPLIED_KEY):
        return  # the same selection on a rerun: keep what the user set in the filters since
    st.session_state[APPLIED_KEY] = cell
    mistake_cell = cell is not None and cell[0] != cell[1]
    st.session_state[TRUE_KEY], st.session_state[PREDICTED_KEY] = cell if mistake_cell else (ANY, ANY)


def per_class_table(report: EvalReport) -> None:
    percent = st.column_config.NumberColumn(format="%.2f%%")  # every score with two decimals
    st.dataframe(
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


def top_lines(mistake: Mistake, separator: str = "  \n") -> str:
    """'4: 98.7%', '9: 1.3%', '1: 0.0%': one line each under a gallery image."""
    return separator.join(f"{digit}: {p:.1%}" for digit, p in mistake.top)


@st.dialog("Why this answer?")
def why_dialog(mistake: Mistake, model) -> None:
    inputs = test_split().images[mistake.index : mistake.index + 1]  # (1, 1, 28, 28), normalised
    image28 = to_pixels(inputs[0, 0]).numpy()
    st.write(f"Test image {mistake.index}: a **{mistake.label}**, read as **{mistake.predicted}**.")
    st.caption("Top three: " + top_lines(mistake, " · "))
    cols = st.columns(3)
    with cols[0]:
        show.digit_image(image28, "the test image")
    for col, digit, label in ((cols[1], mistake.predicted, "said"), (cols[2], mistake.label, "true")):
        with col:
            heat = saliency(model, inputs, digit)
            show.digit_image(show.saliency_overlay(image28, heat), f"pixels for {digit} ({label})")
    st.caption("Orange marks the pixels that pushed the model towards that digit (integrated gradients).")


def showing_all(count: int) -> str:
    return "Showing the 1 mistake." if count == 1 else f"Showing all {count:,} mistakes."


def mistakes_gallery(report: EvalReport, model) -> None:
    st.subheader("Mistakes, most confident first")
    choices = [ANY, *range(NUM_CLASSES)]
    filters = st.columns(2)
    true_digit = filters[0].selectbox("True digit", choices, key=TRUE_KEY)
    predicted_digit = filters[1].selectbox("Predicted digit", choices, key=PREDICTED_KEY)
    mistakes = [
        m for m in report.mistakes if true_digit in (ANY, m.label) and predicted_digit in (ANY, m.predicted)
    ]
    if not mistakes:
        st.info("No mistakes match this filter.")
    elif len(mistakes) > GALLERY_SIZE:
        st.caption(f"Showing the {GALLERY_SIZE} most confident of {len(mistakes):,} mistakes. {OPEN_HINT}")
    else:
        st.caption(f"{showing_all(len(mistakes))} {OPEN_HINT}")
    images = test_split().images
    cols = st.columns(GALLERY_COLUMNS)
    for i, mistake in enumerate(mistakes[:GALLERY_SIZE]):
        with cols[i % GALLERY_COLUMNS]:
            pixels = to_pixels(images[mistake.index, 0]).numpy()
            show.digit_image(pixels, f"true {mistake.label} → {mistake.predicted}")
            st.caption(top_lines(mistake))
            if st.button("Why?", key=f"why-{mistake.index}"):
                why_dialog(mistake, model)


st.title("Evaluate")
checkpoint = session.active_checkpoint()
if checkpoint is None or not session.data_ready():
    st.stop()

st.caption(f"Model `{checkpoint.path.name}` on the 10,000 MNIST test images.")
with st.spinner("Evaluating…"):
    report = cached_evaluation(checkpoint.path)

cols = st.columns(3)
cols[0].metric("Accuracy", f"{report.accuracy:.2f}%")
cols[1].metric("Loss", f"{report.loss:.4f}")
cols[2].metric("Mistakes", f"{len(report.mistakes):,} of {report.count:,}")

left, right = st.columns([3, 2])
with left:
    event = st.plotly_chart(
        confusion_figure(np.array(report.confusion)),
        on_select="rerun",
        selection_mode="points",
        key="confusion",
        width="content",
        config={"displayModeBar": False},
    )
    st.caption("Blue: right answers. Orange to red: mistakes, darker where there are more.")
apply_clicked_cell(event)
with right:
    per_class_table(report)
mistakes_gallery(report, checkpoint.model)
