"""What every ``POST`` that makes a video shares: moderate the prompt and the uploaded input,
record the decision, enqueue the job (:func:`admit`), and the 400 a block answers.

The job and its prompt (and input) decision are committed together or not at all; a decision
that cannot be recorded is a 503, and nothing is started.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from typing import Any

from litestar import Request, Response
from litestar.datastructures import State

from audit.errors import AuditError
from classifiers.frame.images import DecodedImage
from classifiers.frame.videos import DecodedVideo
from config.settings import Settings
from gateway.frame_audit import FrameClassifierCache
from gateway.inputs import InputOutcome, check_input, start_image
from gateway.jobs import IdempotencyConflict, JobStore, NewJob, QueueFull, VideoJob
from gateway.metrics import annotate
from gateway.pipeline import moderation_record
from gateway.problems import MEDIA_TYPE, TYPE_PREFIX, Problem
from gateway.source_clips import SourceClip, delete_source, store_source
from gateway.video_inputs import VideoInputOutcome, check_video_input
from gateway.video_objects import video_object
from gateway.video_requests import CreateVideo
from storage import StorageError
from storage.objects import object_store

log = logging.getLogger("reelguard.videos")

POLL_AFTER_MS = "1000"
STORAGE_ERRORS = (OSError, StorageError, AuditError)
"""What a database that cannot be written raises (read-only file or disk, disk full, lock)."""


def prompt_moderation_json(outcome: Any) -> dict[str, Any]:
    """A prompt's :class:`~gateway.pipeline.ModerationOutcome` as stored on the job."""
    return {**outcome.decision.as_json(), "model_versions": dict(outcome.model_versions)}


# -- the blocked-prompt response -------------------------------------------------------------


def blocked_response(
    request: Request[Any, Any, State], outcome: Any, param: str = "prompt"
) -> Response[Any]:
    """400 problem details for a blocked prompt (or character ``name``: ``param``), with an
    OpenAI-shaped ``error`` member."""
    return _blocked(request, param, outcome.decision, prompt_moderation_json(outcome))


def input_blocked_response(
    request: Request[Any, Any, State], checked: InputOutcome | VideoInputOutcome
) -> Response[Any]:
    """400 for a blocked upload (an ``input_reference`` image or a ``video``): the blocked
    prompt's shape, with ``input-blocked`` / ``code: "input_moderation"`` / ``param`` naming
    the field."""
    field = "input_reference" if isinstance(checked, InputOutcome) else checked.field
    return _blocked(request, field, checked.decision, checked.as_json())


