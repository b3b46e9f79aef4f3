"""``POST /v1/videos/extensions`` and ``POST /v1/videos/edits``: OpenAI's ``client.videos.
extend(prompt=, seconds=, video=)`` and ``client.videos.edit(prompt=, video=)``, moderated.

The SDK sends multipart/form-data; ``video`` is either a file part (an MP4, MOV or WebM
upload) or a reference, ``video[id]`` (a JSON body ``{"video": {"id": ...}}`` works too).

- A referenced video follows tenant isolation (404 for another tenant's, exactly like a
  missing one) and must be ``completed`` and released (409 ``source-not-released``). It was
  frame-audited when it was released, and the result is audited again in full.
- An uploaded video is checked at the policy's ``input`` stage before any job exists
  (:mod:`gateway.video_inputs`): 413 ``upload-too-large``, 415 ``unsupported-media-type``,
  400 ``invalid-video``, 400 ``input-blocked`` (``code: "input_moderation"``,
  ``param: "video"``); a review withholds the result for a reviewer.
- The prompt is moderated like any prompt (400 ``prompt-blocked``).
- A backend that cannot extend or edit says so with 400 ``unsupported-input`` before a job.

An extension's ``seconds`` is the new part; the video object's ``seconds`` is the stitched
total (the SDK's documented meaning), and the whole result (source frames, seam and new frames)
goes through the frame audit before release. An edit keeps the source's length and size.
ReelGuard's optional ``seed`` (and, for uploads, ``model``) may be sent too.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency

from classifiers.frame.videos import DecodedVideo
from config.settings import Settings
from gateway.auth import TENANT_DEPENDENCY, require_api_key
from gateway.inputs import Upload, read_upload
from gateway.jobs import JobNotFound, JobStore, VideoJob, video_key
from gateway.problems import FieldError, Problem
from gateway.source_clips import SourceClip, SourceMode
from gateway.video_admit import admit
from gateway.video_inputs import VIDEO_FIELD, decode_video_upload
from gateway.video_requests import check_with_backend, parse_create, read_body
from generator.base import Conditioning, resize_frames
from storage.objects import ObjectMissing, object_store

FIELDS: dict[SourceMode, frozenset[str]] = {
    "extend": frozenset({"prompt", "seconds", "video", "seed", "model"}),
    "edit": frozenset({"prompt", "video", "seed", "model"}),
}


class VideoSourceController(Controller):
    """Extensions and edits of a video (API key required; tenant-isolated)."""

    path = "/v1/videos"
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads these as class attributes
    dependencies = TENANT_DEPENDENCY
    tags = ["videos"]  # noqa: RUF012

    @post("/extensions", summary="Extend a video (OpenAI-compatible)", description=__doc__)
    async def extend(
        self, request: Request[Any, Any, State], tenant: NamedDependency[str]
    ) -> Response[Any]:
        """Continue a released video (or an uploaded one) for ``seconds`` more."""
        return await _handle(request, tenant, "extend")

    @post("/edits", summary="Edit a video (OpenAI-compatible)", description=__doc__)
    async def edit(
        self, request: Request[Any, Any, State], tenant: NamedDependency[str]
    ) -> Response[Any]:
        """A new video following a released (or uploaded) one, changed as the prompt says."""
        return await _handle(request, tenant, "edit")


async def _handle(
    request: Request[Any, Any, State], tenant: str, mode: SourceMode
) -> Response[Any]:
    raw = await read_body(request)
    part = raw.get(VIDEO_FIELD)
    if isinstance(part, UploadFile):
        raw[VIDEO_FIELD] = await read_upload(part, request.app.state.settings, VIDEO_FIELD)
    key = request.headers.get("idempotency-key")
    return await anyio.to_thread.run_sync(
        partial(_make, request, tenant, mode, raw, key.strip() if key else None)
    )


def _make(
    request: Request[Any, Any, State],
    tenant: str,
    mode: SourceMode,
    raw: dict[str, Any],
    key: str | None,
) -> Response[Any]:
    state = request.app.state
    settings: Settings = state.settings
    video, fields = _split(raw, mode)
    upload: DecodedVideo | None = None
    if isinstance(video, Upload):
        upload = decode_video_upload(video, settings)
        frames, fps, source_id = upload.frames, upload.fps, None
        model = fields.get("model") or settings.generator_backend
        seed = fields.get("seed")
        height, width = (d - d % 2 for d in frames.shape[1:3])
    else:
        source = _released(state, video, tenant)
        frames, fps = _released_frames(state, source)
        source_id, model, width, height = source.id, source.model, source.width, source.height
        seed = fields.get("seed")
    frames = resize_frames(frames, width, height)
    seconds = len(frames) / fps
    if mode == "extend":
        extra = parse_create({"prompt": "-", "seconds": fields.get("seconds")}, settings).seconds
        seconds += float(extra)
    spec = parse_create(
        {
            "prompt": fields.get("prompt"),
            "model": model,
            "seconds": f"{seconds:.3f}".rstrip("0").rstrip("."),
            "size": f"{width}x{height}",
            "seed": seed,
        },
        settings,
    )
    spec = msgspec.structs.replace(
        spec,
        mode=mode,
        remix_of=source_id,
        input_sha256=None if upload is None else upload.sha256,
    )
    clip = SourceClip(
        mode=mode,
        frames=frames,
        fps=fps,
        video_id=source_id,
        upload=None if upload is None else video.data,  # type: ignore[union-attr]
        sha256=None if upload is None else upload.sha256,
        media_type=None if upload is None else upload.media_type,
    )
    conditioning = (
        Conditioning(keep_frames=frames, fps=fps, source=mode)
        if mode == "extend"
        else Conditioning(start_clip=frames, fps=fps, source=mode)
    )
    check_with_backend(state, spec, conditioning=conditioning)
    return admit(request, tenant, spec, key, upload=upload, source=clip)


def _split(raw: dict[str, Any], mode: SourceMode) -> tuple[Upload | str, dict[str, Any]]:
    """``(the video: an upload or an id, the other fields)``; 422 naming each bad field."""
    fields = dict(raw)
    video: Any = fields.pop(VIDEO_FIELD, None)
    if "video[id]" in fields:
        video = {"id": fields.pop("video[id]")} if video is None else video
    errors = [FieldError(f"#/{k}", "unknown field") for k in sorted(set(fields) - FIELDS[mode])]
    errors += [
        FieldError(f"#/{k}", "sent as a file; send it as a text field")
        for k, v in fields.items()
        if isinstance(v, UploadFile)
    ]
    if isinstance(video, dict) and set(video) == {"id"} and isinstance(video["id"], str):
        ref: Upload | str = video["id"].strip()
    elif isinstance(video, Upload):
        ref = video
    else:
        errors.append(
            FieldError(
                f"#/{VIDEO_FIELD}",
                'required: {"id": "video_..."} of a completed video, or an MP4, MOV or WebM '
                "file part",
            )
        )
    if mode == "extend" and fields.get("seconds") in (None, ""):
        errors.append(FieldError("#/seconds", "required: the length of the new part"))
    if errors:
        what = "extension" if mode == "extend" else "edit"
        raise Problem(
            422, "validation-error", f"The video {what} request is not valid.", errors=errors
        )
    return ref, fields


def _released(state: State, video_id: str, tenant: str) -> VideoJob:
    """The tenant's video ``video_id``, completed and released (404 / 409 otherwise)."""
    store: JobStore = state.jobs
    try:
        source = store.get(video_id, tenant)
    except JobNotFound:
        raise Problem(404, "not-found", f"No video {video_id!r}.") from None
    if source.status != "completed" or source.release != "released":
        raise Problem(
            409,
            "source-not-released",
            f"Video {source.id} is {source.status} and not released "
            f"({source.release or 'not decided'}); only a completed, released video can be "
            "extended or edited.",
        )
    return source


def _released_frames(state: State, source: VideoJob) -> tuple[Any, float]:
    """A released video's frames and fps, decoded from its released MP4 (409 when gone)."""
    from generator.encode import EncodeError, decode_mp4

    files = object_store(state.settings)  # an unreachable store raises: 503 + Retry-After
    try:
        return decode_mp4(files.get_bytes(video_key("released", source.file_name)))
    except (ObjectMissing, OSError, EncodeError):
        raise Problem(
            409,
            "source-not-released",
            f"Video {source.id}'s released file cannot be read, so it cannot be used.",
        ) from None
