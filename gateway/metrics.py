"""Prometheus metrics for every process of a deployment, added up (``GET /metrics``).

The web process and the worker processes each write their counters and histograms to files in
one folder (prometheus-client's multiprocess mode; ``REELGUARD_METRICS_DIR``, by default
``metrics/`` beside the database), and the web process reads them all when scraped, so a
counter is the sum over every process that ever ran since the server started. Figures that
live in the database (queue depth, review backlog) are read at scrape time.

Each process calls :func:`setup` once before it counts anything; until then (batch CLI tools,
unit tests that never build an app) every helper here is a no-op. ``/metrics`` is served on the
main port only with a bearer token (``REELGUARD_METRICS_TOKEN``), or without one on a separate
port (``REELGUARD_METRICS_PORT``, bound to ``REELGUARD_METRICS_HOST``, 127.0.0.1 by default).
The README's "Metrics" section says what each metric means.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.datastructures import State

from config.settings import Settings
from gateway.problems import Problem

if TYPE_CHECKING:
    from litestar import Litestar

    from audit.log import AuditLog
    from gateway.jobs import JobStore, VideoJob
    from policies.decision import Decision
    from storage import Database

log = logging.getLogger("reelguard.metrics")

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EVENT_KEY = "reelguard_event"
"""Key in the ASGI scope's ``state`` where handlers leave fields for the request event."""

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CLASSIFIER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
JOB_STAGES = {
    "queue_wait_s": "queue",
    "generate_s": "generate",
    "audit_s": "audit",
    "encode_wait_s": "encode_wait",
    "record_s": "record",
}
"""Job timing keys (``video_jobs.timings``) observed as ``reelguard_job_stage_seconds``."""

_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


@dataclass(frozen=True)
class _Metrics:
    """The metric objects of this process (created once, after the value class is set)."""

    directory: Path
    http_requests: Any
    http_seconds: Any
    decisions: Any
    classifier_seconds: Any
    classifier_errors: Any
    job_stage_seconds: Any
    jobs: Any
    lease_losses: Any
    workers: Any


_lock = threading.Lock()
_metrics: _Metrics | None = None


def metrics_dir(settings: Settings) -> Path:
    """The folder this deployment's processes share: ``PROMETHEUS_MULTIPROC_DIR`` when set,
    else ``REELGUARD_METRICS_DIR``, else ``metrics/`` beside the database."""
    given = os.environ.get(ENV_DIR)
    if given:
        return Path(given)
    if settings.metrics_dir is not None:
        return settings.metrics_dir
    return Path(settings.db).parent / "metrics"


def setup(settings: Settings) -> Path:
    """Turn on metrics in this process (idempotent): multiprocess files in :func:`metrics_dir`.

    The folder goes into ``PROMETHEUS_MULTIPROC_DIR`` so worker processes started afterwards
    write to the same place. Returns the folder. The first call in a process fixes it.
    """
    global _metrics
    with _lock:
        if _metrics is not None:
            return _metrics.directory
        directory = metrics_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        os.environ[ENV_DIR] = str(directory)
        from prometheus_client import Counter, Gauge, Histogram, values

        if not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client picked its value class when first imported, before the folder
            # was known: switch to the file-backed one before any metric exists.
            values.ValueClass = values.MultiProcessValue()
        _metrics = _Metrics(
            directory=directory,
            http_requests=Counter(
                "reelguard_http_requests",
                "HTTP requests answered, by method, route template and status code.",
                ["method", "route", "status"],
                registry=None,
            ),
            http_seconds=Histogram(
                "reelguard_http_request_duration_seconds",
                "Time from a request's arrival to the end of its response, by route template.",
                ["method", "route"],
                buckets=HTTP_BUCKETS,
                registry=None,
            ),
            decisions=Counter(
                "reelguard_moderation_decisions",
                "Moderation decisions by tenant, stage (prompt, frame), action and category "
                "(one per flagged category; 'none' for a decision with no review/block reason).",
                ["tenant", "stage", "action", "category"],
                registry=None,
            ),
            classifier_seconds=Histogram(
                "reelguard_classifier_duration_seconds",
                "Time one classifier took: per prompt at the prompt stage, per video's sampled "
                "frames at the frame stage.",
                ["stage", "classifier"],
                buckets=CLASSIFIER_BUCKETS,
                registry=None,
            ),
            classifier_errors=Counter(
                "reelguard_classifier_errors",
                "Classifier failures (each one failed closed), by stage, classifier and kind "
                "(error, timeout, unavailable).",
                ["stage", "classifier", "kind"],
                registry=None,
            ),
            job_stage_seconds=Histogram(
                "reelguard_job_stage_duration_seconds",
                "Video job time per stage: queue, generate, audit, encode_wait, record.",
                ["stage"],
                buckets=STAGE_BUCKETS,
                registry=None,
            ),
            jobs=Counter(
                "reelguard_jobs_finished",
                "Video jobs a worker finished, by outcome (released, withheld, failed).",
                ["outcome"],
                registry=None,
            ),
            lease_losses=Counter(
                "reelguard_job_lease_losses",
                "Jobs a worker lost to another because its lease lapsed (a stalled worker).",
                registry=None,
            ),
            workers=Gauge(
                "reelguard_workers",
                "Video worker processes alive now.",
                multiprocess_mode="livesum",
                registry=None,
            ),
        )
        return directory


