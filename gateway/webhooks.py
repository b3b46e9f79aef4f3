"""Webhooks: ``video.completed`` and ``video.failed`` events, signed, delivered with retries.

Events are written to the ``webhook_deliveries`` table in the same transaction-safe database as
the jobs, then delivered by the worker processes between jobs, so an event survives a restart
and a slow receiver never holds up the web process.

Signatures follow the Standard Webhooks scheme that OpenAI uses, so a receiver can verify them
with ``openai.OpenAI().webhooks.verify_signature(body, headers, secret=...)``::

    webhook-id: evt_...            webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))>

A secret ``whsec_<base64>`` is base64-decoded first; any other string is used as UTF-8 bytes.
A delivery succeeds on any 2xx; otherwise it is retried after 5 s, 10 s, 20 s... (doubling,
capped at one hour) until ``webhook_max_attempts`` tries were made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from config.settings import Settings
from gateway.jobs import JobStore, VideoJob
from storage import Database, Tx
from storage.database import split_statements

log = logging.getLogger("reelguard.webhooks")

RETRY_BASE_S = 5.0
RETRY_CAP_S = 3600.0
CLAIM_S = 60.0

_SCHEMA = split_statements("""
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    type TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
""")


class WebhookConfigError(ValueError):
    """The webhook settings cannot work; the message says which setting to fix."""


def check_config(settings: Settings) -> None:
    """Raise :class:`WebhookConfigError` unless webhooks are off or URL and secret are usable."""
    if not settings.webhook_url:
        return
    if not settings.webhook_url.startswith(("http://", "https://")):
        raise WebhookConfigError(
            f"REELGUARD_WEBHOOK_URL must be an http(s) URL, got {settings.webhook_url!r}"
        )
    secret = settings.webhook_secret
    if not secret:
        raise WebhookConfigError(
            "REELGUARD_WEBHOOK_URL is set but REELGUARD_WEBHOOK_SECRET is not; webhooks are "
            "always signed: set a secret (whsec_<base64> or any long random string)"
        )
    if secret.startswith("whsec_"):
        try:
            base64.b64decode(secret[6:], validate=True)
        except ValueError:
            raise WebhookConfigError(
                "REELGUARD_WEBHOOK_SECRET starts with whsec_ but the rest is not base64; "
                "use whsec_<base64> or a secret without the prefix"
            ) from None


def sign(secret: str, event_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, f"{event_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def event_body(event_id: str, job: VideoJob) -> str:
    """The JSON body of a video event (the shape of OpenAI's webhook events)."""
    kind = "video.completed" if job.status == "completed" else "video.failed"
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created_at": int(time.time()),
            "data": {
                "id": job.id,
                "status": job.status,
                "error": (
                    {"code": job.error_code, "message": job.error_message}
                    if job.error_code
                    else None
                ),
            },
        },
        separators=(",", ":"),
    )


@contextmanager
def _outbox(settings: Settings, database: Database | None) -> Iterator[Tx]:
    """A write transaction on the deliveries table (``database``, else one opened on
    ``settings.db`` for this call), created if missing."""
    own = database is None
    db = Database.from_url(settings.db, durable=False) if database is None else database
    try:
        with db.transaction(write=True) as tx:
            for statement in _SCHEMA:
                tx.execute(statement)
            yield tx
    finally:
        if own:
            db.close()


def enqueue_event(
    settings: Settings, job: VideoJob, *, database: Database | None = None
) -> str | None:
    """Queue the event for a finished job; returns its id (None when webhooks are off)."""
    if not settings.webhook_url or job.status not in ("completed", "failed"):
        return None
    event_id = "evt_" + secrets.token_hex(16)
    body = event_body(event_id, job)
    now = time.time()
    with _outbox(settings, database) as tx:
        tx.execute(
            """INSERT INTO webhook_deliveries (id, job_id, type, url, body, next_attempt_at,
               created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (event_id, job.id, json.loads(body)["type"], settings.webhook_url, body, now, now),
        )
    return event_id


def _claim_due(settings: Settings, limit: int) -> list[dict[str, Any]]:
    now = time.time()
    with _outbox(settings, None) as tx:
        rows = tx.records(
            """SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?
               ORDER BY next_attempt_at LIMIT ?"""
            + tx.dialect.skip_locked,
            (now, limit),
        )
        # Claimed for a minute: another worker skips them while this one posts.
        tx.executemany(
            "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
            [(now + CLAIM_S, r["id"]) for r in rows],
        )
    return rows


def _post(settings: Settings, row: dict[str, Any], client: httpx.Client) -> str | None:
    """POST one event; None on success, else the error text."""
    if not settings.webhook_secret:
        return "REELGUARD_WEBHOOK_SECRET is not set; refusing to send an unsigned webhook"
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "reelguard-webhooks/1",
        "webhook-id": row["id"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(settings.webhook_secret, row["id"], timestamp, row["body"]),
    }
    try:
        response = client.post(row["url"], content=row["body"], headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def deliver_due(settings: Settings, *, limit: int = 10, timeout_s: float = 10.0) -> int:
    """Send the events that are due; returns how many were delivered."""
    if not settings.webhook_url:
        return 0
    rows = _claim_due(settings, limit)
    if not rows:
        return 0
    delivered = 0
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for row in rows:
            error = _post(settings, row, client)
            _record_attempt(settings, row, error)
            delivered += error is None
    return delivered


def _record_attempt(settings: Settings, row: dict[str, Any], error: str | None) -> None:
    now = time.time()
    attempts = row["attempts"] + 1
    if error is None:
        status, next_at = "delivered", now
    elif attempts >= settings.webhook_max_attempts:
        status, next_at = "failed", now
        log.error(
            "webhook %s for %s gave up after %d tries: %s",
            row["id"],
            row["job_id"],
            attempts,
            error,
        )
    else:
        status = "pending"
        next_at = now + min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempts - 1))
    with _outbox(settings, None) as tx:
        tx.execute(
            """UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?,
               last_error = ?, delivered_at = ? WHERE id = ?""",
            (status, attempts, next_at, error, now if error is None else None, row["id"]),
        )


def deliveries(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    """Every delivery row for a job (for tests and operators)."""
    JobStore(settings.db)
    with _outbox(settings, None) as tx:
        return tx.records(
            "SELECT * FROM webhook_deliveries WHERE job_id = ? ORDER BY created_at", (job_id,)
        )
