"""Frame thumbnails for the console's timeline, cut from the job's MP4 (quarantined or released).

The MP4 holds exactly the frames the audit scored (the worker encodes the audited array), so
frame ``i`` of the file is sampled frame ``i``. One pass over the file keeps only the sampled
frames, shrunk to :data:`THUMB_SIDE` pixels as JPEG; the results of the last few videos stay in
memory. When the MP4 is gone, a flagged frame falls back to its evidence thumbnail (checked to
lie under ``evidence/``). The files come from the object store (:mod:`storage.objects`): a local
folder, or an S3 bucket (the MP4 is then read into memory for decoding).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from gateway.jobs import QUARANTINE_DIR, RELEASED_DIR
from storage.objects import ObjectStore

THUMB_SIDE = 192
MAX_FRAMES = 20_000
"""Frames read from one file at most (a runaway file cannot keep a console thread busy)."""
CACHED_VIDEOS = 8


def video_object(files: ObjectStore, job_id: str) -> str | None:
    """The key of the job's MP4 in quarantine/ or released/, or None when it is in neither."""
    name = f"{job_id}.mp4"
    for folder in (QUARANTINE_DIR, RELEASED_DIR):
        key = f"{folder}/{name}"
        if files.exists(key):
            return key
    return None


class FrameThumbnails:
    """JPEG thumbnails of chosen frames of a video file, cached for a few files (thread-safe)."""

    def __init__(self, videos: int = CACHED_VIDEOS) -> None:
        self._cache: OrderedDict[tuple[str, float, tuple[int, ...]], dict[int, bytes]] = (
            OrderedDict()
        )
        self._videos = videos
        self._lock = threading.Lock()
        self._decoding: dict[tuple[str, float, tuple[int, ...]], threading.Lock] = {}

    def get(self, files: ObjectStore, name: str, index: int, wanted: Iterable[int]) -> bytes | None:
        """Frame ``index`` of the video ``name`` in ``files`` as JPEG (None when the file has
        no such frame). The file is read once for every frame in ``wanted`` (the job's sampled
        frames)."""
        frames = tuple(sorted({*wanted, index}))
        path = files.local_path(name)
        # An object's bytes never change under its key (a job's MP4 is written once, then
        # moved); a local file's mtime still guards against a file replaced by hand.
        key = (files.location(name), path.stat().st_mtime if path else 0.0, frames)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found.get(index)
            # A page asks for all its thumbnails at once: one request decodes, the rest wait.
            busy = self._decoding.setdefault(key, threading.Lock())
        with busy:
            with self._lock:
                found = self._cache.get(key)
            if found is None:
                found = _decode(path or io.BytesIO(files.get_bytes(name)), frames)
                with self._lock:
                    self._cache[key] = found
                    while len(self._cache) > self._videos:
                        self._cache.popitem(last=False)
        with self._lock:
            self._decoding.pop(key, None)
        return found.get(index)


def _decode(path: Path | io.BytesIO, frames: tuple[int, ...]) -> dict[int, bytes]:
    import av
    from PIL import Image

    wanted, last = set(frames), max(frames)
    out: dict[int, bytes] = {}
    with av.open(str(path) if isinstance(path, Path) else path, mode="r") as container:
        if not container.streams.video:
            return out
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i > last or i >= MAX_FRAMES:
                break
            if i not in wanted:
                continue
            image = frame.to_image()
            image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
            if min(image.size) < 96:  # tiny clips (64x64) are upscaled to be judged at all
                scale = 96 / min(image.size)
                image = image.resize(
                    (round(image.width * scale), round(image.height * scale)),
                    Image.Resampling.NEAREST,
                )
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
            out[i] = buffer.getvalue()
    return out
