import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots

from app import canvas, session, show
from app.cache import cached_embedding_map, test_split
from core.checkpoint import CheckpointError
from core.config import NUMBER_CANVAS
from core.data import data_present, to_pixels
from core.digits.inside import (
    SEQUENTIAL_STOPS,
    DrawingViews,
    EmbeddingMap,
    Inside,
    colour,
    drawing_views,
    first_layer_weights,
    grid_columns,
    tile,
)
from core.digits.predict import Prediction, predict
from core.images import ImageError
from core.nets import NUM_CLASSES
from core.numbers.read import NumberReading, read_number
from core.numbers.reader import STRIDE

NOTHING_YET = "Draw a digit, or upload one: every view below follows it."
TEMPLATE_SCALE = 3  # 28x28 templates in the mosaic, enlarged pixel-sharp
FEATURE_MAP_WIDTH = 720
UNIT_WIDTH = 112  # a top unit's template, 4x
NEIGHBOUR_WIDTH = 84  # a nearest test digit, 3x
MAP_POINT_SIZE = 14
MAP_HEIGHT = 420
CHART_MARGIN = dict(l=10, r=10, t=10, b=10)
COLUMNS_HEIGHT = 360
READER_CLASSES = [*map(str, range(NUM_CLASSES)), "blank"]
INSIDE_NUMBER_CANVAS = "inside-number-canvas"
NUMBERS_TITLE = "How a number is read: the number reader's columns"
COLUMN_HOVER = "line px %{x}: %{y} %{z:.0%}<extra></extra>"
# The feature maps' colours (core.digits.inside), for Plotly: [[position, "rgb(...)"], ...]
SEQUENTIAL_SCALE = [
    [i / (len(SEQUENTIAL_STOPS) - 1), f"rgb{stop}"] for i, stop in enumerate(SEQUENTIAL_STOPS)
]

st.title("Inside")
checkpoint = session.active_checkpoint()
if checkpoint is None:
    st.stop()
model, config = checkpoint.model, checkpoint.model_config
st.caption(
    f"Model `{checkpoint.path.name}` · {config.arch.upper()} {config.shape} · what it computes for your "
    "digit, layer by layer, and where it puts it among MNIST's test digits."
)


def enlarged(rgb: np.ndarray, width: int) -> Image.Image:
    """An (h, w, 3) uint8 image scaled to `width` pixels without blurring."""
    image = Image.fromarray(rgb)
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.NEAREST)


def logits_chart(inside: Inside) -> go.Figure:
    values = inside.logits.tolist()
    colours = [show.PRIMARY if d == inside.digit else show.MUTED for d in range(NUM_CLASSES)]
    figure = go.Figure(go.Bar(x=list(range(NUM_CLASSES)), y=values, marker_color=colours))
    figure.update_layout(
        height=220,
        margin=CHART_MARGIN,
        xaxis=dict(dtick=1, title="digit"),
        yaxis=dict(title="logit", zeroline=True),
    )
    return figure


def hidden_grid(hidden: torch.Tensor) -> go.Figure:
    """One cell per hidden unit, row by row, coloured by its activation."""
    columns = grid_columns(len(hidden))
    cells = tile(hidden[:, None, None], columns)[::2, ::2]  # tile's 1-pixel gaps dropped again
    units = tile(torch.arange(len(hidden), dtype=torch.float32)[:, None, None], columns)[::2, ::2]
    figure = go.Figure(
        go.Heatmap(
            z=cells.tolist(),
            customdata=units.tolist(),
            colorscale=SEQUENTIAL_SCALE,
            zmin=0,
            colorbar=dict(title="activation", thickness=12),
            hovertemplate="unit %{customdata:.0f}: %{z:.2f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    hidden_axis = dict(visible=False)
    figure.update_layout(
        height=60 + 22 * cells.shape[0],
        margin=CHART_MARGIN,
        xaxis=hidden_axis,
        yaxis=hidden_axis | {"autorange": "reversed"},
    )
    return figure


def feature_maps(views: DrawingViews) -> None:
    for block, (maps, mosaic) in enumerate(
        zip(views.inside.feature_maps, views.feature_maps, strict=True), 1
    ):
        channels, side = maps.shape[0], maps.shape[-1]
        st.image(
            enlarged(mosaic, width=min(FEATURE_MAP_WIDTH, mosaic.shape[1] * 8)),
            caption=f"block {block}: {channels} maps of {side}×{side}",
        )


def contributions_chart(inside: Inside, towards: list[int], against: list[int]) -> go.Figure:
    units = towards + against
    values = [float(inside.contributions[u]) for u in units]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=[f"unit {u}" for u in units],
            orientation="h",
            marker_color=[show.POSITIVE if v > 0 else show.NEGATIVE for v in values],
        )
    )
    figure.update_layout(
        height=60 + 28 * len(units),
        margin=CHART_MARGIN,
        xaxis=dict(title=f"push towards {inside.digit}", zeroline=True),
        yaxis=dict(autorange="reversed"),
    )
    return figure


