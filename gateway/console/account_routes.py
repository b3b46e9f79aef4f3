"""Console sign-in, sign-out and the reviewer's own account page (blur preference,
password change); the sign-in form double-submits a CSRF token of its own in a cookie."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Redirect

from gateway.console.accounts import (
    AccountError,
    SignInFailed,
)
from gateway.console.common import (
    BASE,
    COOKIE,
    LOGIN_CSRF_COOKIE,
    Form,
    check_csrf,
    check_same_origin,
    console,
    form_field,
    is_secure,
    render_page,
    require_session,
    safe_next,
)
from gateway.problems import Problem

log = logging.getLogger("reelguard.console")


@get("/login", sync_to_thread=True)
def login_page(
    request: Request[Any, Any, State],
    next: FromQuery[str] = BASE,
) -> Response[str]:
    """The sign-in form (a signed-in reviewer goes straight on)."""
    token = request.cookies.get(COOKIE, "")
    if token and console(request.app.state).reviewers.session(token) is not None:
        return Redirect(safe_next(next), status_code=303)
    return _login_form(request, next, error=None, status=200)


def _login_form(
    request: Request[Any, Any, State], target: str, *, error: str | None, status: int
) -> Response[str]:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render_page(
        request,
        "login.html",
        session=None,
        status=status,
        login_csrf=csrf,
        next=safe_next(target),
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        path=f"{BASE}/login",
        httponly=True,
        samesite="strict",
        secure=is_secure(request),
    )
    return response


@post("/login", sync_to_thread=True, status_code=303)
def login(request: Request[Any, Any, State], data: Form) -> Response[Any]:
    """Check the name and password; on success open a session and go on to ``next``."""
    check_same_origin(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form_field(data, "csrf_token")
    if not cookie or not hmac.compare_digest(given.encode(), cookie.encode()):
        raise Problem(
            403,
            "forbidden",
            "The sign-in form did not carry its security token (cookies off, or the form came "
            "from elsewhere). Reload the sign-in page and try again.",
        )
    name, password = form_field(data, "name").strip(), form_field(data, "password")
    target = form_field(data, "next") or BASE
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
    response: Response[Any] = Redirect(safe_next(target), status_code=303)
    response.set_cookie(
        COOKIE, token, path=BASE, httponly=True, samesite="lax", secure=is_secure(request)
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{BASE}/login")
    return response


@post("/logout", sync_to_thread=True, status_code=303)
def logout(request: Request[Any, Any, State], data: Form) -> Response[Any]:
    """End the session."""
    session = require_session(request)
    check_csrf(request, session, data)
    console(request.app.state).reviewers.sign_out(request.cookies.get(COOKIE, ""))
    response: Response[Any] = Redirect(f"{BASE}/login", status_code=303)
    response.delete_cookie(COOKIE, path=BASE)
    return response


# -- the queue ------------------------------------------------------------------------------------


@get("/account", sync_to_thread=True)
def account_page(request: Request[Any, Any, State], saved: FromQuery[str] = "") -> Response[str]:
    """Per-account settings: blur flagged thumbnails; change the password."""
    session = require_session(request)
    return render_page(
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
    session = require_session(request)
    check_csrf(request, session, data)
    blur = form_field(data, "blur_flagged") == "on"
    console(request.app.state).reviewers.set_blur(session.reviewer.id, blur)
    return Redirect(f"{BASE}/account?saved=preferences", status_code=303)


@post("/account/password", sync_to_thread=True, status_code=303)
def change_password(request: Request[Any, Any, State], data: Form) -> Response[Any]:
    """Change the password (the current one is asked again); other sessions end."""
    session = require_session(request)
    check_csrf(request, session, data)
    new, again = form_field(data, "new_password"), form_field(data, "confirm_password")
    error = None
    if new != again:
        error = "The new password and its confirmation differ."
    else:
        try:
            console(request.app.state).reviewers.change_password(
                session.reviewer.id,
                form_field(data, "current_password"),
                new,
                keep_token=request.cookies.get(COOKIE, ""),
            )
        except AccountError as exc:
            error = str(exc).capitalize() + "."
    if error is not None:
        return render_page(
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
