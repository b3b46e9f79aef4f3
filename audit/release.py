"""The one way the reviewer CLI releases a withheld video: through the job system's release path.

The job system (``gateway.jobs.release_withheld``) moves the file out of quarantine, records
the release in the audit log and marks the job completed; the audit package never moves video
files itself, so there is a single release path to trust.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from audit.errors import ReleaseFailed, UnknownRecord


def release_withheld(db_path: Path, data_dir: Path, job_id: str, actor: str, note: str) -> str:
    """Release a withheld video after an approving review; returns the released file's path.

    Imports the job system lazily (the audit log works without it) and turns its errors into
    :class:`ReleaseFailed` / :class:`UnknownRecord` with a message saying what to do.
    """
    try:
        jobs = importlib.import_module("gateway.jobs")
        release = jobs.release_withheld
    except (ImportError, AttributeError) as exc:
        raise ReleaseFailed(
            "cannot release: the job system (gateway.jobs.release_withheld) is not available "
            f"in this installation ({exc}); the review was not recorded"
        ) from exc
    not_found = getattr(jobs, "JobNotFound", ())
    job_error = getattr(jobs, "JobError", ())
    try:
        job = release(Path(db_path), Path(data_dir), job_id, actor, note)
    except not_found as exc:
        raise UnknownRecord(f"no video job {job_id!r} in the job store: {exc}") from exc
    except job_error as exc:
        raise ReleaseFailed(f"cannot release video {job_id}: {exc}") from exc
    return str(getattr(job, "id", job_id))
