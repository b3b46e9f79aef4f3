"""A withheld video's human review, as the job system and the API see it.

The reviewer CLI (``reelguard audit review ID --approve|--reject``,
:mod:`gateway.commands.audit`) calls :func:`approve_withheld` or :func:`reject_withheld`; the
video object shows the outcome as ``moderation.review`` (see :func:`review_view`)::

    "review": "pending" | "approved" | "rejected" | null,   # null: the video was not withheld
    "reviewer": "alice" | null, "reviewed_at": 1767225600 | null, "review_note": "..." | null

A withheld video is ``failed`` (``error.code`` ``output_moderation`` or ``prompt_review``) while
its review is pending or after a rejection, and becomes ``completed`` when a reviewer approves
it; each outcome also sends a webhook (``video.completed`` / ``video.failed``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from gateway.jobs import JobStore, NotWithheld, VideoJob, connect, release_withheld


def review_view(job: VideoJob) -> dict[str, Any]:
    """The review members of a video's ``moderation`` object."""
    frames = job.frame_moderation or {}
    approved = frames.get("reviewed")
    rejected = frames.get("review_rejected")
    if approved and job.release == "released":
        state: str | None = "approved"
        who, at, note = approved.get("actor"), approved.get("released_at"), approved.get("note")
    elif job.release == "withheld" and rejected:
        state = "rejected"
        who, at, note = rejected.get("actor"), rejected.get("at"), rejected.get("note")
    elif job.release == "withheld":
        state, who, at, note = "pending", None, None, None
    else:
        state, who, at, note = None, None, None, None
    return {"review": state, "reviewer": who, "reviewed_at": at, "review_note": note}


def _notify(db_path: Path, job: VideoJob) -> None:
    """Queue the job's webhook event in its database (webhook settings from the environment)."""
    from config.settings import Settings
    from gateway.webhooks import enqueue_event

    enqueue_event(Settings(db=Path(db_path)), job)


def approve_withheld(db_path: Path, data_dir: Path, job_id: str, actor: str, note: str) -> VideoJob:
    """Release a withheld video after an approving review (see
    :func:`gateway.jobs.release_withheld`), and send ``video.completed``."""
    job = release_withheld(db_path, data_dir, job_id, actor, note)
    _notify(db_path, job)
    return job


def reject_withheld(db_path: Path, job_id: str, actor: str, note: str) -> VideoJob:
    """Mark a withheld video's review as rejected (it stays withheld, its files in quarantine
    as evidence), and send ``video.failed`` again so a waiting client learns the outcome.

    Raises :class:`~gateway.jobs.JobNotFound` or :class:`~gateway.jobs.NotWithheld`.
    """
    store = JobStore(db_path)
    job = store.get(job_id)
    if job.release != "withheld" or job.status != "failed":
        raise NotWithheld(
            f"video {job_id} is {job.status} (release: {job.release or 'none'}); only a withheld "
            "video can be rejected"
        )
    now = time.time()
    frame = dict(job.frame_moderation or {})
    frame["review_rejected"] = {"actor": actor, "note": note, "at": int(now)}
    message = (job.error_message or "withheld").split("; rejected on review by ")[0]
    conn = connect(Path(db_path))
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            """UPDATE video_jobs SET frame_moderation = ?, error_message = ?, updated_at = ?
               WHERE id = ? AND release = 'withheld'""",
            (json.dumps(frame), f"{message}; rejected on review by {actor}", now, job_id),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    job = store.get(job_id)
    _notify(db_path, job)
    return job
