"""Evidence thumbnails for flagged frames, kept in a private folder apart from released videos.

A thumbnail is a small JPEG of the frame a reviewer needs to see. It lives under
``<data_dir>/evidence/<job id>/`` (owner-only permissions), never under ``released/``, so a
withheld frame is never reachable through a public path. The audit record stores its path,
relative to the data folder (``evidence/<job id>/frame_000016.jpg``), and its SHA-256
(:meth:`audit.log.AuditLog.record_frame_audit`).

A path read back from the database is input like any other (a row can be edited, a database
restored next to another deployment's files): :func:`resolve_evidence_path` is the only way
from a stored path to a file, and it refuses anything that does not resolve inside
``<data_dir>/evidence/``. Records written before paths were stored relative hold absolute
paths; those are accepted on the same condition (the path is covered by the row's hash, so
rows are never rewritten to migrate them).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from audit.errors import InvalidRecord, UnsafePath
from policies.decision import Decision

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
    if not _SAFE_ID.match(job_id):
        raise InvalidRecord(
            f"job id {job_id!r} cannot name an evidence folder: use letters, digits, '.', '_', '-'"
        )
    if frame_index < 0:
        raise InvalidRecord(f"frame index must be >= 0, got {frame_index}")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidRecord(
            f"evidence frame must be RGB uint8 (H, W, 3), got {arr.dtype} {arr.shape}"
        )
    folder = evidence_dir(data_dir) / job_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    picture = Image.fromarray(arr, mode="RGB")
    picture.thumbnail((max_side, max_side))
    target = folder / f"frame_{frame_index:06d}.jpg"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as out:
            picture.save(out, format="JPEG", quality=80)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


MAX_EVIDENCE_FRAMES = 16
"""Most evidence thumbnails written for one video (the lowest cited frame indexes)."""


def flagged_thumbnails(
    data_dir: Path,
    job_id: str,
    frames: npt.NDArray[np.uint8],
    decision: Decision,
    *,
    limit: int = MAX_EVIDENCE_FRAMES,
) -> dict[int, Path]:
    """Write a thumbnail for each frame a review/block reason of ``decision`` cites, for the
    reviewer (``frames`` is the video, ``(T, H, W, 3)`` uint8 RGB; at most ``limit`` thumbnails,
    lowest frame indexes first).

    Returns ``{frame index: path}``, ready for ``FrameAuditRecord.thumbnails``. Frames the
    decision does not cite get none (an allowed video leaves no evidence files). A thumbnail
    that cannot be written is logged and skipped: evidence is a convenience, the scores are
    recorded regardless.
    """
    cited = sorted(
        {
            e.frame_index
            for reason in decision.reasons
            for e in reason.evidence
            if e.frame_index is not None and 0 <= e.frame_index < len(frames)
        }
    )[:limit]
    thumbnails: dict[int, Path] = {}
    for index in cited:
        try:
            thumbnails[index] = write_thumbnail(data_dir, job_id, index, frames[index])
        except Exception:
            log.warning("job %s: evidence thumbnail of frame %d failed", job_id, index)
    return thumbnails
