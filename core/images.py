"""Reading an image file, safely: its size checked before it is decoded (decompression bombs), a
phone's large JPEG decoded reduced, EXIF orientation applied, and every failure an ImageError in one
line."""

from __future__ import annotations

import io
import os
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import UserError, reason

MAX_PIXELS = 40_000_000  # refuse decoding more than this (decompression bombs)
# A JPEG is decoded reduced (Pillow's draft: 1/2, 1/4 or 1/8 of each side) when it is larger than
# MAX_PIXELS, so that a phone's 48 or 108 MP photo is read; larger than this, it is refused unread.
MAX_JPEG_PIXELS = 200_000_000
DRAFT_SIDE = 2048  # px: a large JPEG is decoded to at least this on each side
MAX_FILE_BYTES = 20 * 1024 * 1024
ImageSource = bytes | str | os.PathLike | Image.Image  # what open_image reads

Image.MAX_IMAGE_PIXELS = MAX_JPEG_PIXELS  # every format's own limit is checked in open_image


class ImageError(UserError, ValueError):
    """The input is not an image this app can read."""


def open_image(source: ImageSource) -> Image.Image:
    """Decode bytes, a path or a PIL image; EXIF orientation applied; first frame only."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                source = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ImageError(f"cannot read file: {reason(exc)}") from exc
    if len(source) == 0:
        raise ImageError("the file is empty")
    if len(source) > MAX_FILE_BYTES:
        raise ImageError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source))
            _decode_within_limit(image)
            return ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(_too_large(MAX_JPEG_PIXELS)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not an image format this app can read (PNG, JPEG, WebP, BMP, GIF, ...)") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"the image is damaged or truncated ({reason(exc)})") from exc


def _too_large(limit: int) -> str:
    return f"the image is too large (over {limit:,} pixels; a JPEG may have up to {MAX_JPEG_PIXELS:,})"


def _decode_within_limit(image: Image.Image) -> None:
    """Decode the first frame, a JPEG larger than MAX_PIXELS reduced while it is decoded; anything
    else larger is refused before it decompresses."""
    image.seek(0)
    if image.width * image.height > MAX_PIXELS and image.format == "JPEG":
        image.draft(image.mode, (DRAFT_SIDE, DRAFT_SIDE))
    if image.width * image.height > MAX_PIXELS:
        raise ImageError(_too_large(MAX_PIXELS))
    image.load()
