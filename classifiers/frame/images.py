"""Uploaded images, decoded safely into the RGB arrays the frame classifiers read.

:func:`decode_image` accepts PNG, JPEG and WebP only (what the Videos API takes as an
``input_reference``), reads the header first and refuses an image that declares more than
``max_pixels`` pixels before a single pixel is decoded (a decompression bomb: a few KiB that
would expand to gigabytes), applies the EXIF orientation (what a viewer shows is what is
checked), and drops alpha (the hidden colour under a transparent pixel is checked as well).

Errors (:class:`ImageRejected`, ``kind`` says which)::

    not_image    not PNG, JPEG or WebP (another format, or not an image at all)
    too_large    declares more than max_pixels pixels (decompression bomb)
    undecodable  a PNG/JPEG/WebP that does not decode (truncated, corrupt)
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
"""Accepted formats (Pillow's names) and their media types."""

RejectKind = Literal["not_image", "too_large", "undecodable"]


class ImageRejected(ValueError):
    """An upload that is not an acceptable image; the message says why and what to send."""

    def __init__(self, kind: RejectKind, message: str) -> None:
        super().__init__(message)
        self.kind: RejectKind = kind


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An uploaded image: RGB pixels ``(H, W, 3)`` uint8 and what was received."""

    pixels: npt.NDArray[np.uint8] = field(repr=False)
    media_type: str
    sha256: str
    bytes: int

    @property
    def width(self) -> int:
        """Width in pixels (after the EXIF orientation)."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels (after the EXIF orientation)."""
        return int(self.pixels.shape[0])


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode ``data`` (see the module docstring); raises :class:`ImageRejected`."""
    accepted = ", ".join(FORMATS)
    if not data:
        raise ImageRejected("undecodable", "the file is empty; send a PNG, JPEG or WebP image")
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns, then raises, at its global limit; ours is lower and
        # checked on the header below, so its warning is noise and its error is a bomb too.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except Image.DecompressionBombError as exc:
            raise ImageRejected("too_large", f"the image is a decompression bomb: {exc}") from None
        except Image.UnidentifiedImageError:
            raise ImageRejected(
                "not_image", f"the file is not an image in an accepted format ({accepted})"
            ) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageRejected("undecodable", f"the image header does not decode: {exc}") from None
        with image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise ImageRejected(
                    "too_large",
                    f"the image declares {width}x{height} = {width * height} pixels, over the "
                    f"limit of {max_pixels} (REELGUARD_MAX_UPLOAD_PIXELS); send a smaller image",
                )
            media_type = FORMATS[str(image.format)]
            try:
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = upright.convert("RGB")
            except Image.DecompressionBombError as exc:
                raise ImageRejected(
                    "too_large", f"the image is a decompression bomb: {exc}"
                ) from None
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise ImageRejected(
                    "undecodable", f"the {image.format} image does not decode: {exc}"
                ) from None
    pixels = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    return DecodedImage(
        pixels=pixels,
        media_type=media_type,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """``pixels`` (H, W, 3) uint8 as PNG bytes (lossless: what was checked is what is kept)."""
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG", optimize=False)
    return out.getvalue()


def fit_to(pixels: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """``pixels`` scaled to exactly ``width`` x ``height`` (the video's size)."""
    if pixels.shape[0] == height and pixels.shape[1] == width:
        return pixels
    resized = Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(resized, dtype=np.uint8))
