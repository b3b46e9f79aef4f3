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
- Another tenant's video is a 404, exactly like a missing one.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from audit.errors import AuditError
from classifiers.frame.images import DecodedImage, fit_to
from config.settings import Settings
from gateway.auth import TENANT_DEPENDENCY, require_api_key
from gateway.downloads import serve_object
from gateway.frame_audit import FrameClassifierCache
from gateway.inputs import InputOutcome, Upload, check_input, decode_upload, start_image
from gateway.jobs import (
    IdempotencyConflict,
    JobNotFound,
    JobStore,
    NewJob,
    QueueFull,
    VideoJob,
    video_key,
)
from gateway.metrics import annotate
from gateway.pipeline import moderation_record
from gateway.problems import MEDIA_TYPE, TYPE_PREFIX, FieldError, Problem
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

POLL_AFTER_MS = "1000"
STORAGE_ERRORS = (OSError, StorageError, AuditError)
"""What a database that cannot be written raises (read-only file or disk, disk full, lock)."""


def prompt_moderation_json(outcome: Any) -> dict[str, Any]:
    """A prompt's :class:`~gateway.pipeline.ModerationOutcome` as stored on the job."""
    return {**outcome.decision.as_json(), "model_versions": dict(outcome.model_versions)}


# -- the blocked-prompt response -------------------------------------------------------------


def blocked_response(request: Request[Any, Any, State], outcome: Any) -> Response[Any]:
    """400 problem details for a blocked prompt, with an OpenAI-shaped ``error`` member."""
    return _blocked(request, "prompt", outcome.decision, prompt_moderation_json(outcome))


def input_blocked_response(
    request: Request[Any, Any, State], checked: InputOutcome
) -> Response[Any]:
    """400 for a blocked ``input_reference`` image: the blocked prompt's shape, with
    ``input-blocked`` / ``code: "input_moderation"`` / ``param: "input_reference"``."""
    return _blocked(request, "input_reference", checked.decision, checked.as_json())


