"""One error shape for the whole HTTP API: RFC 9457 problem details.

Every error response has content type ``application/problem+json`` and the members ``type``,
``title``, ``status`` and ``detail``; validation errors add ``errors``, a list of
``{"pointer": "#/input/1", "detail": "..."}`` (JSON pointers into the request body).

Every error body also carries OpenAI's envelope, ``error: {message, type, param, code}``, so the
official ``openai`` SDK shows what to fix: its exceptions read ``error.message`` into ``str(e)``
(``Error code: 422 - The video request is not valid: #/size: must be WIDTHxHEIGHT ...``) and
expose ``e.code``/``e.param``. ``message`` is ``detail`` followed by each field error,
``code`` is the problem type with ``_`` for ``-`` (``validation_error``; ``invalid_api_key`` for a
401), ``param`` the first bad field (``size``, ``input.1``) or null.

Problem types (``type``, all prefixed ``urn:reelguard:problem:``), so clients can branch on
them without parsing prose:

- ``invalid-json`` (400): the body is not JSON
- ``bad-request`` (400): any other malformed request (e.g. an empty body)
- ``prompt-blocked`` (400): the policy blocked a video prompt; no job was created (the body's
  ``moderation`` member and ``error.code == "prompt_moderation"`` say why)
- ``prompt-not-understood`` (400): the video generator understands no word of the prompt
- ``input-blocked`` (400): the policy's input stage blocked the uploaded ``input_reference``
  image; no job was created (``moderation`` and ``error.code == "input_moderation"`` say why)
- ``invalid-image`` (400): the upload is a decompression bomb (declares more than
  ``REELGUARD_MAX_UPLOAD_PIXELS``), or a PNG/JPEG/WebP that does not decode
- ``unsupported-input`` (400): the chosen generator cannot start from a reference image or a
  remix source
- ``unauthorized`` (401): missing, malformed, unknown or revoked API key
- ``content-withheld`` (403): the output moderation withheld the video; its content is never
  served
- ``forbidden`` (403): the review console refused a form that did not carry the session's
  CSRF token or came from another origin (the console shows it as an HTML page)
- ``not-found`` (404): no such route or resource
- ``method-not-allowed`` (405): the route exists, the method does not
- ``idempotency-conflict`` (409): an ``Idempotency-Key`` reused with a different request
- ``not-ready`` (409): the video is not completed yet, so it has no content to download
- ``video-failed`` (409): the video failed (the detail gives its error code), so it has no
  content
- ``source-not-released`` (409): a remix of a video that is not completed and released
- ``character-not-approved`` (409): a video featuring a character that awaits a reviewer's
  approval (its video showed a face) or was rejected
- ``conflict`` (409): the review console's item was decided already, its owner deleted (or
  cancelled) the video or character, or the job system refused the review (e.g. the video is
  no longer withheld)
- ``input-too-large`` (413): too many characters or items (see ``errors``)
- ``upload-too-large`` (413): an uploaded file over ``REELGUARD_MAX_UPLOAD_MB``
- ``unsupported-media-type`` (415): an upload that is not a PNG, JPEG or WebP image
- ``range-not-satisfiable`` (416, ``Content-Range: bytes */SIZE``): a download's ``Range``
  does not parse or lies past the end of the file
- ``validation-error`` (422): wrong types, unknown fields (see ``errors``)
- ``queue-full`` (429, ``Retry-After``): the video queue holds ``REELGUARD_VIDEO_QUEUE_MAX``
  jobs; retry later
- ``internal-error`` (500): a bug, logged with its traceback; never expected
- ``audit-unavailable`` (503): the audit log cannot be written, so no decision is returned
- ``overloaded`` (503, ``Retry-After``): too many moderation requests in flight in this
  process (``gateway.limits.admission_middleware``)
- ``unavailable`` (503, ``Retry-After`` when it is the database or the video store): a
  dependency is down (e.g. the database cannot be reached, even to check the API key, or the
  S3 store holding the video); retry

Raise :class:`Problem` from handlers; :data:`EXCEPTION_HANDLERS` turns Litestar's own HTTP
exceptions and any unexpected exception into the same shape.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    InternalServerException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.openapi import ResponseSpec

from storage import StorageUnavailable
from storage.objects import ObjectStoreUnavailable

log = logging.getLogger("reelguard.gateway")

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:reelguard:problem:"
CLIENT_DISCONNECTED = "client disconnected prematurely"
"""Litestar's detail when the client closes the connection before the body is complete."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid part of a request body: a JSON pointer (``#/input/2``) and what is wrong."""

    pointer: str
    detail: str


class Problem(HTTPException):
    """An HTTP error with a problem-details body; raise it from handlers and guards."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status, headers=headers)
        self.kind = kind
        self.errors = errors or []


class OpenAIError(msgspec.Struct):
    """OpenAI's error object (what the ``openai`` SDK reads into its exceptions)."""

    message: str
    type: str
    param: str | None
    code: str


class ProblemBody(msgspec.Struct, omit_defaults=True):
    """The JSON body of every error response (RFC 9457), with OpenAI's ``error`` envelope."""

    type: str
    title: str
    status: int
    detail: str
    error: OpenAIError
    instance: str | None = None
    errors: list[FieldError] = msgspec.field(default_factory=list)


