"""An optional visible watermark, burned into every frame before the video is encoded.

Off by default. ``REELGUARD_WATERMARK_TEXT`` (a short label) or ``REELGUARD_WATERMARK_IMAGE``
(a small PNG, its alpha kept) is drawn in ``REELGUARD_WATERMARK_CORNER`` at
``REELGUARD_WATERMARK_OPACITY``, ``REELGUARD_WATERMARK_MARGIN`` pixels from the edges, scaled
to ``REELGUARD_WATERMARK_SIZE`` of the frame's height (and narrowed to fit its width). The
worker applies it to whatever any backend returns, so every released video carries it.

Errors: :class:`WatermarkError` (a ``ValueError``) names the setting or file and the fix; a
worker or server with an unusable watermark does not start.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from config.settings import Settings

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
"""Where the mark goes (``REELGUARD_WATERMARK_CORNER``)."""

MAX_IMAGE_BYTES = 1_000_000
MAX_IMAGE_SIDE = 1024
TEXT_RENDER_PX = 96
"""Text is drawn this tall, then scaled to each video's size (sharp at any size)."""

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class WatermarkError(ValueError):
    """The watermark settings cannot be used; the message names the setting and the fix."""


@dataclass(frozen=True, slots=True)
class Watermark:
    """A mark (RGBA uint8, ``(h, w, 4)``) and where and how strongly it is drawn."""

    mark: npt.NDArray[np.uint8] = field(repr=False)
    corner: Corner = "bottom-right"
    opacity: float = 0.6
    margin: int = 4
    size: float = 0.1
    _scaled: dict[tuple[int, int], npt.NDArray[np.float32]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def text(cls, text: str, **placement: object) -> Watermark:
        """A white label with a dark outline (readable on light and dark video alike)."""
        from PIL import Image, ImageDraw, ImageFont

        font = ImageFont.load_default(size=TEXT_RENDER_PX)
        stroke = max(2, TEXT_RENDER_PX // 16)
        left, top, right, bottom = (
            int(v)
            for v in ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox(
                (0, 0), text, font=font, stroke_width=stroke
            )
        )
        canvas = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text(
            (-left, -top),
            text,
            font=font,
            fill=(255, 255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 255),
        )
        return cls(np.asarray(canvas, dtype=np.uint8).copy(), **placement)  # type: ignore[arg-type]

    @classmethod
    def image(cls, path: Path, **placement: object) -> Watermark:
        """A small PNG (at most 1 MB and 1024 pixels a side); its alpha channel is kept."""
        from PIL import Image

        where = f"REELGUARD_WATERMARK_IMAGE={path}"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise WatermarkError(
                f"{where}: cannot be read ({exc.strerror}); name a PNG file"
            ) from None
        if not data.startswith(_PNG_MAGIC):
            raise WatermarkError(f"{where}: not a PNG file; convert the logo to PNG")
        if len(data) > MAX_IMAGE_BYTES:
            raise WatermarkError(
                f"{where}: {len(data)} bytes; a watermark PNG may have at most "
                f"{MAX_IMAGE_BYTES} bytes (it is scaled to a tenth of the frame anyway)"
            )
        try:
            with Image.open(io.BytesIO(data)) as img:
                if max(img.size) > MAX_IMAGE_SIDE:
                    raise WatermarkError(
                        f"{where}: {img.width}x{img.height} pixels; at most {MAX_IMAGE_SIDE} a side"
                    )
                pixels = np.asarray(img.convert("RGBA"), dtype=np.uint8).copy()
        except (OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, WatermarkError):
                raise
            raise WatermarkError(f"{where}: the PNG does not decode ({exc})") from None
        if not pixels[..., 3].any():
            raise WatermarkError(f"{where}: every pixel is transparent; nothing would show")
        return cls(pixels, **placement)  # type: ignore[arg-type]

    def _stamp(self, height: int, width: int) -> npt.NDArray[np.float32]:
        """The mark scaled for ``height`` x ``width`` frames, premultiplied: ``(h, w, 4)``
        float32 with RGB times alpha and the alpha already times ``opacity``."""
        with self._lock:
            cached = self._scaled.get((height, width))
            if cached is not None:
                return cached
            from PIL import Image

            h0, w0 = self.mark.shape[:2]
            room_w = max(1, width - 2 * self.margin)
            room_h = max(1, height - 2 * self.margin)
            h = max(1, min(room_h, round(height * self.size)))
            w = max(1, round(w0 * h / h0))
            if w > room_w:  # too wide for the frame: narrow it, keeping the aspect ratio
                w, h = room_w, max(1, round(h0 * room_w / w0))
            scaled = np.asarray(
                Image.fromarray(self.mark, "RGBA").resize((w, h), Image.Resampling.LANCZOS),
                dtype=np.float32,
            )
            alpha = scaled[..., 3:4] / 255.0 * self.opacity
            stamp = np.concatenate([scaled[..., :3] * alpha, alpha], axis=-1).astype(np.float32)
            self._scaled[(height, width)] = stamp
            return stamp

    def apply(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """A copy of ``frames`` (``(T, H, W, 3)`` uint8 RGB) with the mark drawn on each."""
        _, height, width, _ = frames.shape
        stamp = self._stamp(height, width)
        h, w = stamp.shape[:2]
        margin_y = min(self.margin, max(0, height - h))
        margin_x = min(self.margin, max(0, width - w))
        y = margin_y if self.corner.startswith("top") else height - h - margin_y
        x = margin_x if self.corner.endswith("left") else width - w - margin_x
        out = frames.copy()
        region = out[:, y : y + h, x : x + w].astype(np.float32)
        blended = region * (1.0 - stamp[..., 3:4]) + stamp[..., :3]
        out[:, y : y + h, x : x + w] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out


def load_watermark(settings: Settings) -> Watermark | None:
    """The configured watermark, or ``None`` when neither text nor image is set.

    Raises :class:`WatermarkError` for an image that cannot be used (the settings themselves
    already refused both at once, an empty text, a bad corner, opacity or margin).
    """
    placement: dict[str, object] = {
        "corner": settings.watermark_corner,
        "opacity": settings.watermark_opacity,
        "margin": settings.watermark_margin,
        "size": settings.watermark_size,
    }
    if settings.watermark_image is not None:
        return Watermark.image(Path(settings.watermark_image), **placement)
    if settings.watermark_text:
        return Watermark.text(settings.watermark_text, **placement)
    return None
