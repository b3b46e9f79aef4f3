"""The clip an extension continues or an edit starts from, kept between the web process that
checked it and the worker that conditions on it.

The web process stores the frames, already at the video's size, losslessly (``.npz``) in the
object store's ``quarantine/`` (never served) before the job row exists; the job's
``source_clip`` names the key. An uploaded video's original bytes are kept beside them, so the
release's C2PA manifest can list the upload as an ingredient.

Each admitted job owns its objects (``source-<sha256>-<token>``: the content hash, then a
token of the job's own), so deleting them can never take a clip from another job that sent
the same video. They live as long as the job may still generate: once it has ended
(``completed`` or ``failed``, cancellation included) :func:`drop_ended_sources` deletes them
(the worker runs it after every job; ``DELETE`` of a queued video drops its clip at once), and
the job's ``source_dropped`` says when. A withheld video keeps its quarantined MP4 as evidence;
that MP4 holds the source's frames, and the audit record the upload's sha256.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from config.settings import Settings
from generator.base import Conditioning
from storage import Database, StorageError
from storage.objects import ObjectStore, object_store

log = logging.getLogger("reelguard.videos")

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
    token = secrets.token_hex(8)
    key = f"{PREFIX}{hashlib.sha256(data).hexdigest()}-{token}.npz"
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
        original = f"{PREFIX}{clip.sha256}-{token}.upload"
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


def source_keys(record: dict[str, Any]) -> tuple[str, ...]:
    """The objects a ``source_clip`` record owns (the frames, and an upload's original)."""
    keys = (record.get("key"), record.get("upload_key"))
    return tuple(str(k) for k in keys if k and str(k).startswith(PREFIX))


def delete_source(files: ObjectStore, record: dict[str, Any]) -> None:
    """Delete a source clip's objects (those already gone are fine); :class:`StorageError`
    when the store cannot delete them now."""
    for key in source_keys(record):
        files.delete(key)


ENDED_WITH_SOURCE = """SELECT id, source_clip FROM video_jobs
    WHERE source_clip IS NOT NULL AND source_dropped IS NULL
    AND status IN ('completed', 'failed') ORDER BY seq LIMIT ?"""


def drop_ended_sources(database: Database, files: ObjectStore, *, limit: int = 100) -> int:
    """Delete the source clips of jobs that have ended, and note it on each job; returns how
    many jobs' clips went. A job still queued or running keeps its clip (a recovered job is
    generated again from it); a clip that cannot be deleted now is tried again next time."""
    import json

    with database.transaction() as tx:
        ended = tx.all(ENDED_WITH_SOURCE, (limit,))
    dropped = 0
    for job_id, record in ended:
        try:
            delete_source(files, json.loads(record))
        except StorageError as exc:  # quarantined clips are never served; only space is lost
            log.warning("job %s: cannot delete its source clip now: %s", job_id, exc)
            continue
        with database.transaction(write=True) as tx:
            # Only an ended job is marked; ended jobs never run again (a review only moves
            # the finished MP4).
            tx.execute(
                "UPDATE video_jobs SET source_dropped = ? WHERE id = ? "
                "AND status IN ('completed', 'failed')",
                (f"{time.time():.3f}", job_id),
            )
        dropped += 1
    return dropped