def openai_error(problem: Problem) -> OpenAIError:
    """The OpenAI-shaped ``error`` member for ``problem`` (see the module docstring)."""
    status = problem.status_code
    message = problem.detail.rstrip()
    if problem.errors:
        fields = "; ".join(f"{e.pointer}: {e.detail}" for e in problem.errors)
        message = f"{message.rstrip('.')}: {fields}"
    if status == 401:
        kind, code = "authentication_error", "invalid_api_key"
    elif status == 429:
        kind, code = "rate_limit_error", problem.kind.replace("-", "_")
    elif status >= 500:
        kind, code = "server_error", problem.kind.replace("-", "_")
    else:
        kind, code = "invalid_request_error", problem.kind.replace("-", "_")
    pointer = problem.errors[0].pointer if problem.errors else "#"
    param = pointer.removeprefix("#").strip("/").replace("/", ".") or None
    return OpenAIError(message=message, type=kind, param=param, code=code)


def problem_response(request: Request[Any, Any, Any], problem: Problem) -> Response[ProblemBody]:
    """Render a :class:`Problem` as an ``application/problem+json`` response."""
    status = problem.status_code
    body = ProblemBody(
        type=TYPE_PREFIX + problem.kind,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=problem.detail,
        error=openai_error(problem),
        instance=request.url.path,
        errors=problem.errors,
    )
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=problem.headers)


_KEY_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def json_pointer(key: str | None) -> str:
    """Turn a Litestar/msgspec error key (``input[1].type``) into a JSON pointer.

    ``input[1].type`` becomes ``#/input/1/type``; ``data`` (the whole body) becomes ``#``.
    """
    if not key or key == "data":
        return "#"
    parts = [m.group(1) or m.group(2) for m in _KEY_PART.finditer(key)]
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(escaped)


def _validation_problem(request: Request[Any, Any, Any], exc: ValidationException) -> Problem:
    raw = exc.extra if isinstance(exc.extra, list) else []
    errors = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        key = item.get("key")
        message = str(item.get("message", "invalid value"))
        if key == "data" and message == "'data'":
            # Litestar's message for a missing body is the bare parameter name.
            message = "the request body is empty; send a JSON object"
        errors.append(FieldError(pointer=json_pointer(key), detail=message))
    if request.headers.get("content-length") == "0":
        return Problem(400, "bad-request", "The request body is empty; send a JSON object.")
    return Problem(
        422, "validation-error", "The request body does not match the schema.", errors=errors
    )


def _client_problem(exc: ClientException) -> Problem:
    if isinstance(exc.__cause__, SerializationException | msgspec.DecodeError):
        return Problem(400, "invalid-json", f"The request body is not valid JSON: {exc.detail}.")
    if exc.status_code == 413:
        return Problem(413, "input-too-large", exc.detail)
    return Problem(exc.status_code, "bad-request", exc.detail, headers=exc.headers)


def _unavailable(request: Request[Any, Any, Any], exc: StorageUnavailable) -> Problem:
    """503 + ``Retry-After`` for a store that cannot be reached: not a bug. The message names
    the database or the bucket and endpoint, so it goes to the log only."""
    if isinstance(exc, ObjectStoreUnavailable):
        log.warning("object store unavailable on %s %s: %s", request.method, request.url.path, exc)
        what = "The video store cannot be reached now; nothing was served or changed."
    else:  # a PostgreSQL server restarting, a network split, a locked SQLite file
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        what = "The database cannot be reached now; nothing was allowed, generated or changed."
    return Problem(503, "unavailable", f"{what} Retry shortly.", headers={"Retry-After": "1"})


def to_problem(request: Request[Any, Any, Any], exc: Exception) -> Problem:
    """Map any exception to a :class:`Problem` (unknown exceptions become a logged 500)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ValidationException):
        return _validation_problem(request, exc)
    if isinstance(exc, NotAuthorizedException):
        return Problem(
            401,
            "unauthorized",
            exc.detail,
            headers={"WWW-Authenticate": 'Bearer realm="reelguard"'},
        )
    if isinstance(exc, NotFoundException):
        return Problem(404, "not-found", f"No route or resource at {request.url.path}.")
    if isinstance(exc, MethodNotAllowedException):
        return Problem(405, "method-not-allowed", exc.detail, headers=exc.headers)
    if isinstance(exc, ClientException):
        return _client_problem(exc)
    if isinstance(exc, RecursionError) and "deserializ" in str(exc):
        # msgspec decoding a JSON body nested deeper than Python's recursion limit.
        return Problem(
            400, "invalid-json", "The request body is not valid JSON: it is nested too deeply."
        )
    if isinstance(exc, InternalServerException) and exc.detail == CLIENT_DISCONNECTED:
        # Not a bug: the client went away mid-body. One line, no traceback; nobody reads
        # the answer.
        log.info("client disconnected before sending the whole body: %s", request.url.path)
        return Problem(
            400, "bad-request", "The client disconnected before the request body was complete."
        )
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return Problem(exc.status_code, "bad-request", exc.detail, headers=exc.headers)
    if isinstance(exc, HTTPException) and exc.status_code == 503:
        return Problem(503, "unavailable", exc.detail, headers=exc.headers)
    if isinstance(exc, StorageUnavailable):
        return _unavailable(request, exc)
    log.error(
        "unhandled error on %s %s", request.method, request.url.path, exc_info=exc
    )  # a bug: keep the traceback in the log, never in the response
    return Problem(
        500,
        "internal-error",
        "An internal error occurred; it has been logged. Nothing was allowed or generated.",
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemBody]:
    """The app-wide exception handler: every error leaves as problem details."""
    return problem_response(request, to_problem(request, exc))


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI ``responses=`` entries documenting problem-details bodies for ``statuses``."""
    return {
        status: ResponseSpec(
            data_container=ProblemBody,
            media_type=MEDIA_TYPE,
            description=f"{HTTPStatus(status).phrase} (RFC 9457 problem details)",
            generate_examples=False,
        )
        for status in statuses
    }


EXCEPTION_HANDLERS = {Exception: handle_exception}
"""Pass to ``Litestar(exception_handlers=...)``; catches HTTP errors and genuine bugs alike."""
