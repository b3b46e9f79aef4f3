"""The clip an extension continues or an edit starts from, kept between the web process that
checked it and the worker that conditions on it.

The web process stores the frames, already at the video's size, losslessly (``.npz``) in the
object store's ``quarantine/`` (never served) under a content-addressed key, before the job
row exists; the job's ``source_clip`` names the key. An uploaded video's original bytes are
kept beside them, so the release's C2PA manifest can list the upload as an ingredient.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from config.settings import Settings
from generator.base import Conditioning
from storage.objects import ObjectStore, object_store

SourceMode = Literal["extend", "edit"]
PREFIX = "quarantine/source-"


@dataclass(frozen=True, slots=True)
class SourceClip:
    """A checked source: frames ``(T, H, W, 3)`` uint8 at the video's size, at ``fps``; the
    released video it came from (``video_id``) or the upload (``upload``: its bytes, and
    ``sha256``/``media_type``)."""

    mode: SourceMode
    frames: npt.NDArray[np.uint8] = field(repr=False)
    fps: float
    video_id: str | None = None
    upload: bytes | None = field(default=None, repr=False)
    sha256: str | None = None
    media_type: str | None = None

    @property
    def seconds(self) -> float:
        """Length in seconds."""
        return float(len(self.frames) / self.fps)


def store_source(settings: Settings, clip: SourceClip) -> dict[str, Any]:
    """Write ``clip`` to the object store; return the job's ``source_clip`` member."""
    out = io.BytesIO()
    np.savez_compressed(out, frames=clip.frames, fps=np.array(clip.fps))
    data = out.getvalue()
    files = object_store(settings)
    key = f"{PREFIX}{hashlib.sha256(data).hexdigest()}.npz"
    if not files.exists(key):
        files.put_bytes(key, data, private=True)
    record: dict[str, Any] = {
        "mode": clip.mode,
        "key": key,
        "video_id": clip.video_id,
        "frames": len(clip.frames),
        "fps": clip.fps,
        "seconds": round(clip.seconds, 3),
    }
    if clip.upload is not None and clip.sha256 is not None:
        original = f"{PREFIX}{clip.sha256}.upload"
        if not files.exists(original):
            files.put_bytes(original, clip.upload, private=True)
        record |= {"sha256": clip.sha256, "media_type": clip.media_type, "upload_key": original}
    return record


def source_conditioning(files: ObjectStore, record: dict[str, Any]) -> Conditioning:
    """The :class:`Conditioning` a job's ``source_clip`` stands for (frames read back)."""
    with np.load(io.BytesIO(files.get_bytes(record["key"])), allow_pickle=False) as data:
        frames = np.ascontiguousarray(data["frames"].astype(np.uint8))
        fps = float(data["fps"])
    origin = record.get("video_id") or f"upload:{record.get('sha256')}"
    if record["mode"] == "extend":
        return Conditioning(keep_frames=frames, fps=fps, source=f"extend:{origin}")
    return Conditioning(start_clip=frames, fps=fps, source=f"edit:{origin}")
