"""The review console's routes (``/review``), rendered on the server with Jinja2.

Every page but the sign-in page needs a live session (cookie ``rg_review``: HttpOnly,
SameSite=Lax, path ``/review``, Secure over https); every form carries the session's CSRF token
(the sign-in form a token of its own, double-submitted in a cookie) and a form post without it,
or from another origin, is refused with 403. A reviewer sees only its tenants' items: anything
else is a 404, exactly like an id that does not exist. Approving or rejecting goes through
:func:`gateway.review.apply_review`, the code ``reelguard audit review`` runs (a review and the
release or rejection it causes commit in one transaction). Every read goes through the app's
shared :class:`~storage.Database` (``app.state.audit``, ``app.state.jobs``).
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from audit import insights
from audit.errors import AuditError, InvalidRecord, UnknownRecord
from audit.evidence import resolve_evidence_key
from audit.log import AuditLog
from audit.records import Story
from classifiers.base import CATEGORIES
from config.settings import Settings
from gateway import metrics
from gateway.console.accounts import (
    AccountError,
    ReviewerStore,
    Session,
    SignInFailed,
)
from gateway.console.charts import ACTION_COLOURS, Series, colour_for, stacked_bars
from gateway.console.frames import FrameThumbnails, video_object
from gateway.console.views import (
    AGES,
    KINDS,
    STAGES,
    QueueFilter,
    age_text,
    evidence_spans,
    frame_timeline,
    highlight,
    item_state,
    queue_page,
)
from gateway.jobs import JobError, JobNotFound, JobStore
from gateway.problems import Problem
from gateway.review import MAX_NOTE_CHARS, Verdict, apply_review
from gateway.videos import serve_object
from storage import StorageUnavailable
from storage.objects import ObjectMissing, ObjectStore, object_store

log = logging.getLogger("reelguard.console")

BASE = "/review"
COOKIE = "rg_review"
LOGIN_CSRF_COOKIE = "rg_login_csrf"
HERE = Path(__file__).resolve().parent
DASHBOARD_DAYS = (7, 14, 30, 90)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; "
        "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every console response: nothing loads from elsewhere, nothing is cached."""

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page (and back afterwards)."""


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


_ENV = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(when=_when, age=age_text, score=_score)
_ENV.globals.update(base=BASE, kinds=KINDS, max_note=MAX_NOTE_CHARS)


@dataclass
class Console:
    """What the console keeps per app: accounts, the app's audit log and job store (both on
    the shared database), frame thumbnails."""

    settings: Settings
    reviewers: ReviewerStore
    audit: AuditLog
    jobs: JobStore
    thumbnails: FrameThumbnails
    files: ObjectStore


_INIT = threading.Lock()


def console(state: State) -> Console:
    """The console's components for this app, built on first use."""
    found = getattr(state, "console", None)
    if found is not None:
        return found
    with _INIT:
        found = getattr(state, "console", None)
        if found is None:
            settings: Settings = state.settings
            found = Console(
                settings=settings,
                reviewers=ReviewerStore(
                    state.database,
                    idle_s=settings.review_session_idle_s,
                    max_s=settings.review_session_max_s,
                    lockout_failures=settings.review_lockout_failures,
                    lockout_s=settings.review_lockout_s,
                ),
                audit=state.audit,
                jobs=state.jobs,
                thumbnails=FrameThumbnails(),
                files=object_store(settings),
            )
            state.console = found
    return found


# -- sessions, CSRF and pages ----------------------------------------------------------------


def _session(request: Request[Any, Any, State]) -> Session:
    token = request.cookies.get(COOKIE, "")
    found = console(request.app.state).reviewers.session(token) if token else None
    if found is None:
        raise SignInRequired
    metrics.annotate(request, reviewer=found.reviewer.name)
    return found


def _secure(request: Request[Any, Any, State]) -> bool:
    mode = request.app.state.settings.review_cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _same_origin(request: Request[Any, Any, State]) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin != own:
            raise Problem(403, "forbidden", "This form was posted from another site; refused.")


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def _check_csrf(request: Request[Any, Any, State], session: Session, data: dict[str, Any]) -> None:
    _same_origin(request)
    given = _field(data, "csrf_token")
    if not given or not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise Problem(
            403,
            "forbidden",
            "The form did not carry this session's security token (it expired, or it did not "
            "come from this console). Reload the page and submit it again.",
        )


