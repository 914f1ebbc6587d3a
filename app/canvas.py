"""The drawing canvas: its sizes, Undo and Clear, the phone's pen, and the last drawing (for Inside)."""

from __future__ import annotations

import functools

import streamlit as st
from PIL import Image, ImageDraw

LAST_DRAWING_KEY = "last_drawing"  # Predict's latest drawing {"png", "objects"}: Inside opens on it
INSIDE_CANVAS = "inside-canvas"
CANVAS_SIDE = 280
PEN_WIDTH = 18  # px, the canvas pen's default
MOBILE_AGENT_TOKEN = "Mobi"  # in the User-Agent of phone browsers (Chrome, Safari, Firefox)


def _redraw(key: str, objects: list) -> None:
    """Put `objects` on canvas `key`; it then sends the new drawing, which is predicted.

    The canvas reloads only when the initial drawing changes, so each one carries a new revision."""
    previous = st.session_state.get(f"{key}-initial") or {"revision": 0}
    st.session_state[f"{key}-initial"] = {"objects": objects, "revision": previous["revision"] + 1}


def _undo_and_clear(key: str, drawn: list):
    """Buttons that stay visible on touch screens, where the canvas's own toolbar (shown on hover) is
    not; returns their row."""
    row = st.container(horizontal=True, vertical_alignment="center")  # side by side on a phone too
    row.button("Undo", icon=":material/undo:", key=f"{key}-undo", disabled=not drawn, on_click=_redraw,
               args=(key, drawn[:-1]))  # fmt: skip
    row.button("Clear", icon=":material/delete:", key=f"{key}-clear", disabled=not drawn, on_click=_redraw,
               args=(key, []))  # fmt: skip
    return row


def remember_drawing(png: bytes, strokes: list) -> None:
    """Predict's latest drawing: the Inside page opens on it (dropping what its own Undo or Clear
    put on its canvas before)."""
    st.session_state[LAST_DRAWING_KEY] = {"png": png, "objects": strokes}
    st.session_state.pop(f"{INSIDE_CANVAS}-initial", None)


# On a touch screen the canvas's toolbar, invisible until hovered, lies over its top-right corner and
# takes the touches there (streamlit-drawable-canvas 0.13; its card measured 133x30 px, 22 px of it
# over the canvas): that corner is shown as not for drawing.
TOOLBAR_CORNER = (140, 26)  # px, width and height, with a few px to spare
TOOLBAR_CORNER_GREY = (70, 72, 82)


@functools.cache
def toolbar_corner_background(size: tuple[int, int]) -> Image.Image:
    """A black canvas background whose top-right corner, where the toolbar takes touches, is grey."""
    image = Image.new("RGB", size, (0, 0, 0))
    width, height = TOOLBAR_CORNER
    ImageDraw.Draw(image).rectangle([size[0] - width, 0, size[0] - 1, height - 1], fill=TOOLBAR_CORNER_GREY)
    return image


def on_phone() -> bool:
    """True when the browser says it runs on a phone (its User-Agent), where a wide canvas would not fit."""
    return MOBILE_AGENT_TOKEN in st.context.headers.get("User-Agent", "")


def drawing_canvas(
    key: str,
    opening: dict | None = None,
    size: tuple[int, int] = (CANVAS_SIDE, CANVAS_SIDE),
    pen: int = PEN_WIDTH,
) -> tuple[bytes | None, list]:
    """A pen-width slider, the canvas and its Undo and Clear buttons: (the PNG drawn, its strokes).

    `opening` ({"png", "objects"}, a drawing made on another page) is what the canvas starts with
    until Undo or Clear. The canvas sends only what is drawn on it, so until then `opening` stands in.
    On a phone the toolbar's corner is marked on the background, which is not part of the PNG (then
    transparent but for the ink)."""
    from streamlit_drawable_canvas import st_canvas  # tests stand in for it

    override = st.session_state.get(f"{key}-initial")
    initial = override or (opening and {"objects": opening["objects"], "revision": 0})
    # On a phone the slider goes beside Undo and Clear, so that the reading and Right / Wrong fit on
    # the first screen (844 px high); the canvas takes the slider's value from the session meanwhile.
    phone, slider = on_phone(), f"{key}-pen"
    stroke = st.session_state.get(slider, pen) if phone else pen_slider(slider, pen)
    canvas = st_canvas(
        stroke_width=stroke,
        stroke_color="#FFFFFF",
        background_color="#000000",
        background_image=toolbar_corner_background(size) if phone else None,
        width=size[0],
        height=size[1],
        drawing_mode="freedraw",
        initial_drawing=initial,
        return_image_data=True,
        key=key,
    )
    png = canvas.image_bytes if canvas is not None else None
    strokes = (canvas.json_data or {}).get("objects", []) if canvas is not None else []
    if png is None and override is None and opening is not None:
        png, strokes = opening["png"], opening["objects"]
    row = _undo_and_clear(key, strokes)
    if phone:
        with row:
            pen_slider(slider, pen, label_visibility="collapsed")  # its name stays for screen readers
    return png, strokes


def pen_slider(key: str, pen: int, **options) -> int:
    return st.slider("Pen width", 5, 40, pen, key=key, **options)
