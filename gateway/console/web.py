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

import logging
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from gateway.console.account_routes import (
    account_page,
    change_password,
    login,
    login_page,
    logout,
    save_preferences,
)
from gateway.console.common import (
    BASE,
    COOKIE,
    HERE,
    SECURITY_HEADERS,
    SignInRequired,
    console,
    render_page,
)
from gateway.console.dashboard import dashboard, policies_page, policy_page
from gateway.console.item_routes import (
    frame_image,
    item_history,
    item_page,
    item_video,
    queue,
    reference_image,
    review_item,
)

log = logging.getLogger("reelguard.console")


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
    response = render_page(
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
    409: "Nothing to decide",  # decided already, or its owner deleted it
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