def _blocked(
    request: Request[Any, Any, State], param: str, decision: Any, moderation: dict[str, Any]
) -> Response[Any]:
    parts = []
    for r in decision.reasons[:5]:
        quote = next((e.text for e in r.evidence if e.text), None)
        parts.append(f"{r.category} ({r.source}{f': {quote!r}' if quote else ''})")
    what, kind, code = (
        (
            "The prompt" if param == "prompt" else "The character name",
            "prompt-blocked",
            "prompt_moderation",
        )
        if param in ("prompt", "name")
        else (
            "The reference image (input_reference)"
            if param == "input_reference"
            else f"The uploaded video ({param})",
            "input-blocked",
            "input_moderation",
        )
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


def _store(state: State) -> JobStore:
    store: JobStore = state.jobs
    return store


def admit(
    request: Request[Any, Any, State],
    tenant: str,
    spec: CreateVideo,
    key: str | None,
    *,
    image: DecodedImage | None = None,
    start: Any = None,
    remixed_from: str | None = None,
    upload: DecodedVideo | None = None,
    source: SourceClip | None = None,
    character_id: str | None = None,
) -> Response[Any]:
    """Moderate the prompt (and the uploaded image or video), then enqueue: what every
    ``POST`` that makes a video shares (create, remix, extensions, edits).

    ``start`` is the start image at the video's size; ``upload`` an uploaded video to check
    at the input stage; ``source`` the clip an extension or edit conditions on (stored in the
    object store, lossless, before the job row exists); ``character_id`` the approved
    character the video features (its frame is ``start``). A block at any stage creates no
    job.
    """
    state = request.app.state
    settings: Settings = state.settings
    if key is not None and len(key) > 255:
        raise Problem(422, "validation-error", "Idempotency-Key is longer than 255 characters.")
    request_id = f"vidr-{uuid.uuid4().hex}"
    try:
        store = _store(state)
        replay = store.find_idempotent(tenant, key) if key is not None else None
    except STORAGE_ERRORS as exc:
        raise unavailable(request_id, exc) from exc
    if replay is not None:
        return replay_response(replay, spec)
    created_at = time.time()
    outcome = state.moderator.check(spec.prompt, tenant)
    annotate(request, request_id=request_id, action=str(outcome.decision.action))
    if outcome.decision.action == "block":
        record_prompt(state, outcome, request_id, created_at, job_id=None)
        return blocked_response(request, outcome)
    checked = _check_upload(state, tenant, spec, image, upload)
    if checked is not None:
        annotate(request, input_action=str(checked.decision.action))
        if checked.decision.action == "block":
            record_prompt(state, outcome, request_id, created_at, job_id=None, checked=checked)
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
        # Stored only now that every check passed: a blocked upload is never kept.
        source_clip=None if source is None else store_source(settings, source),
        character_id=character_id,
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
        _discard_source(settings, new)
        record_prompt(state, outcome, request_id, created_at, job_id=None, checked=checked)
        raise Problem(
            429, "queue-full", str(full), headers={"Retry-After": str(full.retry_after_s)}
        ) from None
    except IdempotencyConflict as conflict:
        _discard_source(settings, new)
        raise Problem(409, "idempotency-conflict", str(conflict)) from None
    except STORAGE_ERRORS as exc:
        _discard_source(settings, new)
        raise unavailable(request_id, exc) from exc
    if not created:
        _discard_source(settings, new)
        return replay_response(job, spec)
    return Response(
        video_object(job),
        status_code=202,
        headers={"X-Request-ID": request_id, "openai-poll-after-ms": POLL_AFTER_MS},
    )


def _discard_source(settings: Settings, new: NewJob) -> None:
    """Delete the source clip stored for a job that was not created (no job will use it)."""
    if new.source_clip is None:
        return
    try:
        delete_source(object_store(settings), new.source_clip)
    except StorageError as exc:  # never served; only space is lost
        log.warning("cannot delete an unused source clip now: %s", exc)


def _check_upload(
    state: State,
    tenant: str,
    spec: CreateVideo,
    image: DecodedImage | None,
    upload: DecodedVideo | None,
) -> InputOutcome | VideoInputOutcome | None:
    """The input stage's result for the uploaded video or image (``None``: no upload)."""
    settings: Settings = state.settings
    if upload is not None:
        return check_video_input(
            upload,
            state.policies.get(tenant),
            input_classifiers(state),
            tenant=tenant,
            prompt=spec.prompt,
            timeout_s=settings.input_check_timeout_s,
        )
    if image is not None:
        return check_input(
            image,
            state.policies.get(tenant),
            input_classifiers(state),
            tenant=tenant,
            prompt=spec.prompt,
            timeout_s=settings.input_check_timeout_s,
        )
    return None


def replay_response(job: VideoJob, spec: CreateVideo) -> Response[Any]:
    """The answer to a replayed Idempotency-Key (409 when it was used for another request)."""
    if job.request_hash != spec.request_hash():
        raise Problem(
            409,
            "idempotency-conflict",
            f"Idempotency-Key {job.idempotency_key!r} was used for a different request; "
            "send a new key for a new video.",
        )
    return Response(video_object(job), status_code=200, headers={"Idempotent-Replayed": "true"})


def input_classifiers(state: State) -> FrameClassifierCache:
    """The web process's frame classifiers for uploaded images (built on first use)."""
    from gateway.frame_audit import load_frame_classifiers

    cache: FrameClassifierCache = state.setdefault(
        "input_classifiers", load_frame_classifiers(state.settings)
    )
    return cache


def record_prompt(
    state: State,
    outcome: Any,
    request_id: str,
    created_at: float,
    *,
    job_id: str | None,
    checked: InputOutcome | VideoInputOutcome | None = None,
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
        raise unavailable(request_id, exc) from exc


def unavailable(request_id: str, exc: BaseException) -> Problem:
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
