"""The Litestar application: routes, shared components, error handling, policy hot reload.

``create_app()`` builds everything a request needs once (key store, policy store, text
moderator, audit log) and keeps it on ``app.state``; handlers read it from there. Routes are
listed in :data:`ROUTE_HANDLERS` (the video routes are mounted with their own body limit), so
adding an area is one line.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, Router, get
from litestar.datastructures import State
from litestar.types import ControllerRouterHandler

from audit.log import AuditLog
from classifiers.base import ERROR_MARKER
from config.settings import Settings
from gateway import metrics
from gateway.characters import CharacterController
from gateway.console.web import console_router
from gateway.jobs import JobStore
from gateway.keys import KeyStore
from gateway.limits import admission_middleware
from gateway.moderations import ModerationController
from gateway.pipeline import Admission, ClassifierFactory, TextModerator
from gateway.policy_audit import PolicyAudit
from gateway.problems import EXCEPTION_HANDLERS
from gateway.schema_ui import assets_router, openapi_config
from gateway.video_sources import VideoSourceController
from gateway.videos import VideoController
from policies.store import BASE_TENANT, PolicyStore, PolicyWatcher
from storage import Database

log = logging.getLogger("reelguard.gateway")


class RemovedOverlayHealth(msgspec.Struct):
    """A tenant overlay removed while serving, not yet acknowledged: the tenant now gets the
    base policy. Acknowledge with ``reelguard policy ack TENANT --actor NAME``."""

    tenant: str
    file: str
    previous_version: str | None
    version: str
    removed_at: int


class PolicyHealth(msgspec.Struct):
    """The policies now serving (version per tenant, base as ``default``), while the newest edit
    of a policy file is refused which files and lines (never their content: this is
    unauthenticated; the reasons are in the log and ``reelguard policy validate``), and removed
    tenant overlays awaiting acknowledgement."""

    versions: dict[str, str]
    base_sources: list[str]
    last_reload_error: str | None
    removed_overlays: list[RemovedOverlayHealth]


class DatabaseHealth(msgspec.Struct):
    """Whether the database (keys, jobs, audit log) can be written now; without it every
    decision is refused with 503, since an unrecorded decision is never returned."""

    writable: bool
    error: str | None


class Health(msgspec.Struct):
    """``GET /healthz``. ``status``: ``ok``; ``degraded`` (a policy edit was refused, the
    previous policy still serves; or a tenant overlay was removed and nobody acknowledged it
    yet); ``failing`` (a classifier failed to load, so every prompt it should check is
    blocked, or the database cannot be written, so every request is refused)."""

    status: str
    policy: PolicyHealth
    models: dict[str, str]
    database: DatabaseHealth


class WriteProbe:
    """Can the database be written now? (:meth:`storage.Database.probe_write`: nothing is
    written), asked at most once per ``ttl_s``, so an unauthenticated health check cannot keep
    the write lock busy."""

    def __init__(self, database: Database, ttl_s: float = 1.0) -> None:
        self.database, self.ttl_s = database, ttl_s
        self._lock = threading.Lock()
        self._checked_at = -math.inf
        self._error: str | None = None

    def error(self) -> str | None:
        """Why the database cannot be written, or ``None`` when it can."""
        with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl_s:
                self._error = self.database.probe_write()
                self._checked_at = time.monotonic()
            return self._error


@get("/healthz", sync_to_thread=False, tags=["operations"], summary="Health and versions")
def healthz(request: Request[Any, Any, State]) -> Response[Health]:
    """Liveness plus what is serving: policy version, model ids/versions, last reload error.

    Returns 503 when a classifier failed to load (every prompt would be blocked) or the
    database cannot be written (every request would be refused).
    """
    state = request.app.state
    store: PolicyStore = state.policies
    models = state.moderator.models()
    error = store.last_error_summary
    removed = [
        RemovedOverlayHealth(
            tenant=r.tenant,
            file=r.source,
            previous_version=r.previous_version,
            version=r.version,
            removed_at=int(r.removed_at),
        )
        for r in state.policy_audit.removed_overlays()
    ]
    db_error = state.write_probe.error()
    failing = any(v.startswith(ERROR_MARKER) for v in models.values()) or db_error is not None
    status = "failing" if failing else "degraded" if error or removed else "ok"
    body = Health(
        status=status,
        policy=PolicyHealth(
            versions=store.versions(),
            base_sources=[str(p) for p in store.base.sources],
            last_reload_error=error,
            removed_overlays=removed,
        ),
        models=models,
        database=DatabaseHealth(writable=db_error is None, error=db_error),
    )
    return Response(body, status_code=503 if failing else 200)


ROUTE_HANDLERS: list[ControllerRouterHandler] = [
    healthz,
    metrics.metrics_endpoint,
    ModerationController,
]
"""Every route the gateway serves (and :class:`VideoController`, mounted by :func:`create_app`
with its own body limit). Add a controller here to add an area."""


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    """Hot-reload policies while serving; close the database on shutdown."""
    state = app.state
    watcher = PolicyWatcher(state.policies, state.settings.policy_reload_interval_s).start()
    try:
        yield
    finally:
        watcher.stop()
        state.database.close()


def body_limit(settings: Settings) -> int:
    """Largest request body accepted (bytes): ``REELGUARD_MAX_BODY_BYTES``, by default the
    biggest valid request, JSON-escaped, plus room.

    A character can take up to 6 bytes as a JSON ``\\uXXXX`` escape; the per-field limits are
    checked after parsing, so this only stops absurd bodies early (413).
    """
    if settings.max_body_bytes is not None:
        return settings.max_body_bytes
    return settings.max_input_chars * settings.max_input_items * 6 + 64 * 1024


def video_body_limit(settings: Settings) -> int:
    """Largest body ``/v1/videos`` accepts: :func:`body_limit`, or one upload of
    ``REELGUARD_MAX_UPLOAD_MB`` plus its form fields if that is more, so that an image over
    the upload limit gets the upload's own 413 (naming ``input_reference``). Only this route
    takes uploads; the others keep :func:`body_limit`."""
    upload = int(settings.max_upload_mb * 1024 * 1024) + 256 * 1024
    return max(body_limit(settings), upload)


def create_app(
    settings: Settings | None = None,
    *,
    classifiers: Mapping[str, ClassifierFactory] | None = None,
) -> Litestar:
    """Build the gateway. ``classifiers`` replaces the text classifier registry (tests)."""
    settings = settings or Settings()
    metrics.setup(settings)
    policies = PolicyStore(
        settings.policy, settings.tenant_policy_dir, max_file_bytes=settings.policy_max_bytes
    )
    admission = Admission(settings.max_pending_checks)
    moderator = TextModerator(
        policies,
        classifiers=classifiers,
        time_budget_ms=settings.classifier_timeout_ms,
        deadline_ms=settings.check_timeout_ms,
        admission=admission,
        warm_tenants=(BASE_TENANT,),
    )
    # One database for keys, jobs and the audit log, so a job and its prompt record (or a
    # cancellation and its record) commit in one transaction.
    database = Database.from_url(settings.database, durable=True)
    audit = AuditLog(database)
    state = State(
        {
            "settings": settings,
            "database": database,
            "policies": policies,
            "moderator": moderator,
            "key_store": KeyStore(database),
            "audit": audit,
            "jobs": JobStore(database),
            "policy_audit": PolicyAudit(audit, policies).attach(),
            "admission": admission,
            "write_probe": WriteProbe(database),
        }
    )
    consoles = [console_router()] if settings.review_console else []
    app = Litestar(
        route_handlers=[
            *ROUTE_HANDLERS,
            Router(
                "/",
                route_handlers=[VideoController, VideoSourceController, CharacterController],
                request_max_body_size=video_body_limit(settings),
            ),
            *consoles,
            assets_router(),
        ],
        state=state,
        lifespan=[_lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[admission_middleware(admission)],
        request_max_body_size=body_limit(settings),
        openapi_config=openapi_config(
            "ReelGuard",
            _version(),
            "Safety and moderation gateway in front of a text-to-video generator.",
        ),
    )
    metrics.instrument(app, settings)  # every request, 404s included, counted and logged
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reelguard")
    except PackageNotFoundError:
        return "0.0.0+source"
