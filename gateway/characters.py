"""``POST /v1/videos/characters`` and ``GET /v1/videos/characters/{id}``: OpenAI's
``client.videos.create_character(name=, video=)`` and ``get_character(id)``, moderated; the
``characters: [{"id": ...}]`` member of ``POST /v1/videos`` that features one; and
``DELETE /v1/videos/characters/{id}`` (ReelGuard's: the SDK has no method for it, so
``client.delete("/videos/characters/ID", cast_to=object)``), which removes the character's
clip and upload and keeps its consent trail.

The SDK sends multipart/form-data: ``name`` and a ``video`` file part (MP4, MOV or WebM). The
name is moderated like a prompt (400 ``prompt-blocked``, ``param: "name"``); the video goes
through the policy's ``input`` stage like an uploaded video to extend (413, 415, 400
``invalid-video``, 400 ``input-blocked``). A character whose video shows a face (or whose name
or video the policy sends to review) is kept with ``status: "pending_review"`` until a reviewer
approves it (``reelguard audit review CHARACTER_ID --approve``, or the review console): consent
cannot be checked automatically. The object::

    {"id": "char_...", "object": "video.character", "name": ..., "created_at": ...,
     "status": "ready" | "pending_review" | "rejected" | "deleted",
     "moderation": {"input": {...}},
     "consent": {"uploaded_by": "tenant:acme key:key_...", "uploaded_at": ...,
                 "reviewer": ..., "reviewed_at": ..., "review_note": ...,
                 "deleted_by": ..., "deleted_at": ...}}

Using a character (``POST /v1/videos`` with JSON ``"characters": [{"id": "char_..."}]``, one
per video) starts the video from the character's clip; another tenant's or an unknown character
is a 404, one that is not approved (or was rejected) a 409 ``character-not-approved``, one sent
with an ``input_reference`` a 422. Tenant isolation as for videos: 404 across tenants.

A deleted character keeps ``status: "deleted"`` (``GET`` still shows its consent record, with
who deleted it and when); using it is a 404. Videos made with it before stay as they are (they
hold their own start frame).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import replace
from functools import partial
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath

from config.settings import Settings
from gateway.auth import TENANT_DEPENDENCY, actor_of, require_api_key
from gateway.character_store import (
    PREFIX,
    Character,
    CharacterNotUsable,
    CharacterStore,
    delete_character,
    remove_files,
    store_clip,
)
from gateway.inputs import Upload, read_upload
from gateway.jobs import JobNotFound
from gateway.pipeline import moderation_record
from gateway.problems import FieldError, Problem
from gateway.video_admit import (
    STORAGE_ERRORS,
    blocked_response,
    input_blocked_response,
    input_classifiers,
    record_prompt,
    unavailable,
)
from gateway.video_inputs import VIDEO_FIELD, check_video_input, decode_video_upload
from gateway.video_requests import read_body
from storage import StorageError
from storage.objects import object_store

MAX_NAME_CHARS = 80
log = logging.getLogger("reelguard.characters")


def _store(state: State) -> CharacterStore:
    store: CharacterStore | None = state.get("characters")
    if store is None:
        store = CharacterStore(state.jobs.database)
        state.characters = store
    return store


class CharacterController(Controller):
    """Characters: create (moderated, consent kept for review) and retrieve."""

    path = "/v1/videos/characters"
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads these as class attributes
    dependencies = TENANT_DEPENDENCY
    tags = ["videos"]  # noqa: RUF012

    @post("/", summary="Create a character (OpenAI-compatible)", description=__doc__)
    async def create(
        self, request: Request[Any, Any, State], tenant: NamedDependency[str]
    ) -> Response[Any]:
        """Check the name and the video; keep the character (for review if it shows a face)."""
        raw = await read_body(request)
        part = raw.get(VIDEO_FIELD)
        if isinstance(part, UploadFile):
            raw[VIDEO_FIELD] = await read_upload(part, request.app.state.settings, VIDEO_FIELD)
        return await anyio.to_thread.run_sync(partial(_create, request, tenant, raw))

    @get("/{character_id:str}", sync_to_thread=True, summary="Retrieve a character")
    def retrieve(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        character_id: FromPath[str],
    ) -> dict[str, Any]:
        """The character, its status (``pending_review`` until approved) and consent record."""
        try:
            return _store(request.app.state).get(character_id, tenant).as_json()
        except JobNotFound:
            raise Problem(404, "not-found", f"No character {character_id!r}.") from None

    @delete(
        "/{character_id:str}", status_code=200, sync_to_thread=True, summary="Delete a character"
    )
    def remove(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        character_id: FromPath[str],
    ) -> dict[str, Any]:
        """Delete the character's clip and upload; it can no longer be used. The row stays
        as ``deleted`` and the audit chain records who deleted it: the consent trail is kept.
        A store that cannot delete now is a 503 (retry: a repeated delete is safe)."""
        state = request.app.state
        actor = actor_of(request, tenant)
        try:
            character = delete_character(state.audit, character_id, tenant, actor)
        except JobNotFound:
            raise Problem(404, "not-found", f"No character {character_id!r}.") from None
        try:
            remove_files(state.audit.database, object_store(state.settings), character)
        except StorageError as exc:
            log.warning("character %s: cannot delete its files now: %s", character_id, exc)
            raise Problem(
                503,
                "unavailable",
                f"Character {character_id} is deleted and can no longer be used, but its files "
                "could not be removed from the store now; repeat the delete shortly (the "
                "workers' sweep also removes them later).",
                headers={"Retry-After": "1"},
            ) from None
        return {"id": character.id, "object": "video.character.deleted", "deleted": True}


def _fields(raw: dict[str, Any]) -> tuple[str, Upload]:
    """``(name, video)``; 422 naming each bad field."""
    fields = dict(raw)
    name, video = fields.pop("name", None), fields.pop(VIDEO_FIELD, None)
    errors = [FieldError(f"#/{k}", "unknown field") for k in sorted(fields)]
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        errors.append(FieldError("#/name", f"required: 1 to {MAX_NAME_CHARS} characters"))
    if not isinstance(video, Upload):
        errors.append(FieldError(f"#/{VIDEO_FIELD}", "required: an MP4, MOV or WebM file part"))
    if errors:
        raise Problem(422, "validation-error", "The character request is not valid.", errors=errors)
    assert isinstance(name, str) and isinstance(video, Upload)
    return name.strip(), video


def _create(request: Request[Any, Any, State], tenant: str, raw: dict[str, Any]) -> Response[Any]:
    state = request.app.state
    settings: Settings = state.settings
    name, video = _fields(raw)
    decoded = decode_video_upload(video, settings)
    request_id, created_at = f"charr-{uuid.uuid4().hex}", time.time()
    outcome = state.moderator.check(name, tenant)
    if outcome.decision.action == "block":
        record_prompt(state, outcome, request_id, created_at, job_id=None)
        return blocked_response(request, outcome, param="name")
    checked = check_video_input(
        decoded,
        state.policies.get(tenant),
        input_classifiers(state),
        tenant=tenant,
        prompt=name,
        timeout_s=settings.input_check_timeout_s,
    )
    if checked.decision.action == "block":
        record_prompt(state, outcome, request_id, created_at, job_id=None, checked=checked)
        return input_blocked_response(request, checked)
    review = "review" in (checked.decision.action, outcome.decision.action)
    character_id = PREFIX + secrets.token_hex(16)
    files = object_store(settings)  # an unreachable store raises: 503 + Retry-After
    clip_key, upload_key = store_clip(files, character_id, decoded.frames, decoded.fps, video.data)
    character = Character(
        id=character_id,
        tenant=tenant,
        name=name,
        created_at=created_at,
        status="pending_review" if review else "ready",
        uploaded_by=actor_of(request, tenant),
        input_moderation=checked.as_json(),
        clip_key=clip_key,
        upload_key=upload_key,
        sha256=decoded.sha256,
        media_type=decoded.media_type,
    )
    try:
        _record(state, character, outcome, request_id, checked)
    except STORAGE_ERRORS as exc:
        for key in (clip_key, upload_key):
            with contextlib.suppress(StorageError):  # never served; only space is lost
                files.delete(key)
        raise unavailable(request_id, exc) from exc
    return Response(character.as_json(), status_code=200, headers={"X-Request-ID": request_id})


def _record(
    state: State, character: Character, outcome: Any, request_id: str, checked: Any
) -> None:
    """The character row and its consent trail commit together, or neither does: the name's
    and the video's decisions (``job_id`` = the character id) and a release record naming who
    uploaded it (``withheld`` until a reviewer approves it, ``released`` when it is ready)."""
    record = moderation_record(
        outcome,
        request_id=request_id,
        created_at=character.created_at,
        endpoint="videos",
        job_id=character.id,
    )
    record = replace(record, input=checked.record())
    pending = character.status == "pending_review"
    reason = f"character {character.name!r} uploaded by {character.uploaded_by}: " + (
        "kept for review (the input stage found a face or sent it to review; consent "
        "cannot be checked automatically), not usable until a reviewer approves it"
        if pending
        else "ready (the input stage allowed it)"
    )
    audit = state.audit
    with audit.transaction() as tx:
        _store(state).insert(tx, character)
        audit.record_moderation(record)
        audit.record_release(
            job_id=character.id,
            tenant=character.tenant,
            action="withheld" if pending else "released",
            path=object_store(state.settings).location(character.upload_key),
            reason=reason,
            actor=character.uploaded_by,
        )


def featured_character(state: State, tenant: str, value: Any) -> Character:
    """The one usable character ``value`` (``[{"id": "char_..."}]``) names: 422 for a bad
    shape, 404 for one the tenant does not have, 409 for one not approved."""
    if (
        not isinstance(value, list)
        or len(value) != 1
        or not isinstance(value[0], dict)
        or set(value[0]) != {"id"}
        or not isinstance(value[0]["id"], str)
    ):
        raise Problem(
            422,
            "validation-error",
            'characters takes one character: [{"id": "char_..."}].',
            errors=[FieldError("#/characters", 'one item: {"id": "char_..."}')],
        )
    character_id = value[0]["id"].strip()
    try:
        return _store(state).usable(character_id, tenant)
    except JobNotFound:
        raise Problem(404, "not-found", f"No character {character_id!r}.") from None
    except CharacterNotUsable as exc:
        raise Problem(409, "character-not-approved", f"{exc}.") from None
