"""Bearer API keys -> tenant, as a Litestar guard and a ``tenant`` dependency.

Reuse on any controller that needs a caller's tenant::

    class VideoController(Controller):
        guards = [require_api_key]
        dependencies = TENANT_DEPENDENCY

        @post("/v1/videos")
        async def create(self, tenant: str, data: VideoRequest) -> ...: ...

The guard rejects the request with a 401 problem-details body before the handler (or body
parsing) runs; the dependency hands the handler the tenant the guard resolved.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler

from gateway.keys import ApiKey, KeyStore
from gateway.metrics import annotate
from gateway.problems import Problem

_STATE_KEY = "reelguard_api_key"


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="reelguard"'}
    )


def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The API key of this request (cached per request), or a 401 :class:`Problem`."""
    cached = connection.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(cached, ApiKey):
        return cached
    header = connection.headers.get("authorization")
    if not header:
        raise _unauthorized(
            "Missing API key: send 'Authorization: Bearer <key>'; create a key with "
            "`reelguard keys create --tenant NAME`."
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Malformed Authorization header: use 'Authorization: Bearer <key>'.")
    keys: KeyStore = connection.app.state.key_store
    key = keys.authenticate(token.strip())
    if key is None:
        raise _unauthorized("Unknown or revoked API key.")
    connection.state[_STATE_KEY] = key
    annotate(connection, tenant=key.tenant)
    return key


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: the request must carry an active API key."""
    authenticate(connection)


def provide_tenant(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Dependency: the tenant the request's API key belongs to."""
    return authenticate(request).tenant


TENANT_DEPENDENCY = {"tenant": Provide(provide_tenant, sync_to_thread=False)}
"""``dependencies=`` value that gives handlers a ``tenant: str`` parameter."""


def actor_of(connection: ASGIConnection[Any, Any, Any, Any], tenant: str) -> str:
    """Who made an authenticated request, as the audit trail names them: tenant and key id."""
    return f"tenant:{tenant} key:{authenticate(connection).key_id}"
