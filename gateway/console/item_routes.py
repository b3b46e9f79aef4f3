"""The review queue and an item's pages: prompt with evidence, frame timeline and thumbnails,
the reference image and the quarantined video (to reviewers of its tenant only), approve or
reject through :func:`gateway.review.apply_review`, and the item's audit history."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from audit import insights
from audit.errors import AuditError, InvalidRecord, UnknownRecord
from audit.evidence import resolve_evidence_key
from audit.records import Story, evidence_text
from classifiers.base import CATEGORIES
from gateway import metrics
from gateway.console.accounts import (
    Session,
)
from gateway.console.common import (
    BASE,
    Console,
    Form,
    check_csrf,
    console,
    form_field,
    render_page,
    require_session,
)
from gateway.console.frames import video_object
from gateway.console.views import (
    AGES,
    STAGES,
    QueueFilter,
    evidence_spans,
    frame_timeline,
    highlight,
    item_state,
    queue_page,
)
from gateway.downloads import serve_object
from gateway.jobs import JobError, JobNotFound
from gateway.problems import Problem
from gateway.review import MAX_NOTE_CHARS, Verdict, apply_review, ended_by_owner
from storage import StorageUnavailable
from storage.objects import ObjectMissing, ObjectStore

log = logging.getLogger("reelguard.console")


def visible_tenants(c: Console, session: Session, state: State) -> list[str]:
    """The tenants this reviewer may see: its own, or (an admin) every tenant with a policy
    or a record."""
    scope = session.reviewer.scope()
    if scope is not None:
        return sorted(scope)
    with c.audit.snapshot() as tx:
        seen = insights.tenants_seen(tx)
    known = set(state.policies.versions()) | set(seen)
    return sorted(known)


def bad_filter(name: str, value: str, allowed: Any) -> Problem:
    """The 400 problem for a filter value that is not one of ``allowed``."""
    return Problem(
        400,
        "bad-request",
        f"The {name} filter {value!r} is not one of: {', '.join(map(str, allowed)) or 'none'}.",
    )


@get("/", sync_to_thread=True)
def queue(
    request: Request[Any, Any, State],
    tenant: FromQuery[str] = "",
    category: FromQuery[str] = "",
    stage: FromQuery[str] = "",
    age: FromQuery[str] = "",
    page: FromQuery[int] = 1,
    reviewed: FromQuery[str] = "",
    verdict: FromQuery[str] = "",
) -> Response[str]:
    """Withheld videos and prompts sent to review, oldest first, with filters and pages."""
    session = require_session(request)
    state = request.app.state
    c = console(state)
    tenants = visible_tenants(c, session, state)
    for name, value, allowed in (
        ("tenant", tenant, tenants),
        ("category", category, CATEGORIES),
        ("stage", stage, STAGES),
        ("age", age, [a for a in AGES if a]),
    ):
        if value and value not in allowed:
            raise bad_filter(name, value, allowed)
    items = [i for i in c.audit.queue(None) if session.reviewer.can_see(i.tenant)]
    with c.audit.snapshot() as tx:
        stages = insights.item_stages(tx, items)
    flt = QueueFilter(tenant, category, stage, age, max(1, page))
    result = queue_page(
        items,
        stages,
        flt,
        tenants=tenants,
        categories=CATEGORIES,
        page_size=c.settings.review_page_size,
    )
    with c.audit.snapshot() as tx:
        excerpts = insights.prompt_excerpts(
            tx, [r.item.request_id for r in result.rows if r.item.request_id]
        )
    notice = None
    if reviewed and verdict in ("approve", "reject"):
        notice = f"{'Approved' if verdict == 'approve' else 'Rejected'} {reviewed}."
    return render_page(
        request,
        "queue.html",
        session=session,
        nav="queue",
        result=result,
        flt=flt,
        excerpts=excerpts,
        notice=notice,
    )


# -- one item ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    story: Story
    state: Any


def _load_item(request: Request[Any, Any, State], session: Session, ref: str) -> _Item:
    c = console(request.app.state)
    try:
        story = c.audit.story(ref)
    except UnknownRecord:
        story = None
    if story is None:
        raise Problem(404, "not-found", f"No item {ref!r}.")
    found = item_state(ref, story)
    if not session.reviewer.can_see(found.tenant):
        raise Problem(404, "not-found", f"No item {ref!r}.")  # the same answer as unknown
    metrics.annotate(request, tenant=found.tenant, item=ref)
    return _Item(story, found)


def _item_context(request: Request[Any, Any, State], item: _Item) -> dict[str, Any]:
    c = console(request.app.state)
    story, state = item.story, item.state
    req = story.request or {}
    text = req.get("original")
    prompt_reasons = [r for r in story.reasons if r.get("stage") == "prompt"]
    marked = highlight(text, evidence_spans(prompt_reasons, text)) if text is not None else None
    job = None
    if state.job_id is not None:
        try:
            job = c.jobs.get(state.job_id)
        except JobNotFound:
            job = None
    has_video = state.job_id is not None and video_object(c.files, state.job_id)
    reasons = sorted(
        story.reasons, key=lambda r: (r.get("action") == "allow", r.get("stage") != "frame")
    )
    return {
        "item": state,
        "story": story,
        "request_row": req,
        "prompt": marked,
        "retention": req.get("redacted") or req.get("retention"),
        "reasons": reasons,
        "timeline": frame_timeline(story),
        "job": job,
        "has_video": bool(has_video),
    }


@get("/items/{ref:str}", sync_to_thread=True)
def item_page(request: Request[Any, Any, State], ref: FromPath[str]) -> Response[str]:
    """The prompt with its evidence marked, the reasons, the frame timeline, the video, and the
    approve/reject form."""
    session = require_session(request)
    item = _load_item(request, session, ref)
    return render_page(
        request,
        "item.html",
        session=session,
        nav="queue",
        blur=session.reviewer.blur_flagged,
        form_error=None,
        note="",
        **_item_context(request, item),
    )


@get("/items/{ref:str}/frames/{index:int}", sync_to_thread=True)
def frame_image(
    request: Request[Any, Any, State], ref: FromPath[str], index: FromPath[int]
) -> Response[bytes]:
    """One sampled frame as a JPEG thumbnail (only to reviewers of the item's tenant)."""
    session = require_session(request)
    item = _load_item(request, session, ref)
    c = console(request.app.state)
    sampled = [f.index for f in frame_timeline(item.story)]
    if index not in sampled or item.state.job_id is None:
        raise Problem(404, "not-found", f"Frame {index} was not sampled in {ref}.")
    data: bytes | None = None
    key = video_object(c.files, item.state.job_id)
    if key is not None:
        try:
            data = c.thumbnails.get(c.files, key, index, sampled)
        except StorageUnavailable:
            raise
        except Exception as exc:  # a damaged file: fall back to the evidence thumbnail
            log.warning("console: cannot read frames of %s: %s", c.files.location(key), exc)
    if data is None:
        data = _evidence_thumbnail(c.files, item.story, index)
    if data is None:
        raise Problem(404, "not-found", f"No picture of frame {index} of {ref} is kept.")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


def _evidence_thumbnail(files: ObjectStore, story: Story, index: int) -> bytes | None:
    for row in story.evidence:
        if row.get("frame_index") == index and row.get("path"):
            try:
                return files.get_bytes(resolve_evidence_key(row["path"], files))
            except (AuditError, OSError, ObjectMissing):
                return None
    return None


@get("/items/{ref:str}/reference", sync_to_thread=True)
def reference_image(request: Request[Any, Any, State], ref: FromPath[str]) -> Response[bytes]:
    """The video's start image: the uploaded ``input_reference`` that passed (or was sent to
    review by) the input stage, scaled to the video's size, as PNG. A reviewer judging a face
    needs to see it. Only to reviewers of the item's tenant."""
    session = require_session(request)
    item = _load_item(request, session, ref)
    job = None
    if item.state.job_id is not None:
        try:
            job = console(request.app.state).jobs.get(item.state.job_id)
        except JobNotFound:
            job = None
    if job is None or job.input_image is None:
        raise Problem(404, "not-found", f"{ref} has no reference image.")
    return Response(
        base64.b64decode(job.input_image),
        media_type="image/png",
        headers={"Cache-Control": "private, no-store"},
    )


@get("/items/{ref:str}/video", sync_to_thread=True)
def item_video(request: Request[Any, Any, State], ref: FromPath[str]) -> Response[Any]:
    """The item's MP4, quarantined or released: only for reviewers of its tenant, never
    through ``/v1`` (and never as a presigned URL: it is streamed through this route)."""
    session = require_session(request)
    item = _load_item(request, session, ref)
    c = console(request.app.state)
    key = video_object(c.files, item.state.job_id) if item.state.job_id is not None else None
    gone = f"No video file is kept for {ref}."
    if key is None:
        raise Problem(404, "not-found", gone)
    response = serve_object(
        c.settings,
        key,
        "video/mp4",
        gone=gone,
        presign=False,
        range_header=request.headers.get("range"),  # the browser's player seeks with ranges
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _refused_form(
    request: Request[Any, Any, State], session: Session, item: _Item, error: str, note: str
) -> Response[str]:
    """The item page again (422) with the review form's error and the note as typed."""
    return render_page(
        request,
        "item.html",
        session=session,
        status=422,
        nav="queue",
        blur=session.reviewer.blur_flagged,
        form_error=error,
        note=note,
        **_item_context(request, item),
    )


@post("/items/{ref:str}/review", sync_to_thread=True, status_code=303)
def review_item(request: Request[Any, Any, State], ref: FromPath[str], data: Form) -> Response[Any]:
    """Approve or reject with a note; recorded with the signed-in reviewer's account."""
    session = require_session(request)
    check_csrf(request, session, data)
    item = _load_item(request, session, ref)
    if item.state.ended is not None:
        raise Problem(409, "conflict", f"{ended_by_owner(ref, item.state.ended)}.")
    verdict, note = form_field(data, "verdict"), form_field(data, "note").strip()
    error = None
    if verdict not in ("approve", "reject"):
        error = "Choose Approve or Reject."
    elif not note:
        error = "Write a note saying why: it is kept in the audit log with your decision."
    elif len(note) > MAX_NOTE_CHARS:
        error = f"Keep the note to {MAX_NOTE_CHARS} characters."
    elif not item.state.open:
        raise Problem(
            409,
            "conflict",
            f"{ref} does not await a review any more (someone decided it already); see its "
            "history.",
        )
    if error is not None:
        return _refused_form(request, session, item, error, note)
    c = console(request.app.state)
    choice: Verdict = "approve" if verdict == "approve" else "reject"
    try:
        outcome = apply_review(c.audit, c.files, ref, session.reviewer.name, choice, note)
    except InvalidRecord as exc:  # the shared checks refused it (the form checked first)
        return _refused_form(request, session, item, str(exc).capitalize() + ".", note)
    except JobError as exc:  # the job system refused: decided meanwhile, or its file is gone
        raise Problem(409, "conflict", str(exc)) from None
    metrics.annotate(request, action=verdict)
    log.info("console review: %s", outcome.message)
    query = urlencode({"reviewed": ref, "verdict": verdict})
    return Redirect(f"{BASE}?{query}", status_code=303)


@get("/items/{ref:str}/history", sync_to_thread=True)
def item_history(request: Request[Any, Any, State], ref: FromPath[str]) -> Response[str]:
    """The item's whole audit trail: the records ``reelguard audit show`` prints."""
    session = require_session(request)
    item = _load_item(request, session, ref)
    story = item.story
    return render_page(
        request,
        "history.html",
        session=session,
        nav="queue",
        item=item.state,
        story=story,
        timeline=frame_timeline(story),
        evidence_text=evidence_text,
    )


# -- policies ------------------------------------------------------------------------------------
