"""A human review, as the job system and the API see it: the one path that releases a withheld
video, and the one that records a rejection.

The reviewer CLI (``reelguard audit review ID --approve|--reject``,
:mod:`gateway.commands.audit`) and the review console (``POST /review/items/ID/review``,
:mod:`gateway.console.item_routes`) both call :func:`apply_review`, so every approve and reject
takes one code path with the same checks (:func:`check_review`: a named reviewer, a note of at most
:data:`MAX_NOTE_CHARS` characters). A character kept for review (its video showed a face) is
approved or rejected the same way (:func:`gateway.character_store.review_character`). For a
withheld video it moves the files out of quarantine
(approve) and then, in **one transaction**, records the release, marks the job completed (or,
on reject, marks the review rejected) and records the review, so no crash can leave a release
without its review or a reviewed job without its record. The video object shows the outcome
as ``moderation.review`` (see :func:`review_view`)::

    "review": "pending" | "approved" | "rejected" | null,   # null: the video was not withheld
    "reviewer": "alice" | null, "reviewed_at": 1767225600 | null, "review_note": "..." | null

A withheld video is ``failed`` (``error.code`` ``output_moderation`` or ``prompt_review``) while
its review is pending or after a rejection, and becomes ``completed`` when a reviewer approves
it; each outcome also sends a webhook (``video.completed`` / ``video.failed``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from audit.errors import InvalidRecord
from audit.log import AuditLog
from audit.records import ENDED_BY_OWNER
from config.settings import Settings, database_fields
from gateway.jobs import (
    EndedByOwner,
    JobNotFound,
    JobStore,
    NotWithheld,
    VideoJob,
    move_to_released,
    read_job,
)
from storage import Tx
from storage.objects import ObjectStore

Verdict = Literal["approve", "reject"]
CHARACTER_PREFIX = "char_"
"""Ids of characters (:mod:`gateway.character_store`), reviewed through the same path."""

MAX_NOTE_CHARS = 4000
"""Longest review note kept (the note is evidence, not an essay)."""


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """What a review did: the job it concerned (if any), and whether it released a video."""

    ref: str
    verdict: Verdict
    reviewer: str
    job_id: str | None
    withheld: bool
    released: bool

    @property
    def message(self) -> str:
        """One line for a person: what was recorded, and what became of the video."""
        done = f"Recorded {self.verdict} of {self.ref} by {self.reviewer}."
        if self.released and (self.job_id or "").startswith(CHARACTER_PREFIX):
            done += f" Character {self.job_id} approved: it can be used now."
        elif self.released:
            done += f" Video {self.job_id} released."
        elif self.verdict == "approve" and not self.withheld and self.job_id is not None:
            done += " (The video was not withheld, so nothing was released.)"
        return done


def check_review(reviewer: str, verdict: str, note: str) -> None:
    """Raise :class:`~audit.errors.InvalidRecord` for a review that is not taken: a verdict
    other than approve/reject, no reviewer, no note, or a note over :data:`MAX_NOTE_CHARS`."""
    if verdict not in ("approve", "reject"):
        raise InvalidRecord(f"review verdict {verdict!r} is not one of approve, reject")
    if not reviewer.strip():
        raise InvalidRecord("the reviewer must be named (who reviews)")
    if not note.strip():
        raise InvalidRecord("a review needs a note saying why (it is kept in the audit log)")
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidRecord(f"the note is {len(note)} characters; keep it to {MAX_NOTE_CHARS}")


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


def apply_review(
    audit: AuditLog,
    data_dir: Path | ObjectStore,
    ref: str,
    reviewer: str,
    verdict: Verdict,
    note: str,
) -> ReviewOutcome:
    """Record ``reviewer``'s review of a request or video job (``ref`` is either id).

    When ``ref`` is (or belongs to) a video the frame audit withheld, approving releases it and
    rejecting marks it rejected, each in the review's own transaction. Raises
    :class:`~audit.errors.InvalidRecord` for a review :func:`check_review` refuses,
    :class:`~audit.errors.UnknownRecord` for an unknown id, and the job system's errors
    (:class:`~gateway.jobs.JobNotFound` when approving a video the job store does not hold,
    :class:`~gateway.jobs.EndedByOwner` for a video or character its owner deleted or
    cancelled, :class:`~gateway.jobs.NotWithheld`, :class:`~gateway.jobs.MissingVideoFile`):
    then nothing was recorded.
    """
    check_review(reviewer, verdict, note)
    story = audit.story(ref)
    JobStore(audit.database)  # its table, even in an audit-only copy of the database
    job_id = (story.request or {}).get("job_id") or (
        story.releases[-1]["job_id"] if story.releases else None
    )
    if story.releases and story.releases[-1]["action"] in ENDED_BY_OWNER:
        raise ended_by_owner(job_id or ref, story.releases[-1])
    withheld = bool(story.releases) and story.releases[-1]["action"] == "withheld"
    if withheld and job_id is not None and job_id.startswith(CHARACTER_PREFIX):
        # A character kept for review: approving it records the consent check and makes it
        # usable; its clip stays in quarantine either way (it is never served).
        from gateway.character_store import review_character

        review_character(audit, job_id, reviewer, verdict, note, review_of=ref)
        released = verdict == "approve"
        return ReviewOutcome(ref, verdict, reviewer, job_id, withheld, released=released)
    if not withheld or job_id is None:
        audit.record_review(ref, reviewer, verdict, note)
        return ReviewOutcome(ref, verdict, reviewer, job_id, withheld, released=False)
    if verdict == "approve":
        release_withheld(audit, data_dir, job_id, reviewer, note, review_of=ref)
        return ReviewOutcome(ref, verdict, reviewer, job_id, withheld, released=True)
    try:
        reject_withheld(audit, job_id, reviewer, note, review_of=ref)
    except JobNotFound:
        # An audit-only copy of the database has no job: the review alone is recorded.
        audit.record_review(ref, reviewer, verdict, note)
    return ReviewOutcome(ref, verdict, reviewer, job_id, withheld, released=False)


def ended_by_owner(job_id: str, release: dict[str, Any]) -> EndedByOwner:
    """The error for a review of ``job_id``, which its owner deleted or cancelled
    (``release``: that release record)."""
    what = "character" if job_id.startswith(CHARACTER_PREFIX) else "video"
    return EndedByOwner(
        f"{what} {job_id} was {release['action']} by {release['actor']}, so nothing is left "
        "to review (its audit trail stays)"
    )


def _withheld(tx: Tx, job_id: str, what: str) -> VideoJob:
    job = read_job(tx, job_id)
    if job.deleted_at is not None:  # deleted by its owner since the review began
        raise EndedByOwner(
            f"video {job_id} was deleted by its owner, so nothing is left to review (its "
            "audit trail stays)"
        )
    if job.release != "withheld" or job.status != "failed":
        raise NotWithheld(
            f"video {job_id} is {job.status} (release: {job.release or 'none'}); only a withheld "
            f"video (failed with output_moderation) can be {what}"
        )
    return job


def release_withheld(
    audit: AuditLog,
    data_dir: Path | ObjectStore,
    job_id: str,
    actor: str,
    note: str,
    *,
    review_of: str | None = None,
) -> VideoJob:
    """Release a video the frame audit withheld, after a human review, and send
    ``video.completed``.

    Moves the files from quarantine to released (renames; a repeat finds them moved), then in
    one transaction checks the job is still withheld, records the release (``actor``, ``note``),
    marks the job completed and, with ``review_of``, records the review of that id. Raises
    :class:`~gateway.jobs.JobNotFound` or :class:`~gateway.jobs.NotWithheld` (nothing recorded;
    a file already moved is not served, since only a completed job's video is).
    """
    with audit.transaction() as tx:  # check first, so a refused release moves no file
        job = _withheld(tx, job_id, "released")
    target = move_to_released(data_dir, job)
    now = time.time()
    with audit.transaction() as tx:
        job = _withheld(tx, job_id, "released")
        audit.record_release(
            job_id=job.id,
            tenant=job.tenant,
            action="released",
            path=target,
            reason=f"released after review: {note}",
            actor=actor,
        )
        frame = dict(job.frame_moderation or {})
        frame["reviewed"] = {"actor": actor, "note": note, "released_at": int(now)}
        tx.execute(
            """UPDATE video_jobs SET status = 'completed', release = 'released', progress = 100,
               error_code = NULL, error_message = NULL, completed_at = ?, updated_at = ?,
               frame_moderation = ? WHERE id = ?""",
            (now, now, json.dumps(frame), job_id),
        )
        if review_of is not None:
            audit.record_review(review_of, actor, "approve", note)
        job = read_job(tx, job_id)
    _notify(audit, job)
    return job


def reject_withheld(
    audit: AuditLog, job_id: str, actor: str, note: str, *, review_of: str | None = None
) -> VideoJob:
    """Mark a withheld video's review as rejected (it stays withheld, its files in quarantine
    as evidence), with the review of ``review_of`` recorded in the same transaction, and send
    ``video.failed`` again so a waiting client learns the outcome.

    Raises :class:`~gateway.jobs.JobNotFound` or :class:`~gateway.jobs.NotWithheld`.
    """
    now = time.time()
    with audit.transaction() as tx:
        job = _withheld(tx, job_id, "rejected")
        frame = dict(job.frame_moderation or {})
        frame["review_rejected"] = {"actor": actor, "note": note, "at": int(now)}
        message = (job.error_message or "withheld").split("; rejected on review by ")[0]
        tx.execute(
            """UPDATE video_jobs SET frame_moderation = ?, error_message = ?, updated_at = ?
               WHERE id = ? AND release = 'withheld'""",
            (json.dumps(frame), f"{message}; rejected on review by {actor}", now, job_id),
        )
        if review_of is not None:
            audit.record_review(review_of, actor, "reject", note)
        job = read_job(tx, job_id)
    _notify(audit, job)
    return job


def _notify(audit: AuditLog, job: VideoJob) -> None:
    """Queue the job's webhook event in its database (webhook settings from the environment)."""
    from gateway.webhooks import enqueue_event

    target = audit.path if audit.path is not None else audit.database.url
    enqueue_event(Settings(**database_fields(target)), job, database=audit.database)
