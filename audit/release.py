"""The one way the reviewer CLI releases a withheld video: through the job system's release path.

The job system (``gateway.review.approve_withheld`` over ``gateway.jobs.release_withheld``)
moves the file out of quarantine, records the release in the audit log and marks the job
completed; the audit package never moves video files itself, so there is a single release path
to trust. A rejection is marked on the job too (``gateway.review.reject_withheld``), so the video
object tells "rejected" from "pending".
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from audit.errors import ReleaseFailed, UnknownRecord


def _job_system(name: str) -> tuple[Any, Any, Any]:
    """``gateway.review.<name>`` and the job system's error classes, imported lazily."""
    try:
        review = importlib.import_module("gateway.review")
        jobs = importlib.import_module("gateway.jobs")
        call = getattr(review, name)
    except (ImportError, AttributeError) as exc:
        raise ReleaseFailed(
            f"cannot apply the review: the job system (gateway.review.{name}) is not available "
            f"in this installation ({exc}); the review was not recorded"
        ) from exc
    return call, getattr(jobs, "JobNotFound", ()), getattr(jobs, "JobError", ())


def release_withheld(db_path: Path, data_dir: Path, job_id: str, actor: str, note: str) -> str:
    """Release a withheld video after an approving review; returns the released job's id.

    Imports the job system lazily (the audit log works without it) and turns its errors into
    :class:`ReleaseFailed` / :class:`UnknownRecord` with a message saying what to do.
    """
    release, not_found, job_error = _job_system("approve_withheld")
    try:
        job = release(Path(db_path), Path(data_dir), job_id, actor, note)
    except not_found as exc:
        raise UnknownRecord(f"no video job {job_id!r} in the job store: {exc}") from exc
    except job_error as exc:
        raise ReleaseFailed(f"cannot release video {job_id}: {exc}") from exc
    return str(getattr(job, "id", job_id))


def reject_withheld(db_path: Path, job_id: str, actor: str, note: str) -> str:
    """Mark a withheld video's review rejected (it stays withheld), so its owner sees
    ``moderation.review == "rejected"``; returns the job's id."""
    reject, not_found, job_error = _job_system("reject_withheld")
    try:
        job = reject(Path(db_path), job_id, actor, note)
    except not_found as exc:
        raise UnknownRecord(f"no video job {job_id!r} in the job store: {exc}") from exc
    except job_error as exc:
        raise ReleaseFailed(f"cannot record the rejection of video {job_id}: {exc}") from exc
    return str(getattr(job, "id", job_id))
