"""Serving a stored object over HTTP, with byte ranges (RFC 9110 §14).

:func:`serve_object` answers a download the caller has already decided may be served (a
released video, or a reviewer's view of a quarantined one): a local file or an object-store
stream, or a 307 to a presigned URL when the deployment asks for it. Every answer says
``Accept-Ranges: bytes``; a request with one ``Range: bytes=...`` gets that span:

- ``bytes=FIRST-LAST``, ``bytes=FIRST-`` and ``bytes=-SUFFIX`` give 206 Partial Content with
  ``Content-Range: bytes FIRST-LAST/SIZE`` (``LAST`` past the end is cut to the end), as video
  players and resumed downloads ask;
- a range that does not parse or lies past the end (``bytes=9-3``, ``bytes=SIZE-``,
  ``bytes=-0``) is 416 Range Not Satisfiable (``range-not-satisfiable`` problem details) with
  ``Content-Range: bytes */SIZE``;
- a unit other than bytes, or several ranges at once, are ignored (RFC 9110 lets a server
  ignore ``Range``): the whole object, 200.

A presigned redirect carries no range handling here: the client sends its ``Range`` to the
store, which answers it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from litestar import Response
from litestar.response import File, Redirect, Stream

from config.settings import Settings
from gateway.problems import Problem
from storage.objects import ObjectMissing, ObjectStore, object_store

_RANGE = re.compile(r"^\s*(\d{0,18})\s*-\s*(\d{0,18})\s*$")
"""One byte range; 18 digits at most (no int too large to compare, far beyond any object)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive span a ``Range`` header asks of an object of ``size`` bytes, or ``None``
    to serve it whole (no header, another unit, several ranges). Raises a 416 :class:`Problem`
    for a bytes range that does not parse or that the object cannot satisfy."""
    if header is None:
        return None
    unit, _, ranges = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in ranges:
        return None
    match = _RANGE.match(ranges)
    first_text, last_text = match.groups() if match else ("", "")
    if first_text:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
        if first <= last and (not last_text or first <= int(last_text)):
            return first, last
    elif last_text and int(last_text) > 0 and size > 0:
        return max(0, size - int(last_text)), size - 1
    raise Problem(
        416,
        "range-not-satisfiable",
        f"Range {header!r} does not fit this {size}-byte object; ask for bytes=FIRST-LAST "
        f"with FIRST <= LAST and FIRST < {size}, or bytes=-N for the last N bytes.",
        headers={"Content-Range": f"bytes */{size}"},
    )


def serve_object(
    settings: Settings,
    key: str,
    media_type: str,
    *,
    gone: str,
    presign: bool = True,
    range_header: str | None = None,
) -> Response[Any]:
    """The object ``key`` as a response: a file from the local folder, a stream from an object
    store, or (``s3_presigned_downloads`` and ``presign``) a 307 to a short-lived presigned
    URL; ``range_header`` (the request's ``Range``) asks for a span (see the module
    docstring). Call it only for an object the caller may serve; a missing one is 404
    ``gone``, an unreachable store raises
    :class:`~storage.objects.ObjectStoreUnavailable` (503 + ``Retry-After``)."""
    files = object_store(settings)
    name = key.rsplit("/", 1)[-1]
    local = files.local_path(key)
    if presign and local is None and settings.s3_presigned_downloads:
        if not files.exists(key):
            raise Problem(404, "not-found", gone)
        url = files.presigned_url(key, settings.s3_presigned_expiry_s, media_type)
        if url is not None:
            return Redirect(url, status_code=307, headers={"Cache-Control": "no-store"})
    if range_header is not None:
        return _serve_span(files, key, name, media_type, gone, range_header)
    if local is not None:
        if not local.is_file():
            raise Problem(404, "not-found", gone)
        return File(
            path=local,
            media_type=media_type,
            filename=name,
            content_disposition_type="inline",
            headers={"Accept-Ranges": "bytes"},
        )
    try:
        stream = files.open(key)
    except ObjectMissing:
        raise Problem(404, "not-found", gone) from None
    return _stream(stream.chunks, stream.close, media_type, name, {"Content-Length": stream.size})


def _serve_span(
    files: ObjectStore, key: str, name: str, media_type: str, gone: str, header: str
) -> Response[Any]:
    try:
        size = files.size(key)
        span = byte_range(header, size)
        stream = files.open(key, span)
    except ObjectMissing:
        raise Problem(404, "not-found", gone) from None
    fields: dict[str, object] = {"Content-Length": stream.size}
    if span is None:
        return _stream(stream.chunks, stream.close, media_type, name, fields)
    fields["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    return _stream(stream.chunks, stream.close, media_type, name, fields, status=206)


def _stream(
    chunks: Iterator[bytes],
    close: Any,
    media_type: str,
    name: str,
    fields: dict[str, object],
    status: int = 200,
) -> Response[Any]:
    def closing() -> Iterator[bytes]:
        try:
            yield from chunks
        finally:
            close()

    return Stream(
        closing(),
        status_code=status,
        media_type=media_type,
        headers={
            **{k: str(v) for k, v in fields.items()},
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{name}"',
        },
    )
