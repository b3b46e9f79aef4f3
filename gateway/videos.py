"""``/v1/videos``: OpenAI's Videos API (create, remix, retrieve, list, download, delete) with
moderation.

The official ``openai`` SDK works against it (``client.videos.create/remix/retrieve/list/
download_content/delete``). ReelGuard adds a ``moderation`` member to the video object::

    "moderation": {
        "action": "allow" | "review" | "block" | "pending",   # the final decision so far
        "policy_version": "3f1c...",
        "prompt": {"action", "policy_version", "reasons": [...], "model_versions"},
        "input": {"action", "reasons", "model_versions", "upload": {sha256, ...}} | null,
        "frames": {"action", "reasons": [{..., "evidence": [{"frame_index", "timestamp_s"}]}],
                   "sampled_frames", "model_versions"} | null,          # null until audited
        "release": "released" | "withheld" | null,
        "review": "pending" | "approved" | "rejected" | null,   # null: not withheld
        "reviewer": ..., "reviewed_at": ..., "review_note": ...   # null until reviewed
    }

Responses and errors (problem details, ``application/problem+json``):

- ``POST /v1/videos`` (JSON or multipart: ``prompt``, ``model``, ``seconds``, ``size``, plus
  ReelGuard's optional ``seed``) answers 202 with a queued video (200 with the same video when
  an ``Idempotency-Key`` is replayed; 409 if that key was used for a different request).
  A blocked prompt creates no job: 400 ``prompt-blocked`` whose ``error`` member has OpenAI's
  shape (``code: "prompt_moderation"``, so the SDK raises ``BadRequestError`` with
  ``e.code == "prompt_moderation"``) and whose ``moderation`` member lists the reasons
  (category, evidence, policy version). A full queue answers 429 with ``Retry-After``.
  A prompt the policy sends to *review* is generated but its video is withheld for a reviewer.
  Multipart only: ``input_reference``, an image (PNG, JPEG, WebP) the video starts from, checked
  by the policy's ``input`` stage before any job (:mod:`gateway.inputs`): 413
  ``upload-too-large``, 415 ``unsupported-media-type``, 400 ``invalid-image`` (bomb,
  undecodable), 400 ``unsupported-input`` (the backend cannot use it), 400 ``input-blocked``
  (``code: "input_moderation"``, the blocked prompt's shape); a review withholds the video.
  ``moderation.input`` shows the decision.
- ``POST /v1/videos/{id}/remix`` (``{"prompt"}``): a new video from a released one of the same
  tenant (404 across tenants, 409 ``source-not-released``), the prompt moderated as any, the
  output audited in full; ``remixed_from_video_id`` names the source.
- ``GET /v1/videos/{id}/content`` serves the MP4 (``?variant=thumbnail``: the JPEG poster) only
  when the video is ``completed`` (the frame audit released it): 409 ``not-ready`` before,
  403 ``content-withheld`` for a video the output moderation withheld (``failed`` with
  ``error.code == "output_moderation"``), 409 ``video-failed`` for other failures. The file
  comes from the object store (:func:`gateway.downloads.serve_object`): a local file, a stream
  from S3, or with ``REELGUARD_S3_PRESIGNED_DOWNLOADS`` a 307 to a presigned URL; a store that
  cannot be reached is a 503 ``unavailable`` with ``Retry-After``. ``Range: bytes=...`` gets
  206 Partial Content (a bad or unsatisfiable range: 416), so players can seek.
- ``POST /v1/videos`` with JSON ``"characters": [{"id": "char_..."}]`` features an approved
  character (:mod:`gateway.characters`): 404 for another tenant's, 409
  ``character-not-approved`` while it awaits review.
- Another tenant's video is a 404, exactly like a missing one.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from classifiers.frame.images import fit_to
from config.settings import Settings
from gateway.auth import TENANT_DEPENDENCY, require_api_key
from gateway.downloads import serve_object
from gateway.inputs import Upload, decode_upload
from gateway.jobs import (
    JobNotFound,
    JobStore,
    VideoJob,
    video_key,
)
from gateway.problems import FieldError, Problem
from gateway.video_admit import POLL_AFTER_MS, admit
from gateway.video_objects import (
    VideoDeleted,
    VideoList,
    VideoObject,
    video_object,
)
from gateway.video_requests import CreateVideo, check_with_backend, parse_create, read_body
from storage import StorageError
from storage.objects import ObjectMissing, object_store

log = logging.getLogger("reelguard.videos")

# -- handlers --------------------------------------------------------------------------------


def _store(state: State) -> JobStore:
    store: JobStore = state.jobs
    return store


def _get(state: State, video_id: str, tenant: str) -> VideoJob:
    try:
        return _store(state).get(video_id, tenant)
    except JobNotFound:
        raise Problem(404, "not-found", f"No video {video_id!r}.") from None


class VideoController(Controller):
    """The video generation endpoints (API key required; each tenant sees only its videos)."""

    path = "/v1/videos"
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads these as class attributes
    dependencies = TENANT_DEPENDENCY
    tags = ["videos"]  # noqa: RUF012

    @post("/", summary="Create a video (OpenAI-compatible)", description=__doc__)
    async def create(
        self, request: Request[Any, Any, State], tenant: NamedDependency[str]
    ) -> Response[Any]:
        """Moderate the prompt; if allowed, enqueue a job and answer 202 with the video."""
        raw = await read_body(request)
        key = request.headers.get("idempotency-key")
        return await anyio.to_thread.run_sync(
            partial(self._create, request, tenant, raw, key.strip() if key else None)
        )

    def _create(
        self,
        request: Request[Any, Any, State],
        tenant: str,
        raw: dict[str, Any],
        key: str | None,
    ) -> Response[Any]:
        state = request.app.state
        settings: Settings = state.settings
        characters = raw.pop("characters", None)
        spec = parse_create(raw, settings)
        upload = raw.get("input_reference")
        if characters is not None:
            return self._featuring(request, tenant, spec, characters, upload, key)
        image = decode_upload(upload, settings) if isinstance(upload, Upload) else None
        start = None if image is None else fit_to(image.pixels, spec.width, spec.height)
        check_with_backend(state, spec, start)
        return admit(request, tenant, spec, key, image=image, start=start)

    def _featuring(
        self,
        request: Request[Any, Any, State],
        tenant: str,
        spec: CreateVideo,
        characters: Any,
        upload: Any,
        key: str | None,
    ) -> Response[Any]:
        """A video featuring an approved character: it starts from the character's clip."""
        from gateway.character_store import first_frame
        from gateway.characters import featured_character

        state = request.app.state
        if upload is not None:
            raise Problem(
                422,
                "validation-error",
                "A character and an input_reference both set how the video starts; send one.",
                errors=[FieldError("#/input_reference", "not with characters")],
            )
        character = featured_character(state, tenant, characters)
        spec = replace_spec(spec, character=character.id)
        start = fit_to(
            first_frame(object_store(state.settings), character), spec.width, spec.height
        )
        check_with_backend(state, spec, start)
        return admit(request, tenant, spec, key, start=start, character_id=character.id)

    @post(
        "/{video_id:str}/remix",
        summary="Remix a released video with a new prompt (OpenAI-compatible)",
    )
    async def remix(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        video_id: FromPath[str],
    ) -> Response[Any]:
        """A new video from a new prompt, starting from a released video of the same tenant.

        The source must be ``completed`` and released (404 for another tenant's or a deleted
        video; 409 ``source-not-released`` otherwise). The new prompt is moderated like any
        prompt; the new job takes the source's model, length, size and seed, starts from the
        source's first frame, and its video is frame-audited in full.
        """
        raw = await read_body(request)
        key = request.headers.get("idempotency-key")
        return await anyio.to_thread.run_sync(
            partial(self._remix, request, tenant, video_id, raw, key.strip() if key else None)
        )

    def _remix(
        self,
        request: Request[Any, Any, State],
        tenant: str,
        video_id: str,
        raw: dict[str, Any],
        key: str | None,
    ) -> Response[Any]:
        state = request.app.state
        settings: Settings = state.settings
        unknown = sorted(set(raw) - {"prompt"})
        if unknown:
            raise Problem(
                422,
                "validation-error",
                "A remix takes only a new prompt; the source video sets the rest.",
                errors=[FieldError(f"#/{k}", "unknown field") for k in unknown],
            )
        source = _get(state, video_id, tenant)
        if source.status != "completed" or source.release != "released":
            raise Problem(
                409,
                "source-not-released",
                f"Video {source.id} is {source.status} and not released "
                f"({source.release or 'not decided'}); only a completed, released video can be "
                "remixed.",
            )
        made = (source.frame_moderation or {}).get("generator") or {}
        seed = source.seed if source.seed is not None else made.get("seed")
        fields = {
            "prompt": raw.get("prompt"),
            "model": source.model,
            "seconds": source.seconds,
            "size": source.size,
            "seed": seed,
        }
        spec = replace_spec(parse_create(fields, settings), remix_of=source.id)
        first = _first_frame(state, source)
        start = fit_to(first, spec.width, spec.height)
        check_with_backend(state, spec, start)
        return admit(request, tenant, spec, key, start=start, remixed_from=source.id)

    @get("/", sync_to_thread=True, summary="List videos")
    def list_videos(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        after: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        order: FromQuery[Literal["asc", "desc"]] = "desc",
    ) -> VideoList:
        """The tenant's videos, newest first (``order=asc``: oldest first), ``limit`` per page."""
        try:
            page = _store(request.app.state).list(tenant, after=after, limit=limit, order=order)
        except JobNotFound:
            raise Problem(404, "not-found", f"No video {after!r} to list after.") from None
        data = [video_object(j) for j in page.jobs]
        return VideoList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=page.has_more,
        )

    @get("/{video_id:str}", sync_to_thread=True, summary="Retrieve a video")
    def retrieve(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        video_id: FromPath[str],
    ) -> Response[VideoObject]:
        """The video's status, progress, error and moderation."""
        job = _get(request.app.state, video_id, tenant)
        headers = (
            {"openai-poll-after-ms": POLL_AFTER_MS}
            if job.status in ("queued", "in_progress")
            else {}
        )
        return Response(video_object(job), headers=headers)

    @get("/{video_id:str}/content", sync_to_thread=True, summary="Download a released video")
    def content(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        video_id: FromPath[str],
        variant: FromQuery[str] = "video",
    ) -> Response[Any]:
        """The MP4 (or ``variant=thumbnail``: a JPEG), only after the frame audit released it."""
        state = request.app.state
        job = _get(state, video_id, tenant)
        if variant not in ("video", "thumbnail"):
            raise Problem(
                422,
                "validation-error",
                f"variant {variant!r} is not available; use 'video' or 'thumbnail'.",
                errors=[FieldError("#/variant", "one of: video, thumbnail")],
            )
        _check_servable(job)
        name = job.file_name if variant == "video" else job.thumbnail_name
        media_type = "video/mp4" if variant == "video" else "image/jpeg"
        return serve_object(
            state.settings,
            video_key("released", name),
            media_type,
            gone=f"The {variant} of video {video_id} is gone.",
            range_header=request.headers.get("range"),
        )

    @delete("/{video_id:str}", status_code=200, sync_to_thread=True, summary="Delete a video")
    def remove(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        video_id: FromPath[str],
    ) -> VideoDeleted:
        """Cancel a queued or running video, or delete a finished one's released files.

        A cancellation wins every race with the worker (:mod:`gateway.cancel`): a running video
        is never released after this answers, and the audit log records who cancelled and when.
        A withheld video's files stay in quarantine (they are review and audit evidence).
        """
        from gateway.auth import actor_of
        from gateway.cancel import cancel

        state = request.app.state
        actor = actor_of(request, tenant)
        try:
            job = cancel(state.audit, video_id, tenant, actor)
        except JobNotFound:
            raise Problem(404, "not-found", f"No video {video_id!r}.") from None
        if job.status == "queued" and job.source_clip is not None:
            from gateway.source_clips import drop_ended_sources

            try:  # it will never run: its clip goes now (else the next worker sweep takes it)
                drop_ended_sources(_store(state).database, object_store(state.settings))
            except StorageError as exc:
                log.warning("video %s: cannot delete its source clip now: %s", job.id, exc)
        if job.release == "released":
            files = object_store(state.settings)
            for name in (job.file_name, job.thumbnail_name):
                try:
                    files.delete(video_key("released", name))
                except StorageError as exc:  # deleted jobs are never served; only space is lost
                    log.warning("video %s: cannot delete %s now: %s", job.id, name, exc)
        return VideoDeleted(id=job.id, deleted=True)