def for_and_against(views: DrawingViews) -> None:
    inside = views.inside
    st.subheader(f"Units for and against {inside.digit}")
    total = float(inside.contributions.sum())
    st.caption(
        f"A unit's push is its activation × its weight to {inside.digit}: red pushed towards it, blue "
        f"against. All {len(inside.hidden)} pushes ({total:.2f}) plus the bias ({inside.bias:.2f}) make "
        f"the logit of {inside.digit} ({float(inside.logits[inside.digit]):.2f})."
    )
    st.plotly_chart(contributions_chart(inside, views.towards, views.against), key="inside-pushes")
    if not views.templates:
        st.caption("These units read the feature maps, not pixels, so they have no 28×28 template.")
        return
    units = views.towards + views.against
    st.image(
        [enlarged(template, UNIT_WIDTH) for template in views.templates],
        caption=[f"unit {u}: {float(inside.contributions[u]):+.2f}" for u in units],
    )
    st.caption("Each unit's template under your ink (dark): ink on red switches it on, ink on blue off.")


def per_layer(views: DrawingViews) -> None:
    inside = views.inside
    if not inside.feature_maps:
        st.subheader("Hidden layer")
        st.caption(
            f"Each cell is one of the {len(inside.hidden)} hidden units; the brighter, the more your "
            "drawing switches it on (black: off, as ReLU clips negative sums to 0). Hover for its number."
        )
        st.plotly_chart(hidden_grid(inside.hidden), key="inside-hidden")
        return
    st.subheader("Feature maps")
    st.caption(
        "Each small square is one channel: bright where it found its pattern in your drawing (black: "
        "nothing). Each block halves the size and looks for larger, more abstract patterns."
    )
    feature_maps(views)


def _axis(field: str, title: str) -> dict:
    return {"field": field, "type": "quantitative", "title": title}


def map_spec(embedding: EmbeddingMap, position: tuple[float, float] | None) -> dict:
    """A Vega-Lite scatter of the map's digits, and a diamond for the drawing. A plain spec: Altair's
    validation of 2,000 inline points took 0.3 s a stroke, this takes about 10 ms."""
    points = [
        {"x": x, "y": y, "digit": str(label), "image": image}
        for (x, y), label, image in zip(
            embedding.points.tolist(), embedding.labels.tolist(), embedding.thumbnails, strict=True
        )
    ]
    first, second = embedding.explained
    x, y = _axis("x", f"first axis ({first:.0%} of the variance)"), _axis("y", f"second axis ({second:.0%})")
    digits = {
        "data": {"values": points},
        "mark": {"type": "circle", "size": MAP_POINT_SIZE, "opacity": 0.75},
        "encoding": {
            "x": x,
            "y": y,
            "color": {
                "field": "digit",
                "type": "nominal",
                "scale": {"scheme": "category10"},
                "title": "true digit",
            },
            # vega-tooltip shows a field called "image" as the picture itself
            "tooltip": [{"field": "image", "type": "nominal"}, {"field": "digit", "type": "nominal"}],
        },
    }
    layers = [digits]
    if position is not None:
        layers.append(
            {
                "data": {"values": [{"x": position[0], "y": position[1], "what": "your drawing"}]},
                "mark": {
                    "type": "point",
                    "shape": "diamond",
                    "size": 260,
                    "filled": True,
                    "color": "white",
                    "stroke": "black",
                    "strokeWidth": 2,
                },
                "encoding": {"x": x, "y": y, "tooltip": [{"field": "what", "type": "nominal"}]},
            }
        )
    return {"layer": layers, "height": MAP_HEIGHT}


def embedding_section(embedding: EmbeddingMap | None, views: DrawingViews | None) -> None:
    st.subheader("Map of the test digits")
    if embedding is None:
        st.caption("The map needs MNIST's test digits; the views above work without them.")
        session.data_ready()  # says what is missing and offers the download
        return
    st.caption(
        f"Each dot is one of {len(embedding.labels):,} MNIST test digits, placed by the model's last "
        "hidden layer (PCA to 2-D); colour is its true digit, hover to see it. Digits the model finds "
        "alike sit together; the white diamond is your drawing."
    )
    st.vega_lite_chart(map_spec(embedding, views and views.position), key="inside-map")
    if views is None:
        return
    images = test_split().images[embedding.indices[views.nearest]]
    st.caption("The test digits nearest yours in the model's feature space (not on the flat map):")
    st.image(
        [enlarged(grey(to_pixels(image[0])), NEIGHBOUR_WIDTH) for image in images],
        caption=[f"a {int(embedding.labels[row])}" for row in views.nearest],
    )


def grey(pixels: torch.Tensor) -> np.ndarray:
    """(28, 28) values in 0..1 as (28, 28, 3) uint8 grey."""
    return np.repeat((pixels.clamp(0, 1) * 255).round().to(torch.uint8).numpy()[..., None], 3, -1)