def _get() -> _Metrics | None:
    return _metrics


def prepare_dir(directory: Path) -> int:
    """Remove the files of processes that no longer run (a previous server's), so a fresh
    ``serve`` starts its counters from zero; returns how many were removed. Files of live
    processes (a ``reelguard worker`` sharing the folder) stay."""
    removed = 0
    if not directory.is_dir():
        return 0
    for path in directory.iterdir():
        match = _FILE.match(path.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_gone(pid: int) -> None:
    """A worker process ended: it no longer counts in ``reelguard_workers``."""
    m = _get()
    if m is None:
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, str(m.directory))


# -- what the code counts ---------------------------------------------------------------------


def count_decision(tenant: str, stage: str, decision: Decision) -> None:
    """One moderation decision: counted once per flagged category (``none`` if none)."""
    m = _get()
    if m is None:
        return
    action = str(decision.action)
    categories: list[str] = sorted(
        {r.category for r in decision.reasons if str(r.action) != "allow"}
    )
    for category in categories or ["none"]:
        m.decisions.labels(tenant, stage, action, category).inc()


def observe_classifier(stage: str, classifier: str, seconds: float) -> None:
    """How long one classifier took (a prompt, or a video's sampled frames)."""
    m = _get()
    if m is not None:
        m.classifier_seconds.labels(stage, classifier).observe(seconds)


def count_classifier_error(stage: str, classifier: str, kind: str) -> None:
    """A classifier that failed closed: ``error``, ``timeout`` or ``unavailable``."""
    m = _get()
    if m is not None:
        m.classifier_errors.labels(stage, classifier, kind).inc()


def count_lease_loss() -> None:
    """This worker lost its job's lease to another worker."""
    m = _get()
    if m is not None:
        m.lease_losses.inc()


def worker_alive() -> None:
    """This process is a video worker (until it ends or :func:`process_gone` names it)."""
    m = _get()
    if m is not None:
        m.workers.set(1)


def observe_job(job: VideoJob) -> None:
    """A finished job: its stage times and its outcome."""
    m = _get()
    if m is None:
        return
    for key, stage in JOB_STAGES.items():
        value = job.timings.get(key)
        if isinstance(value, int | float) and value >= 0:
            m.job_stage_seconds.labels(stage).observe(value)
    outcome = "released" if job.release == "released" else "withheld" if job.release else "failed"
    m.jobs.labels(outcome).inc()


# -- the HTTP side: one wrapper around the whole app, and the scrape endpoint -----------------


