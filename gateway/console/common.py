"""What every review-console route shares: settings and stores (:class:`Console`), the
session and CSRF checks, and page rendering with the console's security headers."""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body

from audit.log import AuditLog
from config.settings import Settings
from gateway import metrics
from gateway.console.accounts import (
    ReviewerStore,
    Session,
)
from gateway.console.frames import FrameThumbnails
from gateway.console.views import (
    KINDS,
    age_text,
)
from gateway.jobs import JobStore
from gateway.problems import Problem
from gateway.review import MAX_NOTE_CHARS
from storage.objects import ObjectStore, object_store

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


def when(ts: float | None) -> str:
    """A timestamp as the console shows it (UTC, to the second; empty for None)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def score_text(value: float | None) -> str:
    """A score with three decimals (empty for None)."""
    return "" if value is None else f"{value:.3f}"


TEMPLATES = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(when=when, age=age_text, score=score_text)
TEMPLATES.globals.update(base=BASE, kinds=KINDS, max_note=MAX_NOTE_CHARS)


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


def require_session(request: Request[Any, Any, State]) -> Session:
    """The signed-in reviewer's session, or :class:`SignInRequired` (sent to the sign-in page)."""
    token = request.cookies.get(COOKIE, "")
    found = console(request.app.state).reviewers.session(token) if token else None
    if found is None:
        raise SignInRequired
    metrics.annotate(request, reviewer=found.reviewer.name)
    return found


def is_secure(request: Request[Any, Any, State]) -> bool:
    """Whether the request came over https (the cookie then gets ``Secure``)."""
    mode = request.app.state.settings.review_cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def check_same_origin(request: Request[Any, Any, State]) -> None:
    """403 for a form post whose ``Origin`` is another site."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin != own:
            raise Problem(403, "forbidden", "This form was posted from another site; refused.")


def form_field(data: dict[str, Any], name: str) -> str:
    """One text field of a posted form ('' when absent; the first of a repeated field)."""
    value = data.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def check_csrf(request: Request[Any, Any, State], session: Session, data: dict[str, Any]) -> None:
    """403 unless the form carries this session's CSRF token (compared in constant time)."""
    check_same_origin(request)
    given = form_field(data, "csrf_token")
    if not given or not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise Problem(
            403,
            "forbidden",
            "The form did not carry this session's security token (it expired, or it did not "
            "come from this console). Reload the page and submit it again.",
        )


def render_page(
    request: Request[Any, Any, State],
    template: str,
    *,
    session: Session | None,
    status: int = 200,
    nav: str = "",
    **context: Any,
) -> Response[str]:
    """A console template rendered with the session, its CSRF token and the navigation."""
    html = TEMPLATES.get_template(template).render(
        session=session,
        csrf=session.csrf_token if session is not None else "",
        nav=nav,
        **context,
    )
    return Response(html, status_code=status, media_type="text/html; charset=utf-8")


def safe_next(target: str) -> str:
    """Where to go after signing in: only a path under ``/review``, never another site."""
    if target.startswith(BASE) and not target.startswith("//") and "\\" not in target:
        return target
    return BASE


# -- sign in and out ----------------------------------------------------------------------------
