"""What one request may cost: size limits checked before any expensive work.

The raw limits (``REELGUARD_MAX_INPUT_ITEMS``, ``REELGUARD_MAX_INPUT_CHARS``, the body size)
bound what a client sends; they do not bound what the text check reads, because normalisation
expands text (NFKC turns U+FDFA into 18 characters) and the classifiers' cost grows with the
normalised text. So the normalised length of every prompt is bounded too, per item
(``REELGUARD_MAX_NORMALIZED_CHARS``) and per request (``REELGUARD_MAX_REQUEST_NORMALIZED_CHARS``),
measured with :func:`classifiers.text.normalize.normalized_length_bound` (about 0.1 µs per
character, so a refusal costs nothing worth attacking). Over either limit is a 413 problem that
names the limit and the setting.

The HTTP server's own limits (request head size, the time a client has to send a request,
idle keep-alive connections) are set by :func:`uvicorn_config`, which ``reelguard serve``
runs with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

import h11
import msgspec
import uvicorn
from litestar.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from classifiers.text.normalize import normalized_length_bound
from config.settings import Settings
from gateway.pipeline import Admission, ChecksOverloaded
from gateway.problems import (
    MEDIA_TYPE,
    TYPE_PREFIX,
    FieldError,
    Problem,
    ProblemBody,
    openai_error,
)


def check_normalized_size(
    texts: Sequence[str], pointers: Sequence[str], settings: Settings
) -> None:
    """Raise a 413 :class:`Problem` if a prompt, or all of them together, normalise too long.

    ``pointers`` are the JSON pointers of ``texts`` in the request body (for ``errors``).
    """
    per_item = settings.max_normalized_chars
    sizes = [normalized_length_bound(t) for t in texts]
    too_long = [
        FieldError(pointer, f"{size} characters once normalised; the limit is {per_item}")
        for pointer, size in zip(pointers, sizes, strict=True)
        if size > per_item
    ]
    if too_long:
        raise Problem(
            413,
            "input-too-large",
            f"Each input may have at most {per_item} characters once normalised "
            "(REELGUARD_MAX_NORMALIZED_CHARS); compatibility characters such as U+FDFA expand "
            "when normalised.",
            errors=too_long,
        )
    total, limit = sum(sizes), settings.max_request_normalized_chars
    if total > limit:
        raise Problem(
            413,
            "input-too-large",
            f"The inputs have {total} characters once normalised, all together; the limit is "
            f"{limit} per request (REELGUARD_MAX_REQUEST_NORMALIZED_CHARS). Split the request.",
            errors=[FieldError("#", f"at most {limit} normalised characters in all")],
        )


# -- admission control ------------------------------------------------------------------------

MODERATED = frozenset(
    {"/v1/moderations", "/v1/videos", "/v1/videos/extensions", "/v1/videos/edits"}
)
"""The routes whose POST runs a text check and an audit write: the work admission bounds."""


def admission_middleware(admission: Admission) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware that admits at most ``admission.limit`` moderation requests (a POST to
    :data:`MODERATED`) at once, from their first byte to the end of their answer: the body
    read, the text check and the audit write. One more gets 503 ``overloaded`` with
    ``Retry-After`` at once, before its body is read, so work waiting anywhere (the thread
    pool, the audit log's write lock) never grows without bound. Other routes pass through.
    """

    def middleware(app: ASGIApp) -> ASGIApp:
        async def admit(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "").rstrip("/")
            if scope["type"] != "http" or scope.get("method") != "POST" or path not in MODERATED:
                await app(scope, receive, send)
                return
            try:
                admission.enter()
            except ChecksOverloaded as exc:
                await _overloaded(send, path, exc)
                return
            try:
                await app(scope, receive, send)
            finally:
                admission.leave()

        return admit

    return middleware


async def _overloaded(send: Send, path: str, exc: ChecksOverloaded) -> None:
    problem = Problem(
        503, "overloaded", f"The gateway is busy: {exc}. Nothing was checked or stored."
    )
    body = msgspec.json.encode(
        ProblemBody(
            type=TYPE_PREFIX + problem.kind,
            title=HTTPStatus.SERVICE_UNAVAILABLE.phrase,
            status=503,
            detail=problem.detail,
            error=openai_error(problem),
            instance=path,
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(exc.retry_after_s).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


# -- the HTTP server: header size, body read time, idle connections ---------------------------


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for *receiving* each request.

    uvicorn bounds the request head's size (``h11_max_incomplete_event_size``) and closes idle
    keep-alive connections (``timeout_keep_alive``), but a client that sends its headers or
    body a byte at a time (slowloris), or stops halfway, holds a connection for ever. Here a
    request must arrive whole (request line, headers and body) within :attr:`read_timeout_s`
    of its first byte (of the connection, for the first request), or the connection is
    closed; the application then sees a client disconnect. Time the application spends
    answering does not count.
    """

    read_timeout_s: float = 30.0
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing at all is closed too

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE or state is h11.SEND_BODY:
            if self._read_timer is None:  # a request has begun and is not complete yet
                self._arm()
        else:  # complete (DONE), or the connection is ending
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        self.logger.warning(
            "closing the connection from %s: its request did not arrive within %g s "
            "(REELGUARD_REQUEST_READ_TIMEOUT_S)",
            peer,
            self.read_timeout_s,
        )
        self.transport.close()


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration ``reelguard serve`` runs with: the request limits of
    ``settings`` (head size, read deadline, keep-alive) on the h11 parser, which enforces a
    head-size limit (httptools reads any header size). ``overrides`` go to ``uvicorn.Config``
    as they are (tests: ``port``, ``log_level``)."""
    protocol = type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"read_timeout_s": settings.request_read_timeout_s},
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": protocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        **overrides,
    }
    return uvicorn.Config(app, **options)