def _page(
    request: Request[Any, Any, State],
    template: str,
    *,
    session: Session | None,
    status: int = 200,
    nav: str = "",
    **context: Any,
) -> Response[str]:
    html = _ENV.get_template(template).render(
        session=session,
        csrf=session.csrf_token if session is not None else "",
        nav=nav,
        **context,
    )
    return Response(html, status_code=status, media_type="text/html; charset=utf-8")


def _safe_next(target: str) -> str:
    if target.startswith(BASE) and not target.startswith("//") and "\\" not in target:
        return target
    return BASE


# -- sign in and out ----------------------------------------------------------------------------


@get("/login", sync_to_thread=True)
def login_page(
    request: Request[Any, Any, State],
    next: FromQuery[str] = BASE,
) -> Response[str]:
    """The sign-in form (a signed-in reviewer goes straight on)."""
    token = request.cookies.get(COOKIE, "")
    if token and console(request.app.state).reviewers.session(token) is not None:
        return Redirect(_safe_next(next), status_code=303)
    return _login_form(request, next, error=None, status=200)


def _login_form(
    request: Request[Any, Any, State], target: str, *, error: str | None, status: int
) -> Response[str]:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _page(
        request,
        "login.html",
        session=None,
        status=status,
        login_csrf=csrf,
        next=_safe_next(target),
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        path=f"{BASE}/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@post("/login", sync_to_thread=True, status_code=303)
def login(request: Request[Any, Any, State], data: Form) -> Response[Any]:
    """Check the name and password; on success open a session and go on to ``next``."""
    _same_origin(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = _field(data, "csrf_token")
    if not cookie or not hmac.compare_digest(given.encode(), cookie.encode()):
        raise Problem(
            403,
            "forbidden",
            "The sign-in form did not carry its security token (cookies off, or the form came "
            "from elsewhere). Reload the sign-in page and try again.",
        )
    name, password = _field(data, "name").strip(), _field(data, "password")
    target = _field(data, "next") or BASE
    store = console(request.app.state).reviewers
    try:
        token, session = store.sign_in(name, password)
    except SignInFailed as exc:
        log.warning("console sign-in refused: %s", exc)
        settings = request.app.state.settings
        message = (
            "Sign-in failed: the name or password is wrong, or the account is locked or "
            f"disabled. After {settings.review_lockout_failures} failed attempts in a row an "
            f"account is locked for {int(settings.review_lockout_s // 60)} minutes."
        )
        return _login_form(request, target, error=message, status=401)
    log.info("console sign-in: %s", session.reviewer.name)
    response: Response[Any] = Redirect(_safe_next(target), status_code=303)
    response.set_cookie(
        COOKIE, token, path=BASE, httponly=True, samesite="lax", secure=_secure(request)
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{BASE}/login")
    return response


@post("/logout", sync_to_thread=True, status_code=303)
def logout(request: Request[Any, Any, State], data: Form) -> Response[Any]:
    """End the session."""
    session = _session(request)
    _check_csrf(request, session, data)
    console(request.app.state).reviewers.sign_out(request.cookies.get(COOKIE, ""))
    response: Response[Any] = Redirect(f"{BASE}/login", status_code=303)
    response.delete_cookie(COOKIE, path=BASE)
    return response


# -- the queue ------------------------------------------------------------------------------------


def _visible_tenants(c: Console, session: Session, state: State) -> list[str]:
    scope = session.reviewer.scope()
    if scope is not None:
        return sorted(scope)
    with c.audit.snapshot() as tx:
        seen = insights.tenants_seen(tx)
    known = set(state.policies.versions()) | set(seen)
    return sorted(known)


def _bad_filter(name: str, value: str, allowed: Any) -> Problem:
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
    session = _session(request)
    state = request.app.state
    c = console(state)
    tenants = _visible_tenants(c, session, state)
    for name, value, allowed in (
        ("tenant", tenant, tenants),
        ("category", category, CATEGORIES),
        ("stage", stage, STAGES),
        ("age", age, [a for a in AGES if a]),
    ):
        if value and value not in allowed:
            raise _bad_filter(name, value, allowed)
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
    return _page(
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
    session = _session(request)
    item = _load_item(request, session, ref)
    return _page(
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
    session = _session(request)
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
    session = _session(request)
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
    session = _session(request)
    item = _load_item(request, session, ref)
    c = console(request.app.state)
    key = video_object(c.files, item.state.job_id) if item.state.job_id is not None else None
    gone = f"No video file is kept for {ref}."
    if key is None:
        raise Problem(404, "not-found", gone)
    response = serve_object(c.settings, key, "video/mp4", gone=gone, presign=False)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@post("/items/{ref:str}/review", sync_to_thread=True, status_code=303)
def review_item(request: Request[Any, Any, State], ref: FromPath[str], data: Form) -> Response[Any]:
    """Approve or reject with a note; recorded with the signed-in reviewer's account."""
    session = _session(request)
    _check_csrf(request, session, data)
    item = _load_item(request, session, ref)
    verdict, note = _field(data, "verdict"), _field(data, "note").strip()
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
        return _page(
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
    c = console(request.app.state)
    choice: Verdict = "approve" if verdict == "approve" else "reject"
    try:
        outcome = apply_review(c.audit, c.files, ref, session.reviewer.name, choice, note)
    except InvalidRecord as exc:  # the shared checks refused it (the form checked first)
        return _page(
            request,
            "item.html",
            session=session,
            status=422,
            nav="queue",
            blur=session.reviewer.blur_flagged,
            form_error=str(exc).capitalize() + ".",
            note=note,
            **_item_context(request, item),
        )
    except JobError as exc:  # the job system refused: decided meanwhile, or its file is gone
        raise Problem(409, "conflict", str(exc)) from None
    metrics.annotate(request, action=verdict)
    log.info("console review: %s", outcome.message)
    query = urlencode({"reviewed": ref, "verdict": verdict})
    return Redirect(f"{BASE}?{query}", status_code=303)


@get("/items/{ref:str}/history", sync_to_thread=True)
def item_history(request: Request[Any, Any, State], ref: FromPath[str]) -> Response[str]:
    """The item's whole audit trail: the records ``reelguard audit show`` prints."""
    session = _session(request)
    item = _load_item(request, session, ref)
    story = item.story
    return _page(
        request,
        "history.html",
        session=session,
        nav="queue",
        item=item.state,
        story=story,
        timeline=frame_timeline(story),
        evidence_text=_evidence_text,
    )


def _evidence_text(items: list[dict[str, Any]] | None) -> str:
    parts = []
    for e in items or ():
        if e.get("frame_index") is not None:
            parts.append(f"frame {e['frame_index']} @ {e.get('timestamp_s', 0):.2f}s")
        elif e.get("text") is not None:
            parts.append(f"{e['text']!r} [{e.get('start')}:{e.get('end')}]")
        elif "start" in e:
            parts.append(f"[{e['start']}:{e.get('end')}] (text not stored)")
        if e.get("detail"):
            parts.append(str(e["detail"]))
    return "; ".join(parts)


# -- policies ------------------------------------------------------------------------------------


@get("/policies", sync_to_thread=True)
def policies_page(request: Request[Any, Any, State]) -> Response[str]:
    """The tenants this reviewer sees, with the policy version each is served."""
    session = _session(request)
    state = request.app.state
    c = console(state)
    versions = state.policies.versions()
    rows = [
        (t, versions.get(t) or state.policies.get(t).version)
        for t in _visible_tenants(c, session, state)
    ]
    return _page(request, "policies.html", session=session, nav="policies", rows=rows)


@get("/policies/{tenant:str}", sync_to_thread=True)
def policy_page(request: Request[Any, Any, State], tenant: FromPath[str]) -> Response[str]:
    """A tenant's active policy (overlays merged, as YAML), its version and the versions the
    audit log saw before."""
    session = _session(request)
    state = request.app.state
    c = console(state)
    if tenant not in _visible_tenants(c, session, state):
        raise Problem(404, "not-found", f"No tenant {tenant!r}.")
    resolved = state.policies.get(tenant)
    text = yaml.safe_dump(
        resolved.policy.canonical(),
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=None,
    )
    changes = list(reversed(c.audit.policy_changes(tenant)))
    return _page(
        request,
        "policy.html",
        session=session,
        nav="policies",
        tenant=tenant,
        version=resolved.version,
        sources=[str(p) for p in resolved.sources],
        policy_yaml=text,
        changes=changes,
    )


# -- dashboard -----------------------------------------------------------------------------------


def _days(n: int, now: float) -> list[str]:
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=n - 1 - i)).isoformat() for i in range(n)]


@get("/dashboard", sync_to_thread=True)
def dashboard(request: Request[Any, Any, State], days: FromQuery[int] = 14) -> Response[str]:
    """Decisions per day by action and category, the review backlog and its age, and the frame
    withhold rate, as SVG charts with the same figures in tables."""
    session = _session(request)
    if days not in DASHBOARD_DAYS:
        raise _bad_filter("days", str(days), DASHBOARD_DAYS)
    c = console(request.app.state)
    scope = session.reviewer.scope()
    now = time.time()
    labels = _days(days, now)
    since = datetime.fromisoformat(labels[0]).replace(tzinfo=UTC).timestamp()
    short = [d[5:] for d in labels]

    with c.audit.snapshot() as tx:
        decisions = insights.decisions_per_day(tx, since, scope)
        flags = insights.flags_per_day(tx, since, scope)
        withheld = insights.frame_withhold_rate(tx, since, scope)
    by_action = {
        a: tuple(
            float(sum(x.count for x in decisions if x.day == d and x.key == a)) for d in labels
        )
        for a in ("allow", "review", "block")
    }
    categories = sorted({f.key for f in flags})
    by_category = {
        cat: tuple(
            float(sum(x.count for x in flags if x.day == d and x.key == cat)) for d in labels
        )
        for cat in categories
    }
    rates = {r.day: r for r in withheld}
    items = [i for i in c.audit.queue(None) if session.reviewer.can_see(i.tenant)]
    buckets: tuple[tuple[str, float, float], ...] = (
        ("under 1 h", 0.0, 3600.0),
        ("1-24 h", 3600.0, 86400.0),
        ("1-7 d", 86400.0, 7 * 86400.0),
        ("over 7 d", 7 * 86400.0, float("inf")),
    )
    age_rows = [
        (
            label,
            {k: sum(1 for i in items if i.kind == k and lo <= now - i.since < hi) for k in KINDS},
        )
        for label, lo, hi in buckets
    ]
    charts = {
        "actions": stacked_bars(
            "chart-actions",
            "Prompt decisions per day by action",
            f"Stacked bars for the last {days} days: allow, review and block decisions.",
            short,
            [Series(a, ACTION_COLOURS[a], v) for a, v in by_action.items()],
        ),
        "categories": stacked_bars(
            "chart-categories",
            "Flagged requests per day by category",
            f"Stacked bars for the last {days} days: requests or videos sent to review or "
            "blocked, once per category.",
            short,
            [Series(cat, colour_for(i), v) for i, (cat, v) in enumerate(by_category.items())],
        ),
        "backlog": stacked_bars(
            "chart-backlog",
            "Review backlog by age",
            "Items awaiting review, by how long they have waited, withheld videos and prompts.",
            [label for label, *_ in buckets],
            [
                Series(KINDS[k], colour_for(i), tuple(float(r[1][k]) for r in age_rows))
                for i, k in enumerate(KINDS)
            ],
        ),
        "withhold": stacked_bars(
            "chart-withhold",
            "Frame withhold rate per day",
            f"Share of frame audits that withheld the video, last {days} days.",
            short,
            [
                Series(
                    "withheld",
                    ACTION_COLOURS["block"],
                    tuple(rates[d].rate if d in rates else 0.0 for d in labels),
                )
            ],
            percent=True,
        ),
    }
    oldest = min((i.since for i in items), default=None)
    return _page(
        request,
        "dashboard.html",
        session=session,
        nav="dashboard",
        days=days,
        choices=DASHBOARD_DAYS,
        labels=labels,
        charts=charts,
        by_action=by_action,
        by_category=by_category,
        colours={a: ACTION_COLOURS[a] for a in by_action}
        | {cat: colour_for(i) for i, cat in enumerate(by_category)},
        kind_colours={KINDS[k]: colour_for(i) for i, k in enumerate(KINDS)},
        rates=rates,
        backlog=len(items),
        oldest_age=None if oldest is None else now - oldest,
        age_rows=age_rows,
    )


# -- the reviewer's account ----------------------------------------------------------------------


@get("/account", sync_to_thread=True)
def account_page(request: Request[Any, Any, State], saved: FromQuery[str] = "") -> Response[str]:
    """Per-account settings: blur flagged thumbnails; change the password."""
    session = _session(request)
    return _page(
        request,
        "account.html",
        session=session,
        nav="account",
        saved=saved,
        error=None,
    )


@post("/account/preferences", sync_to_thread=True, status_code=303)
def save_preferences(request: Request[Any, Any, State], data: Form) -> Response[Any]:
    """Save the blur setting."""
    session = _session(request)
    _check_csrf(request, session, data)
    blur = _field(data, "blur_flagged") == "on"
    console(request.app.state).reviewers.set_blur(session.reviewer.id, blur)
    return Redirect(f"{BASE}/account?saved=preferences", status_code=303)


@post("/account/password", sync_to_thread=True, status_code=303)
def change_password(request: Request[Any, Any, State], data: Form) -> Response[Any]:
    """Change the password (the current one is asked again); other sessions end."""
    session = _session(request)
    _check_csrf(request, session, data)
    new, again = _field(data, "new_password"), _field(data, "confirm_password")
    error = None
    if new != again:
        error = "The new password and its confirmation differ."
    else:
        try:
            console(request.app.state).reviewers.change_password(
                session.reviewer.id,
                _field(data, "current_password"),
                new,
                keep_token=request.cookies.get(COOKIE, ""),
            )
        except AccountError as exc:
            error = str(exc).capitalize() + "."
    if error is not None:
        return _page(
            request,
            "account.html",
            session=session,
            status=422,
            nav="account",
            saved="",
            error=error,
        )
    return Redirect(f"{BASE}/account?saved=password", status_code=303)


# -- errors, headers, and the router -----------------------------------------------------------


def _to_sign_in(request: Request[Any, Any, State], exc: Exception) -> Response[Any]:
    target = request.url.path
    if request.url.query:
        target += f"?{request.url.query}"
    if request.method != "GET":
        target = BASE
    return Redirect(f"{BASE}/login?{urlencode({'next': target})}", status_code=303)


def _error_page(request: Request[Any, Any, State], exc: Exception) -> Response[str]:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Something went wrong."
    if status >= 500:
        log.error("console error on %s", request.url.path, exc_info=exc)
    token = request.cookies.get(COOKIE, "")
    try:
        session = console(request.app.state).reviewers.session(token) if token else None
    except Exception:  # the error page must render even when the database does not answer
        session = None
    response = _page(
        request,
        "error.html",
        session=session,
        status=status,
        title=_TITLES.get(status, "Error"),
        detail=detail,
    )
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Refused",
    404: "Not found",
    405: "Not allowed",
    409: "Already decided",
    413: "Too large",
    422: "Not valid",
    500: "Something went wrong",
}


def _security_headers(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def console_router() -> Router:
    """Every console route under ``/review``, its static files, error pages and headers."""
    static = create_static_files_router(
        path="/static",
        directories=[HERE / "static"],
        name="review-static",
        include_in_schema=False,
        send_as_attachment=False,
    )
    return Router(
        path=BASE,
        route_handlers=[
            login_page,
            login,
            logout,
            queue,
            item_page,
            frame_image,
            reference_image,
            item_video,
            review_item,
            item_history,
            policies_page,
            policy_page,
            dashboard,
            account_page,
            save_preferences,
            change_password,
            static,
        ],
        include_in_schema=False,
        after_request=_security_headers,
        exception_handlers={
            SignInRequired: _to_sign_in,
            HTTPException: _error_page,
            Exception: _error_page,
        },
    )