def instrument(app: Litestar, settings: Settings) -> None:
    """Count and time every HTTP request (404s and 405s included, which no route handler
    sees) and write one request event per request (:func:`gateway.logs.request_event`)."""
    from gateway.logs import request_event

    inner = app.asgi_handler

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await inner(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Mapping[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                status[0] = int(message.get("status", 500))
            await send(message)

        try:
            await inner(scope, receive, send_wrapper)
        finally:
            took = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            method = str(scope.get("method", ""))
            m = _get()
            if m is not None:
                m.http_requests.labels(method, route, str(status[0])).inc()
                m.http_seconds.labels(method, route).observe(took)
            fields = (scope.get("state") or {}).get(EVENT_KEY) or {}
            request_event(method, route, str(scope.get("path", "")), status[0], took, fields)

    app.asgi_handler = observed


def annotate(connection: Any, **fields: Any) -> None:
    """Add fields (``request_id``, ``tenant``, ``action``...) to this request's log event."""
    state = connection.scope.setdefault("state", {})
    state.setdefault(EVENT_KEY, {}).update({k: v for k, v in fields.items() if v is not None})


def exposition(settings: Settings, extra: Callable[[], Iterator[Any]] | None = None) -> bytes:
    """The Prometheus text of every process's metrics plus the database figures."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    m = _get()
    directory = m.directory if m is not None else setup(settings)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    if extra is not None:
        registry.register(_Collect(extra))
    return bytes(generate_latest(registry))


class _Collect:
    """A collector over a function that yields metric families at scrape time."""

    def __init__(self, collect: Callable[[], Iterator[Any]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Any]:
        return self._collect()


def database_figures(audit: AuditLog, jobs: JobStore) -> Iterator[Any]:
    """Queue depth and review backlog, read at scrape time through ``audit`` and ``jobs``
    (the app's stores, on the database the whole process shares)."""
    from prometheus_client.core import GaugeMetricFamily

    queue = GaugeMetricFamily(
        "reelguard_queue_jobs",
        "Video jobs waiting (queued) or running (in_progress) now.",
        labels=["status"],
    )
    backlog = GaugeMetricFamily(
        "reelguard_review_backlog",
        "Items awaiting a human review (withheld videos, prompts sent to review), by tenant "
        "and kind.",
        labels=["tenant", "kind"],
    )
    oldest = GaugeMetricFamily(
        "reelguard_review_backlog_oldest_seconds",
        "Age of the oldest item awaiting review, by tenant (absent when nothing waits).",
        labels=["tenant"],
    )
    counts: dict[str, int] = {}
    try:
        counts = jobs.status_counts(("queued", "in_progress"))
    except Exception as exc:  # a scrape must not fail because the database is busy or gone
        log.warning("metrics: queue depth unavailable: %s", exc)
    try:
        items = audit.queue(None)
    except Exception as exc:
        log.warning("metrics: review backlog unavailable: %s", exc)
        items = []
    for status in ("queued", "in_progress"):
        queue.add_metric([status], float(counts.get(status, 0)))
    now = time.time()
    per: dict[tuple[str, str], int] = {}
    first: dict[str, float] = {}
    for item in items:
        per[(item.tenant, item.kind)] = per.get((item.tenant, item.kind), 0) + 1
        first[item.tenant] = min(first.get(item.tenant, item.since), item.since)
    for (tenant, kind), n in sorted(per.items()):
        backlog.add_metric([tenant, kind], float(n))
    for tenant, since in sorted(first.items()):
        oldest.add_metric([tenant], max(0.0, now - since))
    yield queue
    yield backlog
    yield oldest


@get("/metrics", sync_to_thread=True, include_in_schema=False)
def metrics_endpoint(request: Request[Any, Any, State]) -> Response[bytes]:
    """Prometheus text format; needs ``Authorization: Bearer <REELGUARD_METRICS_TOKEN>``."""
    state = request.app.state
    settings: Settings = state.settings
    token = settings.metrics_token
    if token is None:
        raise Problem(
            404,
            "not-found",
            "Metrics are not served on this port: set REELGUARD_METRICS_TOKEN (then scrape with "
            "that bearer token) or REELGUARD_METRICS_PORT (a separate port).",
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise Problem(
            401,
            "unauthorized",
            "GET /metrics needs 'Authorization: Bearer <REELGUARD_METRICS_TOKEN>'.",
            headers={"WWW-Authenticate": 'Bearer realm="reelguard-metrics"'},
        )
    body = exposition(settings, lambda: database_figures(state.audit, state.jobs))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def serve_port(settings: Settings, database: Database | None = None) -> Callable[[], None] | None:
    """Start the separate metrics port (``REELGUARD_METRICS_PORT``) in a thread; returns a
    function that stops it, or None when no port is set. The database figures are read through
    ``database`` (the web process passes its app's; ``reelguard worker`` opens
    ``settings.database``)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from audit.log import AuditLog
    from gateway.jobs import JobStore
    from storage import Database

    port = settings.metrics_port
    if port is None:
        return None
    shared = database if database is not None else Database.from_url(settings.database)
    stores: list[tuple[AuditLog, JobStore]] = []
    stores_lock = threading.Lock()

    def figures() -> Iterator[Any]:
        with stores_lock:
            if not stores:  # on first scrape: the job table may need creating
                stores.append((AuditLog(shared), JobStore(shared)))
        return database_figures(*stores[0])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404, "only /metrics is served here")
                return
            body = exposition(settings, figures)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((settings.metrics_host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
