"""The one review implementation (:func:`apply_review`), used by the reviewer CLI and the review
console alike, and the one way it releases a withheld video: through the job system's release path.

The job system (``gateway.review.approve_withheld`` over ``gateway.jobs.release_withheld``)
moves the file out of quarantine, records the release in the audit log and marks the job
completed; the audit package never moves video files itself, so there is a single release path
to trust. A rejection is marked on the job too (``gateway.review.reject_withheld``), so the video
object tells "rejected" from "pending".
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import InvalidRecord, ReleaseFailed, UnknownRecord
from audit.records import REVIEW_VERDICTS

if TYPE_CHECKING:
    from audit.log import AuditLog

MAX_NOTE_CHARS = 4000
"""Longest review note kept (the note is evidence, not an essay)."""


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """What :func:`apply_review` did: the review is recorded; ``released`` names the video it
    released (an approval of a withheld video), ``was_withheld`` says whether a video was
    withheld when the review came in."""

    ref: str
    verdict: str
    reviewer: str
    job_id: str | None
    was_withheld: bool
    released: str | None
    seq: int

    @property
    def message(self) -> str:
        """One line for a person: what was recorded, and what became of the video."""
        done = f"Recorded {self.verdict} of {self.ref} by {self.reviewer}."
        if self.released:
            done += f" Video {self.released} released."
        elif self.verdict == "approve" and not self.was_withheld and self.job_id is not None:
            done += " (The video was not withheld, so nothing was released.)"
        return done


def apply_review(
    log: AuditLog,
    db_path: Path,
    data_dir: Path,
    ref: str,
    verdict: str,
    reviewer: str,
    note: str,
) -> ReviewOutcome:
    """Review a request or video job (``ref`` is either id): approve or reject it.

    Approving a withheld video releases it through the job system (:func:`release_withheld`),
    rejecting one marks it rejected (it stays withheld); then the review itself is recorded in
    the chain with ``reviewer`` and ``note``. Raises :class:`InvalidRecord` for a bad verdict,
    an empty reviewer or note, :class:`UnknownRecord` for an unknown id and
    :class:`ReleaseFailed` when the job system refuses; nothing is recorded then.
    """
    if verdict not in REVIEW_VERDICTS:
        raise InvalidRecord(f"review verdict {verdict!r} is not one of approve, reject")
    if not reviewer.strip():
        raise InvalidRecord("the reviewer must be named (who reviews)")
    if not note.strip():
        raise InvalidRecord("a review needs a note saying why (it is kept in the audit log)")
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidRecord(f"the note is {len(note)} characters; keep it to {MAX_NOTE_CHARS}")
    story = log.story(ref)
    job_id = (story.request or {}).get("job_id") or (
        story.releases[-1]["job_id"] if story.releases else None
    )
    withheld = bool(story.releases) and story.releases[-1]["action"] == "withheld"
    released = None
    if verdict == "approve" and withheld and job_id is not None:
        release_withheld(db_path, data_dir, job_id, reviewer, note)
        released = job_id
    elif verdict == "reject" and withheld and job_id is not None:
        # A database without the job (an audit-only copy): the review alone is recorded.
        with contextlib.suppress(UnknownRecord):
            reject_withheld(db_path, job_id, reviewer, note)
    seq = log.record_review(ref, reviewer, verdict, note)
    return ReviewOutcome(ref, verdict, reviewer, job_id, withheld, released, seq)


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
