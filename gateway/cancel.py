"""Cancelling a video, and ending one, so that a cancellation wins every race with the worker.

``DELETE /v1/videos/{id}`` and the worker's last step both write the job row *and* the audit log,
and each does both in one transaction of the shared database
(:meth:`audit.log.AuditLog.transaction`), so the two serialise:

* :func:`cancel` (the owner): a queued job fails at once (``cancelled``); a running one is
  flagged ``cancel_requested``; a finished one is hidden. In the same transaction the audit log
  records ``cancelled`` (or ``deleted``) with who asked (tenant and key id) and when.
* :func:`release` / :func:`withhold` (the worker, after the frame audit decided): the transaction
  first reads the job row; if the owner cancelled it, it raises :class:`JobCancelled` and records
  nothing; otherwise it records ``released``/``withheld`` and ends the job in the same commit.

So a video is released only if its release committed before any cancellation: then the video
had finished when the DELETE came, and the DELETE removes its files (``deleted``). A DELETE that
commits first means no release is ever recorded and the job ends ``failed``/``cancelled``; the
worker removes an allowed video's files, and keeps a withheld one's in quarantine as evidence.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from audit.log import AuditLog
from gateway.jobs import (
    JobError,
    JobNotFound,
    VideoJob,
    move_to_released,
    row_to_job,
    video_key,
)
from storage import Tx
from storage.objects import ObjectStore, as_object_store


class JobCancelled(JobError):
    """The job's owner cancelled it before its release; nothing was recorded or released."""


class JobLost(JobError):
    """The job is no longer this worker's (another worker recovered it); nothing was written."""


def cancel(audit: AuditLog, job_id: str, tenant: str, actor: str) -> VideoJob:
    """Cancel (queued or running) or delete (finished) a tenant's video, and record who did it.

    Returns the job as it was before. Raises :class:`~gateway.jobs.JobNotFound` (nothing
    written) when the tenant has no such live video. The caller removes a finished video's
    released files.
    """
    now = time.time()
    with audit.transaction() as conn:
        row = conn.record(
            "SELECT * FROM video_jobs WHERE id = ? AND tenant = ? AND deleted_at IS NULL",
            (job_id, tenant),
        )
        if row is None:
            raise JobNotFound(f"no video {job_id!r}")
        job = row_to_job(row)
        if job.status == "queued":
            conn.execute(
                """UPDATE video_jobs SET status = 'failed', stage = 'done',
                   error_code = 'cancelled', error_message = ?, completed_at = ?,
                   updated_at = ?, deleted_at = ?, cancel_requested = 1 WHERE id = ?""",
                (f"deleted before it started, by {actor}", now, now, now, job_id),
            )
            action, reason = "cancelled", "deleted while queued; it never started"
        elif job.status == "in_progress":
            conn.execute(
                """UPDATE video_jobs SET cancel_requested = 1, deleted_at = ?, updated_at = ?
                   WHERE id = ?""",
                (now, now, job_id),
            )
            action = "cancelled"
            reason = f"deleted while running (stage {job.stage}); it will not be released"
        else:
            conn.execute(
                "UPDATE video_jobs SET deleted_at = ?, updated_at = ? WHERE id = ?",
                (now, now, job_id),
            )
            action = "deleted"
            reason = f"deleted after it ended ({job.status}, release {job.release or 'none'})"
        audit.record_release(job.id, job.tenant, action, None, reason, actor)
    return job


def _own(conn: Tx, job: VideoJob, worker_id: str) -> None:
    """Raise unless ``worker_id`` still runs ``job`` and nobody cancelled it (in the txn)."""
    row = conn.record(
        "SELECT status, worker_id, cancel_requested FROM video_jobs WHERE id = ?", (job.id,)
    )
    if row is None or row["status"] != "in_progress" or row["worker_id"] != worker_id:
        raise JobLost(f"video {job.id} is no longer run by {worker_id}")
    if row["cancel_requested"]:
        raise JobCancelled(f"video {job.id} was cancelled by its owner")


def _end(
    conn: Tx,
    job: VideoJob,
    worker_id: str,
    *,
    status: str,
    release: str,
    error_code: str | None,
    error_message: str | None,
    timings: dict[str, float],
) -> None:
    now = time.time()
    conn.execute(
        """UPDATE video_jobs SET status = ?, stage = 'done', release = ?, error_code = ?,
           error_message = ?, completed_at = ?, updated_at = ?, lease_expires_at = NULL,
           progress = CASE WHEN ? = 'completed' THEN 100 ELSE progress END, timings = ?
           WHERE id = ? AND worker_id = ? AND status = 'in_progress'""",
        (
            status,
            release,
            error_code,
            error_message,
            now,
            now,
            status,
            json.dumps(timings),
            job.id,
            worker_id,
        ),
    )


def release(
    audit: AuditLog,
    files: Path | ObjectStore,
    job: VideoJob,
    worker_id: str,
    *,
    reason: str,
    actor: str,
    timings: dict[str, float],
) -> str:
    """Release an allowed video: move its files out of quarantine, then record the release and
    complete the job in one transaction, unless its owner cancelled it first.

    The files are moved before the transaction (same filesystem: renames), so a crash in between
    leaves a ``decided`` job whose recovery repeats this; the API serves nothing until the job is
    ``completed``. Raises :class:`JobCancelled` or :class:`JobLost` (nothing recorded).
    """
    path = move_to_released(files, job)
    with audit.transaction() as conn:
        _own(conn, job, worker_id)
        audit.record_release(job.id, job.tenant, "released", path, reason, actor)
        _end(
            conn,
            job,
            worker_id,
            status="completed",
            release="released",
            error_code=None,
            error_message=None,
            timings=timings,
        )
    return path


def withhold(
    audit: AuditLog,
    files: Path | ObjectStore,
    job: VideoJob,
    worker_id: str,
    *,
    code: str,
    reason: str,
    actor: str,
    timings: dict[str, float],
) -> str:
    """Keep a video the decision did not allow in quarantine: record the withholding and fail
    the job (``code``) in one transaction, unless its owner cancelled it first.

    Raises :class:`JobCancelled` or :class:`JobLost` (nothing recorded).
    """
    path = as_object_store(files).location(video_key("quarantine", job.file_name))
    with audit.transaction() as conn:
        _own(conn, job, worker_id)
        audit.record_release(job.id, job.tenant, "withheld", path, reason, actor)
        _end(
            conn,
            job,
            worker_id,
            status="failed",
            release="withheld",
            error_code=code,
            error_message=reason,
            timings=timings,
        )
    return path


def remove_files(files: Path | ObjectStore, job: VideoJob) -> None:
    """Delete a job's MP4 and thumbnail from both released/ and quarantine/ (if there)."""
    store = as_object_store(files)
    for name in (job.file_name, job.thumbnail_name):
        store.delete(video_key("released", name))
        store.delete(video_key("quarantine", name))
