"""Hostile and awkward image files, each with what the app must make of it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.drawings import encode, one, seven

DIGIT, BLANK, ERROR = "digit", "blank", "error"


def _animated_gif() -> bytes:
    buffer = io.BytesIO()
    frames = [seven("L", bg=0, ink=255), Image.new("L", (280, 280), 0)]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise
    return encode(seven().rotate(90, expand=True).convert("RGB"), "JPEG", exif=exif.tobytes(), quality=95)


def _palette_with_transparency() -> bytes:
    image = seven(bg=(0, 0, 0, 0), ink=(0, 0, 0, 255)).convert("P")
    return encode(image, "PNG")


def hostile_inputs() -> dict[str, tuple[bytes, str, int | None]]:
    """{name: (file bytes, expected outcome, expected digit)}."""
    rng = np.random.default_rng(0)
    png, jpeg = encode(seven()), encode(seven().convert("RGB"), "JPEG")
    sixteen = Image.fromarray(np.asarray(seven("L", bg=0, ink=255), dtype=np.uint16) * 257)
    noise = Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))
    return {
        "zero-bytes.png": (b"", ERROR, None),
        "truncated.png": (png[: len(png) // 2], ERROR, None),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], ERROR, None),
        "text.png": (b"just some notes, not a picture\n" * 10, ERROR, None),
        "page.jpg": (b"<!doctype html><html><body><img src=x></body></html>", ERROR, None),
        "vector.png": (b"<svg xmlns='http://www.w3.org/2000/svg'><text>7</text></svg>", ERROR, None),
        "random.bin.png": (rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), ERROR, None),
        "bomb.png": (encode(Image.new("1", (12_000, 12_000))), ERROR, None),
        "1x1.png": (encode(Image.new("L", (1, 1), 255)), BLANK, None),
        "animated.gif": (_animated_gif(), DIGIT, 7),
        "16bit.png": (encode(sixteen), DIGIT, 7),
        "cmyk.jpg": (
            encode(seven("RGB", bg=(255, 255, 255), ink=(0, 0, 0)).convert("CMYK"), "JPEG"),
            DIGIT,
            7,
        ),
        "exif-rotated.jpg": (_exif_rotated(), DIGIT, 7),
        "palette-transparent.png": (_palette_with_transparency(), DIGIT, 7),
        "la-transparent.png": (encode(seven("LA", bg=(0, 0), ink=(0, 255))), DIGIT, 7),
        "all-white.png": (encode(Image.new("RGB", (280, 280), (255, 255, 255))), BLANK, None),
        "all-black.png": (encode(Image.new("RGB", (280, 280), (0, 0, 0))), BLANK, None),
        "transparent.png": (encode(Image.new("RGBA", (280, 280), (0, 0, 0, 0))), BLANK, None),
        "noise.png": (encode(noise), BLANK, None),
        "seven.png": (png, DIGIT, 7),
        "seven.jpg": (jpeg, DIGIT, 7),
        "one.webp": (encode(one(), "WEBP"), DIGIT, 1),
        "one.bmp": (encode(one().convert("RGB"), "BMP"), DIGIT, 1),
    }