def read_input(drawing: bytes | None, upload) -> tuple[Prediction | None, str]:
    """The prediction for the upload if there is one, else for the drawing; and what to say if blank."""
    if upload is None:
        return (predict(model, drawing) if drawing is not None else None), show.NOTHING_DRAWN
    try:
        return predict(model, upload.getvalue()), show.NOTHING_IN_IMAGE
    except ImageError as exc:
        st.error(f"**{upload.name}**: {exc}")
        return None, NOTHING_YET


@st.fragment  # a stroke reruns only the views, not the page
def views() -> None:
    session.rerun_if_model_gone(checkpoint)
    left, right = st.columns([1, 2])
    with left:
        drawing, _ = canvas.drawing_canvas(
            canvas.INSIDE_CANVAS, st.session_state.get(canvas.LAST_DRAWING_KEY)
        )
        upload = st.file_uploader(
            f"…or upload an image (up to {session.MAX_UPLOAD_MB} MB); it is shown instead of the drawing",
            key=session.INSIDE_UPLOAD,
        )
    prediction, blank_message = read_input(drawing, upload)
    embedding = cached_embedding_map(checkpoint.path) if data_present() else None
    views = None
    if prediction is not None and not prediction.blank:
        processed = prediction.processed
        views = drawing_views(model, processed.tensor, processed.image28, embedding)
    with right:
        show.prediction_summary(prediction, NOTHING_YET if prediction is None else blank_message)
        if views is not None:
            st.caption("The ten logits: each digit's score before softmax turns them into probabilities; "
                       "the highest wins.")  # fmt: skip
            st.plotly_chart(logits_chart(views.inside), key="inside-logits")
    if views is not None:
        per_layer(views)
        for_and_against(views)
    embedding_section(embedding, views)


def first_layer() -> None:
    weights = first_layer_weights(model)
    if config.arch == "mlp":
        st.subheader("What each hidden unit looks for")
        st.caption(
            f"The incoming weights of each of the {len(weights)} hidden units as a 28×28 image, its "
            "template: red pixels with ink raise the unit, blue ones lower it, white ones don't matter."
        )
        width = min(1100, grid_columns(len(weights)) * 29 * TEMPLATE_SCALE)
    else:
        st.subheader("First-layer filters")
        st.caption(
            f"The {len(weights)} filters the first convolution slides over your drawing, "
            f"{weights.shape[-1]}×{weights.shape[-1]} pixels each: red weights answer ink, blue answer "
            "background, so each one finds an edge or stroke of its own direction."
        )
        width = 360
    st.image(enlarged(colour(tile(weights, grid_columns(len(weights))), diverging=True), width))


def columns_figure(reading: NumberReading) -> go.Figure:
    """The line the reader read, and under it each output column's probabilities (a row per digit and
    one for blank), on one x axis in the line's pixels: a column covers STRIDE of them."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.35, 0.65])
    line = reading.line[::-1].tolist()  # plain lists, as this page's other charts send
    figure.add_trace(go.Heatmap(z=line, colorscale="gray", showscale=False, hoverinfo="skip"), 1, 1)
    centres = ((np.arange(len(reading.columns)) + 0.5) * STRIDE - 0.5).tolist()
    figure.add_trace(
        go.Heatmap(
            x=centres, y=READER_CLASSES, z=reading.columns.T.tolist(), colorscale=SEQUENTIAL_SCALE,
            zmin=0, zmax=1, colorbar=dict(title="p", len=0.65, y=0.33), hovertemplate=COLUMN_HOVER,
        ),
        2, 1,
    )  # fmt: skip
    figure.update_yaxes(visible=False, row=1, col=1)
    figure.update_yaxes(type="category", row=2, col=1)
    figure.update_xaxes(visible=False)
    figure.update_layout(height=COLUMNS_HEIGHT, margin=CHART_MARGIN)
    return figure


@st.fragment  # a stroke reruns only this section
def number_views() -> None:
    st.caption(
        "Number mode reads a whole number with a second network, the number reader: convolutions turn the "
        f"line into one column per {STRIDE} pixels, a recurrent layer reads the columns both ways, and each "
        "column gives a probability to every digit and to *blank* (no digit here). The digits are read "
        "where their probabilities peak; repeats merge and blanks drop out (CTC). Write a number below."
    )
    drawing, _ = canvas.drawing_canvas(INSIDE_NUMBER_CANVAS, size=NUMBER_CANVAS)
    try:
        reading = read_number(model, drawing, session.number_reader()) if drawing is not None else None
    except CheckpointError as exc:
        st.error(f"Number mode cannot read: {exc}.")
        return
    if reading is None or reading.line is None:
        st.info("Write a number, digits side by side: the reader's columns appear under it.")
        return
    st.metric("Number", reading.number or show.NO_DIGIT)
    st.plotly_chart(columns_figure(reading), key="inside-number-columns")


views()
first_layer()
with st.expander(NUMBERS_TITLE, icon=":material/pin:"):  # a canvas of its own, out of the way until opened
    number_views()
