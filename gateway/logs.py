"""Log output: plain lines (the default) or one JSON object per line (``REELGUARD_LOG_FORMAT``).

In JSON mode every log record is one line with ``ts``, ``level``, ``logger``, ``message`` and,
for request and job events, the event's fields::

    {"ts": "2026-12-05T12:00:00.123Z", "level": "INFO", "logger": "reelguard.access",
     "message": "POST /v1/moderations 200", "event": "request", "request_id": "modr-...",
     "tenant": "acme", "action": "block", "method": "POST", "route": "/v1/moderations",
     "status": 200, "latency_ms": 12.4}
    {"ts": ..., "logger": "reelguard.jobs", "event": "job", "job_id": "video_...",
     "tenant": "acme", "action": "withheld", "status": "failed", "latency_ms": 850.2, ...}

No prompt text and no key is ever written unless ``REELGUARD_LOG_PROMPTS=true`` (then job events
carry ``prompt``); request events never carry headers or bodies.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from config.settings import Settings

if TYPE_CHECKING:
    from gateway.jobs import VideoJob

access_log = logging.getLogger("reelguard.access")
jobs_log = logging.getLogger("reelguard.jobs")

EVENT_ATTR = "reelguard_event"
"""Attribute of a log record that holds the event's fields."""

PROMPT_FIELDS = frozenset({"prompt"})
"""Fields dropped from every event unless prompts may be logged."""

_settings = {"log_prompts": False, "json": False}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; event fields at the top level; prompt text only if allowed."""

    def __init__(self, *, log_prompts: bool = False, process: str | None = None) -> None:
        super().__init__()
        self.log_prompts, self.process = log_prompts, process

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "ts": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process:
            out["process"] = self.process
        event = getattr(record, EVENT_ATTR, None)
        if isinstance(event, Mapping):
            for key, value in event.items():
                if key in PROMPT_FIELDS and not self.log_prompts:
                    continue
                out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(settings: Settings, *, process: str | None = None) -> bool:
    """Install the JSON handler on the root logger when ``log_format`` is ``json`` (INFO and
    up, to standard error); returns True then. Plain mode leaves logging as it was."""
    _settings["log_prompts"] = settings.log_prompts
    _settings["json"] = settings.log_format == "json"
    if settings.log_format != "json":
        return False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(log_prompts=settings.log_prompts, process=process))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return True


def request_event(
    method: str, route: str, path: str, status: int, seconds: float, fields: Mapping[str, Any]
) -> None:
    """One line per HTTP request: method, route template, path, status, latency and what the
    handler added (request id, tenant, action). JSON mode only (plain mode keeps uvicorn's
    access log)."""
    if not _settings["json"] or not access_log.isEnabledFor(logging.INFO):
        return
    event = {
        "event": "request",
        **{k: v for k, v in fields.items() if k not in PROMPT_FIELDS},
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "latency_ms": round(seconds * 1000.0, 2),
    }
    access_log.info("%s %s %d", method, path, status, extra={EVENT_ATTR: event})


def job_event(job: VideoJob, *, worker_id: str | None = None) -> None:
    """One line per finished video job: id, tenant, outcome, error code and stage times
    (JSON mode only)."""
    if not _settings["json"] or not jobs_log.isEnabledFor(logging.INFO):
        return
    action = "released" if job.release == "released" else job.release or "failed"
    timings = {k: round(v * 1000.0, 1) for k, v in job.timings.items() if isinstance(v, float)}
    event: dict[str, Any] = {
        "event": "job",
        "job_id": job.id,
        "request_id": (job.prompt_moderation or {}).get("request_id"),
        "tenant": job.tenant,
        "action": action,
        "status": job.status,
        "error_code": job.error_code,
        "latency_ms": round(((job.completed_at or time.time()) - job.created_at) * 1000.0, 1),
        "stages_ms": timings,
        "worker_id": worker_id,
    }
    if _settings["log_prompts"]:
        event["prompt"] = job.prompt
    jobs_log.info("job %s %s", job.id, action, extra={EVENT_ATTR: event})
