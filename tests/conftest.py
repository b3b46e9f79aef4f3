"""Shared fixtures: settings on a temp SQLite DB, the real app in-process, a real uvicorn server.

Text classifiers are built once per test session (the gazetteers take a moment to load) and
shared by every app and moderator the tests create. Storage tests run on both databases through
:func:`db_target` (``sqlite``: a temp file; ``postgres``: a fresh database on the session's
throwaway PostgreSQL server, :mod:`pgserver`). Object-store tests run on both stores through
:func:`store_target` (``local``: a temp folder; ``s3``: a fresh prefix in the bucket of the
session's throwaway SeaweedFS S3 server, :mod:`s3server`).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pgserver
import pytest
import s3server
import uvicorn
from litestar import Litestar
from litestar.testing import TestClient

from classifiers.base import TextClassifier
from config.settings import Settings
from gateway.keys import KeyStore

ClassifierFactory = Callable[[], TextClassifier]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pgserver.PostgresServer]:
    """A real PostgreSQL server for the whole session (started on first use)."""
    server = pgserver.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: pgserver.PostgresServer) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (dropped after the test)."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store keeps its tables, once per database: a fresh SQLite file (a Path), or the
    URL of a fresh PostgreSQL database (a str), as ``REELGUARD_DB`` / ``REELGUARD_DATABASE_URL``
    would name them."""
    if request.param == "sqlite":
        return tmp_path / "reelguard.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def s3_server() -> Iterator[s3server.S3Server]:
    """A real S3-compatible server (SeaweedFS) for the whole session (started on first use)."""
    server = s3server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_url(s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<the session's bucket>/<a new prefix>``, with the server's endpoint and
    credentials in the environment (as ``REELGUARD_S3_ENDPOINT_URL`` / ``AWS_ACCESS_KEY_ID`` /
    ... name them)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.bucket}/t{secrets.token_hex(6)}"


@pytest.fixture(params=["local", "s3"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """The settings that choose the object store, once per store: the local folder
    ``tmp_path/videos``, then a fresh prefix in the session's S3 bucket (the folder is still
    named, and must stay empty of videos)."""
    fields: dict[str, object] = {"data_dir": tmp_path / "videos"}
    if request.param == "s3":
        fields["storage_url"] = request.getfixturevalue("s3_url")
        fields["s3_endpoint_url"] = request.getfixturevalue("s3_server").endpoint
    return fields


@pytest.fixture(scope="session")
def text_classifiers() -> Mapping[str, ClassifierFactory]:
    """The real registry, each classifier built at most once per session (lazily)."""
    from classifiers.registry import TEXT_CLASSIFIERS

    built: dict[str, TextClassifier] = {}
    lock = threading.Lock()

    def shared(name: str) -> ClassifierFactory:
        def factory() -> TextClassifier:
            with lock:
                if name not in built:
                    built[name] = TEXT_CLASSIFIERS[name]()
                return built[name]

        return factory

    return {name: shared(name) for name in TEXT_CLASSIFIERS}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh SQLite file, the packaged policy, an empty tenant overlay folder."""
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    return Settings(
        db=tmp_path / "reelguard.db",
        data_dir=tmp_path / "videos",
        tenant_policy_dir=tenants,
        policy_reload_interval_s=0.05,
    )


def _make_key(settings: Settings, tenant: str = "default") -> str:
    store = KeyStore(settings.db)
    try:
        return store.create(tenant).token
    finally:
        store.close()


@pytest.fixture
def make_key(settings: Settings) -> Callable[[str], str]:
    """``make_key(tenant)``: create a key for ``tenant`` in the test database, return the token."""
    return lambda tenant: _make_key(settings, tenant)


@pytest.fixture
def api_key(settings: Settings) -> str:
    """An active key for tenant ``default``."""
    return _make_key(settings)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    """Authorization header for :func:`api_key`."""
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def app(settings: Settings, text_classifiers: Mapping[str, ClassifierFactory]) -> Litestar:
    """The real gateway app on the temp settings."""
    from gateway.app import create_app

    return create_app(settings, classifiers=text_classifiers)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """In-process client (runs the app's lifespan, so the policy watcher runs too)."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    """A real uvicorn server on 127.0.0.1 running the gateway in a background thread."""

    url: str
    key: str
    settings: Settings


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, ClassifierFactory]
) -> Iterator[LiveServer]:
    """Start uvicorn on a free port, wait until it answers, stop it after the module."""
    root = tmp_path_factory.mktemp("live")
    settings = Settings(db=root / "reelguard.db", data_dir=root / "videos", host="127.0.0.1")
    with serve_in_thread(settings, text_classifiers) as server:
        yield server


@contextmanager
def serve_in_thread(
    settings: Settings, classifiers: Mapping[str, ClassifierFactory]
) -> Iterator[LiveServer]:
    """The gateway on ``settings`` under uvicorn on a free port of 127.0.0.1, configured as
    ``reelguard serve`` configures it (:func:`gateway.limits.uvicorn_config`); stopped on exit."""
    from gateway.app import create_app
    from gateway.limits import uvicorn_config

    key = _make_key(settings)
    port = free_port()
    config = uvicorn_config(
        create_app(settings, classifiers=classifiers),
        settings,
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", key=key, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
