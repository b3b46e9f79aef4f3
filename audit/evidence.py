"""Evidence thumbnails for flagged frames, kept in a private folder apart from released videos.

A thumbnail is a small JPEG of the frame a reviewer needs to see. It is the object
``evidence/<job id>/frame_000016.jpg`` of the object store (:mod:`storage.objects`): in the
local folder ``<data_dir>/evidence/<job id>/`` (owner-only permissions), or under the S3
bucket's prefix; never under ``released/``, so a withheld frame is never reachable through a
public path. The audit record stores that key as its path (relative to the data folder) and the
SHA-256 of the bytes written (:meth:`audit.log.AuditLog.record_frame_audit`).

A path read back from the database is input like any other (a row can be edited, a database
restored next to another deployment's files): :func:`resolve_evidence_path` is the only way
from a stored path to a file, and it refuses anything that does not resolve inside
``<data_dir>/evidence/``. Records written before paths were stored relative hold absolute
paths; those are accepted on the same condition (the path is covered by the row's hash, so
rows are never rewritten to migrate them).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from audit.errors import InvalidRecord, UnsafePath
from audit.records import StoredEvidence
from policies.decision import Decision
from storage.objects import LocalFolderStore, ObjectStore, as_object_store

log = logging.getLogger("reelguard.audit")

EVIDENCE_DIR = "evidence"
MAX_SIDE = 192
"""Longest side of a thumbnail in pixels: enough to judge, small enough to store for each flag."""

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def evidence_dir(data_dir: Path) -> Path:
    """The private evidence folder under the video data folder."""
    return Path(data_dir) / EVIDENCE_DIR


def stored_evidence_path(path: Path, data_dir: Path) -> str:
    """How the audit log stores the thumbnail at ``path``: relative to ``data_dir`` (POSIX
    separators), or as given when it does not lie under ``data_dir``."""
    try:
        return Path(path).resolve().relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_evidence_path(stored: str, data_dir: Path) -> Path:
    """The file a stored evidence path names, checked to lie inside ``<data_dir>/evidence/``.

    A relative path is taken from ``data_dir`` and may not contain ``..``; an absolute one
    (records from before relative paths) must resolve inside the same folder. Symbolic links
    are resolved first, so a link that leads out is refused too. Raises :class:`UnsafePath`
    naming the path and why.
    """
    root = evidence_dir(data_dir).resolve()
    raw = Path(stored)
    if not stored or "\x00" in stored:
        raise UnsafePath(f"evidence path {stored!r} is empty or not a path")
    if not raw.is_absolute() and ".." in raw.parts:
        raise UnsafePath(f"evidence path {stored!r} climbs out of the data folder ('..')")
    target = (raw if raw.is_absolute() else Path(data_dir) / raw).resolve()
    if target == root or not target.is_relative_to(root):
        raise UnsafePath(
            f"evidence path {stored!r} resolves to {target}, outside {root}; it was edited, or "
            "the database belongs with another data folder (--data-dir)"
        )
    return target


def resolve_evidence_key(stored: str, files: Path | ObjectStore) -> str:
    """The object key a stored evidence path names, checked to lie under ``evidence/``.

    In a local folder this is :func:`resolve_evidence_path` (absolute paths of old records,
    symbolic links); in an object store the stored path must be a key ``evidence/<...>``
    without ``..``. Raises :class:`UnsafePath` naming the path and why.
    """
    store = as_object_store(files)
    if isinstance(store, LocalFolderStore):
        target = resolve_evidence_path(stored, store.root)
        return target.relative_to(Path(store.root).resolve()).as_posix()
    parts = stored.split("/") if stored else []
    if (
        len(parts) < 2
        or parts[0] != EVIDENCE_DIR
        or any(p in ("", ".", "..") for p in parts)
        or "\x00" in stored
        or "\\" in stored
    ):
        raise UnsafePath(
            f"evidence path {stored!r} is not a key under {EVIDENCE_DIR}/ of {store.label}; it "
            "was edited, or the database belongs with another store (REELGUARD_STORAGE_URL)"
        )
    return stored


def _jpeg(image: npt.NDArray[np.uint8], max_side: int) -> bytes:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidRecord(
            f"evidence frame must be RGB uint8 (H, W, 3), got {arr.dtype} {arr.shape}"
        )
    picture = Image.fromarray(arr, mode="RGB")
    picture.thumbnail((max_side, max_side))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)
    return out.getvalue()


def put_thumbnail(
    files: Path | ObjectStore,
    job_id: str,
    frame_index: int,
    image: npt.NDArray[np.uint8],
    *,
    max_side: int = MAX_SIDE,
) -> StoredEvidence:
    """Store a JPEG thumbnail of ``image`` (RGB uint8, H x W x 3) as
    ``evidence/<job_id>/frame_<index>.jpg`` and return its key, SHA-256 and size.

    In a local folder the file is written atomically with mode 0600 in a 0700 folder. Raises
    :class:`InvalidRecord` for an unsafe job id or an image that is not RGB uint8, and
    :class:`storage.objects.ObjectStoreUnavailable` when the store cannot be written.
    """
    if not _SAFE_ID.match(job_id):
        raise InvalidRecord(
            f"job id {job_id!r} cannot name an evidence folder: use letters, digits, '.', '_', '-'"
        )
    if frame_index < 0:
        raise InvalidRecord(f"frame index must be >= 0, got {frame_index}")
    data = _jpeg(image, max_side)
    key = f"{EVIDENCE_DIR}/{job_id}/frame_{frame_index:06d}.jpg"
    as_object_store(files).put_bytes(key, data, private=True)
    return StoredEvidence(key, hashlib.sha256(data).hexdigest(), len(data))


def write_thumbnail(
    data_dir: Path,
    job_id: str,
    frame_index: int,
    image: npt.NDArray[np.uint8],
    *,
    max_side: int = MAX_SIDE,
) -> Path:
    """Write a JPEG thumbnail of ``image`` (RGB uint8, H x W x 3) and return its path.

    The file is ``<data_dir>/evidence/<job_id>/frame_<index>.jpg``, written atomically with
    mode 0600 in a 0700 folder. Raises :class:`InvalidRecord` for an unsafe job id or an image
    that is not RGB uint8.
    """
    stored = put_thumbnail(data_dir, job_id, frame_index, image, max_side=max_side)
    return Path(data_dir) / stored.key


MAX_EVIDENCE_FRAMES = 16
"""Most evidence thumbnails written for one video (the lowest cited frame indexes)."""


def flagged_thumbnails(
    files: Path | ObjectStore,
    job_id: str,
    frames: npt.NDArray[np.uint8],
    decision: Decision,
    *,
    limit: int = MAX_EVIDENCE_FRAMES,
) -> dict[int, StoredEvidence]:
    """Write a thumbnail for each frame a review/block reason of ``decision`` cites, for the
    reviewer (``frames`` is the video, ``(T, H, W, 3)`` uint8 RGB; at most ``limit`` thumbnails,
    lowest frame indexes first).

    Returns ``{frame index: stored evidence}``, ready for ``FrameAuditRecord.thumbnails``.
    Frames the decision does not cite get none (an allowed video leaves no evidence files). A
    thumbnail that cannot be written is logged and skipped: evidence is a convenience, the
    scores are recorded regardless.
    """
    cited = sorted(
        {
            e.frame_index
            for reason in decision.reasons
            for e in reason.evidence
            if e.frame_index is not None and 0 <= e.frame_index < len(frames)
        }
    )[:limit]
    thumbnails: dict[int, StoredEvidence] = {}
    for index in cited:
        try:
            thumbnails[index] = put_thumbnail(files, job_id, index, frames[index])
        except Exception as exc:
            log.warning("job %s: evidence thumbnail of frame %d failed: %s", job_id, index, exc)
    return thumbnails