def _check_servable(job: VideoJob) -> None:
    """Raise the problem that explains why this video's content cannot be served (yet)."""
    if job.status == "completed" and job.release == "released":
        return
    if job.release == "withheld" or job.error_code == "output_moderation":
        raise Problem(
            403,
            "content-withheld",
            f"Video {job.id} is withheld and not served: {job.error_message or 'not allowed'}",
        )
    if job.status == "failed":
        raise Problem(
            409, "video-failed", f"Video {job.id} failed ({job.error_code}): {job.error_message}"
        )
    raise Problem(
        409,
        "not-ready",
        f"Video {job.id} is {job.status} ({job.progress} %); its content is available once its "
        "status is completed.",
    )


def replace_spec(spec: CreateVideo, **changes: Any) -> CreateVideo:
    """``spec`` with ``changes`` (a frozen struct)."""
    return msgspec.structs.replace(spec, **changes)


def _first_frame(state: State, source: VideoJob) -> Any:
    """A released video's first frame (its poster, written from frame 0 and released with the
    MP4), as RGB pixels; 409 when the released files are gone."""
    from classifiers.frame.images import ImageRejected, decode_image

    files = object_store(state.settings)  # an unreachable store raises: 503 + Retry-After
    try:
        data = files.get_bytes(video_key("released", source.thumbnail_name))
        return decode_image(data, max_pixels=state.settings.max_upload_pixels).pixels
    except (ObjectMissing, OSError, ImageRejected) as exc:
        log.error("remix source %s: first frame unreadable: %s", source.id, exc)
        raise Problem(
            409,
            "source-not-released",
            f"Video {source.id}'s released files cannot be read, so it cannot be remixed.",
        ) from None
