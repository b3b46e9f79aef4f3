"""A video job as the queue and the API see it: :class:`VideoJob` (a row of ``video_jobs``,
read with :func:`row_to_job`), :class:`NewJob`, a :class:`Page` of jobs, a worker's
:class:`Lease`, and the queue's errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JobStatus = Literal["queued", "in_progress", "completed", "failed"]
Stage = Literal["queued", "generating", "auditing", "encoding", "recording", "decided", "done"]
Release = Literal["released", "withheld"]


class JobError(Exception):
    """Base class of the job store's errors."""


class QueueFull(JobError):
    """The queue is full; the client should retry after ``retry_after_s`` seconds."""

    def __init__(self, queued: int, queue_max: int, retry_after_s: int) -> None:
        super().__init__(
            f"the video queue is full ({queued} of {queue_max} jobs waiting); "
            f"retry after {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class IdempotencyConflict(JobError):
    """An Idempotency-Key was reused with a different request."""


class JobNotFound(JobError):
    """No such job for this tenant."""


class NotWithheld(JobError):
    """Only a withheld video can be released by a reviewer."""


class EndedByOwner(JobError):
    """A review of a video or character its owner deleted (or cancelled): nothing is left to
    approve or reject (its audit trail stays)."""


class MissingVideoFile(JobError):
    """A job's MP4 is missing from the video folder (moved or deleted by hand?)."""


@dataclass(frozen=True, slots=True)
class VideoJob:
    """One row of ``video_jobs``. JSON columns are decoded into plain dicts."""

    id: str
    tenant: str
    model: str
    prompt: str
    seconds: str
    size: str
    width: int
    height: int
    seed: int | None
    status: JobStatus
    stage: Stage
    progress: int
    created_at: float
    started_at: float | None
    completed_at: float | None
    error_code: str | None
    error_message: str | None
    prompt_moderation: dict[str, Any]
    frame_moderation: dict[str, Any] | None
    policy_version: str
    release: Release | None
    idempotency_key: str | None
    request_hash: str | None
    worker_id: str | None
    lease_expires_at: float | None
    attempts: int
    cancel_requested: bool
    deleted_at: float | None
    timings: dict[str, float] = field(default_factory=dict)
    remixed_from: str | None = None
    """The source video of a remix (same tenant, released when the remix was made)."""
    input_moderation: dict[str, Any] | None = None
    """The input-stage decision on the uploaded reference image (``None``: no upload)."""
    input_image: str | None = None
    """The start image the backend conditions on: base64 PNG at the video's size (an upload
    that passed the input stage, or a remix source's first frame)."""
    source_clip: dict[str, Any] | None = None
    """The video an extension continues or an edit starts from: ``mode`` (``extend`` or
    ``edit``), ``key`` (its frames in the object store, lossless), ``video_id`` (a referenced
    video) or ``sha256`` (an upload), ``frames``, ``fps`` and ``seconds``."""
    character_id: str | None = None
    """The character (``POST /v1/videos/characters``, approved) the video features."""

    @property
    def file_name(self) -> str:
        """The MP4's name inside ``released/`` or ``quarantine/``."""
        return f"{self.id}.mp4"

    @property
    def thumbnail_name(self) -> str:
        """The thumbnail's name, kept next to the MP4 (quarantined with it)."""
        return f"{self.id}.jpg"


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the web process knows when it enqueues a job (prompt already allowed)."""

    tenant: str
    model: str
    prompt: str
    seconds: str
    size: str
    width: int
    height: int
    prompt_moderation: dict[str, Any]
    policy_version: str
    seed: int | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    remixed_from: str | None = None
    input_moderation: dict[str, Any] | None = None
    input_image: str | None = None
    source_clip: dict[str, Any] | None = None
    character_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a tenant's jobs, newest first unless ``order="asc"``."""

    jobs: tuple[VideoJob, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class Lease:
    """A heartbeat's answer: does this worker still own the job, and was it cancelled."""

    owned: bool
    cancel_requested: bool


def row_to_job(row: Mapping[str, Any]) -> VideoJob:
    """A ``video_jobs`` row (as a dict) as a :class:`VideoJob`."""
    frame = row["frame_moderation"]
    return VideoJob(
        id=row["id"],
        tenant=row["tenant"],
        model=row["model"],
        prompt=row["prompt"],
        seconds=row["seconds"],
        size=row["size"],
        width=row["width"],
        height=row["height"],
        seed=row["seed"],
        status=row["status"],
        stage=row["stage"],
        progress=row["progress"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        prompt_moderation=json.loads(row["prompt_moderation"]),
        frame_moderation=json.loads(frame) if frame else None,
        policy_version=row["policy_version"],
        release=row["release"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        worker_id=row["worker_id"],
        lease_expires_at=row["lease_expires_at"],
        attempts=row["attempts"],
        cancel_requested=bool(row["cancel_requested"]),
        deleted_at=row["deleted_at"],
        timings=json.loads(row["timings"]),
        remixed_from=row.get("remixed_from"),
        input_moderation=json.loads(row["input_moderation"])
        if row.get("input_moderation")
        else None,
        input_image=row.get("input_image"),
        source_clip=json.loads(row["source_clip"]) if row.get("source_clip") else None,
        character_id=row.get("character_id"),
    )
