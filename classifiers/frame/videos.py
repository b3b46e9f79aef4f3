"""Uploaded videos, decoded safely into the RGB frames the frame classifiers read.

:func:`decode_video` accepts MP4, QuickTime (MOV) and WebM only (what the Videos API takes as
a ``video`` to extend or edit), recognised by their first bytes, not by a file name or a
declared type. Before a frame is decoded it checks what the stream declares: frame size
(``max_pixels``) and length (``max_seconds``, ``max_frames``); while decoding it counts again,
because a container can lie about both (a "1 s" clip that decodes to ten thousand frames is a
bomb too). Frames larger than ``max_side`` on their longer side are scaled down as they are
decoded, so memory is bounded by ``max_frames x max_side^2 x 3`` bytes whatever the upload.

Errors (:class:`VideoRejected`, ``kind`` says which)::

    not_video    not an MP4, MOV or WebM file (another format, or not a video at all)
    too_large    declares frames over max_pixels, or more than max_frames / max_seconds
    undecodable  an MP4/MOV/WebM that does not decode (truncated, corrupt, no video stream)
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

RejectKind = Literal["not_video", "too_large", "undecodable"]

_EBML = b"\x1a\x45\xdf\xa3"
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


class VideoRejected(ValueError):
    """An upload that is not an acceptable video; the message says why and what to send."""

    def __init__(self, kind: RejectKind, message: str) -> None:
        super().__init__(message)
        self.kind: RejectKind = kind


@dataclass(frozen=True, slots=True)
class DecodedVideo:
    """An uploaded video: RGB frames ``(T, H, W, 3)`` uint8 at ``fps``, and what was received
    (``width``/``height`` as declared by the stream, before any scaling down)."""

    frames: npt.NDArray[np.uint8] = field(repr=False)
    fps: float
    media_type: str
    sha256: str
    bytes: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        """Length in seconds (frames / fps)."""
        return float(self.frames.shape[0] / self.fps)


def sniff(data: bytes) -> tuple[str, str] | None:
    """``(PyAV demuxer, media type)`` for an MP4/MOV/WebM by its first bytes, else ``None``."""
    if data[:4] == _EBML:
        return "matroska", "video/webm"
    if data[4:8] in _ISO_BOXES:
        brand = data[8:12] if data[4:8] == b"ftyp" else b""
        return "mov", "video/quicktime" if brand == b"qt  " else "video/mp4"
    return None


def decode_video(
    data: bytes,
    *,
    max_pixels: int,
    max_frames: int,
    max_seconds: float,
    max_side: int = 512,
) -> DecodedVideo:
    """Decode ``data`` (see the module docstring); raises :class:`VideoRejected`."""
    if not data:
        raise VideoRejected("undecodable", "the file is empty; send an MP4, MOV or WebM video")
    kind = sniff(data)
    if kind is None:
        raise VideoRejected(
            "not_video", "the file is not a video in an accepted format (MP4, MOV, WebM)"
        )
    demuxer, media_type = kind
    import av

    try:
        with av.open(io.BytesIO(data), mode="r", format=demuxer) as container:
            if not container.streams.video:
                raise VideoRejected("undecodable", "the file has no video stream")
            stream = container.streams.video[0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            fps = _fps(stream)
            _check_declared(stream, container, width, height, fps, max_pixels, max_seconds)
            limit = min(max_frames, math.floor(max_seconds * fps + 1e-6))
            size = _scaled(width, height, max_side)
            frames: list[npt.NDArray[np.uint8]] = []
            for frame in container.decode(stream):
                if frame.width * frame.height > max_pixels:
                    raise VideoRejected(
                        "too_large",
                        f"a frame is {frame.width}x{frame.height}, over the limit of "
                        f"{max_pixels} pixels (REELGUARD_MAX_UPLOAD_PIXELS)",
                    )
                if len(frames) >= limit:
                    raise VideoRejected(
                        "too_large",
                        f"the video has more than {limit} frames ({max_seconds:g} s at "
                        f"{fps:g} fps, at most {max_frames} frames: "
                        "REELGUARD_MAX_UPLOAD_VIDEO_S, REELGUARD_MAX_UPLOAD_VIDEO_FRAMES); send "
                        "a shorter clip",
                    )
                w, h = (
                    size
                    if (frame.width, frame.height) == (width, height)
                    else _scaled(frame.width, frame.height, max_side)
                )
                frames.append(
                    np.asarray(frame.to_ndarray(format="rgb24", width=w, height=h), np.uint8)
                )
    except VideoRejected:
        raise
    except (av.FFmpegError, ValueError, OSError, MemoryError) as exc:
        raise VideoRejected(
            "undecodable", f"the {media_type} file does not decode: {exc}"
        ) from None
    if not frames:
        raise VideoRejected("undecodable", "the video has no frames")
    if len({f.shape for f in frames}) != 1:
        raise VideoRejected("undecodable", "the video changes frame size midway")
    return DecodedVideo(
        frames=np.ascontiguousarray(np.stack(frames).astype(np.uint8)),
        fps=fps,
        media_type=media_type,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        width=width,
        height=height,
    )


def _fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not (math.isfinite(fps) and 0.5 <= fps <= 240):
        raise VideoRejected(
            "undecodable", f"the video declares {fps:g} frames per second (0.5 to 240 accepted)"
        )
    return fps


def _check_declared(
    stream: Any,
    container: Any,
    width: int,
    height: int,
    fps: float,
    max_pixels: int,
    max_seconds: float,
) -> None:
    if width < 1 or height < 1:
        raise VideoRejected("undecodable", f"the video declares a {width}x{height} frame size")
    if width * height > max_pixels:
        raise VideoRejected(
            "too_large",
            f"the video declares {width}x{height} = {width * height} pixels per frame, over the "
            f"limit of {max_pixels} (REELGUARD_MAX_UPLOAD_PIXELS); send a smaller video",
        )
    declared = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = container.duration / 1_000_000
    if declared is not None and declared > max_seconds + 1.0 / fps:
        raise VideoRejected(
            "too_large",
            f"the video declares {declared:.2f} s, over the limit of {max_seconds:g} s "
            "(REELGUARD_MAX_UPLOAD_VIDEO_S); send a shorter clip",
        )


def _scaled(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled down to ``max_side`` on the longer side (even, >= 2)."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