def _blocked(
    request: Request[Any, Any, State], param: str, decision: Any, moderation: dict[str, Any]
) -> Response[Any]:
    parts = []
    for r in decision.reasons[:5]:
        quote = next((e.text for e in r.evidence if e.text), None)
        parts.append(f"{r.category} ({r.source}{f': {quote!r}' if quote else ''})")
    what, kind, code = (
        ("The prompt", "prompt-blocked", "prompt_moderation")
        if param == "prompt"
        else ("The reference image (input_reference)", "input-blocked", "input_moderation")
    )
    detail = (
        f"{what} was blocked by policy {decision.policy_version}: "
        + ("; ".join(parts) or "not allowed")
        + ". No video was created."
    )
    body = {
        "type": TYPE_PREFIX + kind,
        "title": "Bad Request",
        "status": 400,
        "detail": detail,
        "instance": request.url.path,
        "error": {
            "message": detail,
            "type": "invalid_request_error",
            "code": code,
            "param": param,
            "moderation": moderation,
        },
        "moderation": moderation,
    }
    return Response(body, status_code=400, media_type=MEDIA_TYPE)


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
        spec = parse_create(raw, settings)
        upload = raw.get("input_reference")
        image = decode_upload(upload, settings) if isinstance(upload, Upload) else None
        start = None if image is None else fit_to(image.pixels, spec.width, spec.height)
        check_with_backend(state, spec, start)
        return self._admit(request, tenant, spec, key, image=image, start=start)

    def _admit(
        self,
        request: Request[Any, Any, State],
        tenant: str,
        spec: CreateVideo,
        key: str | None,
        *,
        image: DecodedImage | None = None,
        start: Any = None,
        remixed_from: str | None = None,
    ) -> Response[Any]:
        """Moderate the prompt (and the image), then enqueue: the rest of :meth:`create`,
        shared with :meth:`remix`. ``start`` is the start image at the video's size."""
        state = request.app.state
        settings: Settings = state.settings
        if key is not None and len(key) > 255:
            raise Problem(422, "validation-error", "Idempotency-Key is longer than 255 characters.")
        request_id = f"vidr-{uuid.uuid4().hex}"
        try:
            store = _store(state)
            replay = store.find_idempotent(tenant, key) if key is not None else None
        except STORAGE_ERRORS as exc:
            raise _unavailable(request_id, exc) from exc
        if replay is not None:
            return self._replay(replay, spec)
        created_at = time.time()
        outcome = state.moderator.check(spec.prompt, tenant)
        annotate(request, request_id=request_id, action=str(outcome.decision.action))
        if outcome.decision.action == "block":
            _record_prompt(state, outcome, request_id, created_at, job_id=None)
            return blocked_response(request, outcome)
        checked = None
        if image is not None:
            checked = check_input(
                image,
                state.policies.get(tenant),
                _input_classifiers(state),
                tenant=tenant,
                prompt=spec.prompt,
                timeout_s=settings.input_check_timeout_s,
            )
            annotate(request, input_action=str(checked.decision.action))
            if checked.decision.action == "block":
                _record_prompt(state, outcome, request_id, created_at, job_id=None, checked=checked)
                return input_blocked_response(request, checked)
        new = NewJob(
            tenant=tenant,
            model=spec.model,
            prompt=spec.prompt,
            seconds=spec.seconds,
            size=spec.size,
            width=spec.width,
            height=spec.height,
            seed=spec.seed,
            prompt_moderation=prompt_moderation_json(outcome),
            policy_version=outcome.decision.policy_version,
            idempotency_key=key,
            request_hash=spec.request_hash(),
            remixed_from=remixed_from,
            input_moderation=None if checked is None else checked.as_json(),
            input_image=None if start is None else start_image(start, spec.width, spec.height),
        )
        record = moderation_record(
            outcome, request_id=request_id, created_at=created_at, endpoint="videos"
        )
        if checked is not None:
            record = replace(record, input=checked.record())
        try:  # the job and its prompt (and image) record commit together, or neither does
            job, created = store.create(
                new,
                queue_max=settings.video_queue_max,
                workers=max(1, settings.video_workers),
                audit=state.audit,
                prompt_record=record,
            )
        except QueueFull as full:
            _record_prompt(state, outcome, request_id, created_at, job_id=None, checked=checked)
            raise Problem(
                429, "queue-full", str(full), headers={"Retry-After": str(full.retry_after_s)}
            ) from None
        except IdempotencyConflict as conflict:
            raise Problem(409, "idempotency-conflict", str(conflict)) from None
        except STORAGE_ERRORS as exc:
            raise _unavailable(request_id, exc) from exc
        if not created:
            return self._replay(job, spec)
        return Response(
            video_object(job),
            status_code=202,
            headers={"X-Request-ID": request_id, "openai-poll-after-ms": POLL_AFTER_MS},
        )

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
        return self._admit(request, tenant, spec, key, start=start, remixed_from=source.id)

    @staticmethod
    def _replay(job: VideoJob, spec: CreateVideo) -> Response[Any]:
        if job.request_hash != spec.request_hash():
            raise Problem(
                409,
                "idempotency-conflict",
                f"Idempotency-Key {job.idempotency_key!r} was used for a different request; "
                "send a new key for a new video.",
            )
        return Response(video_object(job), status_code=200, headers={"Idempotent-Replayed": "true"})

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
        from gateway.auth import authenticate
        from gateway.cancel import cancel

        state = request.app.state
        actor = f"tenant:{tenant} key:{authenticate(request).key_id}"
        try:
            job = cancel(state.audit, video_id, tenant, actor)
        except JobNotFound:
            raise Problem(404, "not-found", f"No video {video_id!r}.") from None
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


def _input_classifiers(state: State) -> FrameClassifierCache:
    """The web process's frame classifiers for uploaded images (built on first use)."""
    from gateway.frame_audit import load_frame_classifiers

    cache: FrameClassifierCache = state.setdefault(
        "input_classifiers", load_frame_classifiers(state.settings)
    )
    return cache


def _record_prompt(
    state: State,
    outcome: Any,
    request_id: str,
    created_at: float,
    *,
    job_id: str | None,
    checked: InputOutcome | None = None,
) -> None:
    """Write a prompt decision (with the image's, if any) that creates no job (blocked, or the
    queue was full) to the audit log, or raise a 503 problem: a decision that is not recorded
    is not returned."""
    record = moderation_record(
        outcome, request_id=request_id, created_at=created_at, endpoint="videos", job_id=job_id
    )
    if checked is not None:
        record = replace(record, input=checked.record())
    try:
        state.audit.record_moderation(record)
    except STORAGE_ERRORS as exc:
        raise _unavailable(request_id, exc) from exc


def _unavailable(request_id: str, exc: BaseException) -> Problem:
    """The 503 for a database that cannot be written (read-only, full, gone): nothing was
    started and nothing is lost; the client retries."""
    log.error("database write failed for %s: %s", request_id, exc)
    return Problem(
        503,
        "audit-unavailable",
        "The database cannot be written (the prompt decision could not be recorded), so no "
        "video was started; retry shortly.",
        headers={"Retry-After": "1"},
    )
