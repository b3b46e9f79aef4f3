"""The video object the API answers (OpenAI's ``Video`` shape) and its ReelGuard members:
``moderation`` (decisions and the review's state) and ``generation`` (what the generator made of
the prompt), built from a :class:`~gateway.jobs.VideoJob`."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gateway.jobs import VideoJob


class VideoError(msgspec.Struct):
    """Why a video failed (OpenAI's shape)."""

    code: str
    message: str


class VideoObject(msgspec.Struct):
    """OpenAI's video object plus ReelGuard's ``moderation``."""

    id: str
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str
    seconds: str
    size: str
    error: VideoError | None
    remixed_from_video_id: str | None
    moderation: dict[str, Any]
    generation: dict[str, Any] | None
    source: dict[str, Any] | None = None
    """ReelGuard: what an extension or edit started from (``mode``, ``video_id`` or the
    upload's ``sha256``, ``seconds``); ``None`` otherwise."""
    object: Literal["video"] = "video"


class VideoList(msgspec.Struct):
    """A page of videos (the cursor page the SDK's ``videos.list`` iterates)."""

    data: list[VideoObject]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: Literal["list"] = "list"


class VideoDeleted(msgspec.Struct):
    """``DELETE /v1/videos/{id}``'s answer."""

    id: str
    deleted: bool
    object: Literal["video.deleted"] = "video.deleted"


def moderation_view(job: VideoJob) -> dict[str, Any]:
    """The ``moderation`` member of a video object."""
    frames = job.frame_moderation
    if frames is None:
        action = "pending"
    else:
        action = frames.get("final_action", frames.get("action", "block"))
    frame_view = None
    if frames is not None:
        frame_view = {
            "action": frames.get("action"),
            "policy_version": frames.get("policy_version"),
            "reasons": frames.get("reasons", []),
            "sampled_frames": frames.get("sampled_frames"),
            "model_versions": frames.get("model_versions", {}),
        }
        if "reviewed" in frames:
            frame_view["reviewed"] = frames["reviewed"]
    from gateway.review import review_view

    return {
        "action": action,
        "policy_version": job.policy_version,
        "prompt": job.prompt_moderation,
        "input": job.input_moderation,
        "frames": frame_view,
        "release": job.release,
        **review_view(job),
    }


def video_object(job: VideoJob) -> VideoObject:
    """A job as OpenAI's video object."""
    error = None
    if job.status == "failed":
        error = VideoError(code=job.error_code or "failed", message=job.error_message or "")
    return VideoObject(
        id=job.id,
        model=job.model,
        status=job.status,
        progress=job.progress,
        created_at=int(job.created_at),
        completed_at=int(job.completed_at) if job.completed_at else None,
        expires_at=None,
        prompt=job.prompt,
        seconds=job.seconds,
        size=job.size,
        error=error,
        remixed_from_video_id=job.remixed_from,
        moderation=moderation_view(job),
        generation=generation_view(job),
        source=source_view(job),
    )


def source_view(job: VideoJob) -> dict[str, Any] | None:
    """The ``source`` member: an extension's or edit's source, without storage details."""
    clip = job.source_clip
    if clip is None:
        return None
    keep = ("mode", "video_id", "sha256", "media_type", "frames", "fps", "seconds")
    return {k: clip[k] for k in keep if clip.get(k) is not None}


def generation_view(job: VideoJob) -> dict[str, Any] | None:
    """The ``generation`` member: what the generator made of the prompt (null until generated).

    ``understood``/``ignored`` are the prompt words the model used and those it could not (both
    empty when the backend cannot tell, e.g. a large text encoder or a remote upstream).
    """
    made = (job.frame_moderation or {}).get("generator")
    if not made:
        return None
    return {
        "backend": made.get("backend"),
        "model_id": made.get("model_id"),
        "seed": made.get("seed"),
        "fps": made.get("fps"),
        "frames": made.get("frames"),
        "understood": made.get("understood", []),
        "ignored": made.get("ignored", []),
    }
