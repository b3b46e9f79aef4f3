"""``reelguard serve --web-workers N``: N web processes answering on one port.

The parent binds the listening socket once and starts N processes (``spawn``: nothing of the
parent's threads or connections is inherited) that each build their own app and run uvicorn on
that same socket, so the kernel hands each new connection to whichever process accepts first.
The parent does not serve: it restarts a web process that dies, and on SIGTERM/SIGINT stops them
all (each finishes its requests in flight).

Nothing a request depends on is per process: API keys (and their revocation), the video queue
(and its limit), jobs and the audit log are read from the shared database on every request, and
each process watches the policy files and hot-reloads them on its own
(``REELGUARD_POLICY_RELOAD_INTERVAL_S``). What is per process: the text-check admission limit
(``REELGUARD_MAX_PENDING_CHECKS`` counts the checks of one process) and the loaded models
(memory grows with N).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from multiprocessing.context import SpawnProcess
from typing import Any

import click

from config.settings import Settings

log = logging.getLogger("reelguard.serve")

FAST_EXIT_S = 10.0
"""A web process that exits this soon after its start counts as failing to start."""
MAX_FAST_EXITS = 5
"""Failed starts in a row after which ``serve`` gives up (a broken policy, a port taken...)."""
STOP_GRACE_S = 30.0


def bind(settings: Settings) -> socket.socket:
    """The listening socket every web process accepts on (a ClickException when the port is
    taken or the host cannot be bound)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); choose another "
            "--port or stop what uses it"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_many(settings: Settings, count: int) -> None:
    """Run ``count`` web processes on ``settings.host:port`` until SIGTERM or SIGINT."""
    import multiprocessing

    sock = bind(settings)
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    procs: dict[int, tuple[SpawnProcess, float]] = {}

    def start(slot: int) -> None:
        proc = ctx.Process(
            target=web_process, args=(settings, sock, os.getpid()), name=f"reelguard-web-{slot}"
        )
        proc.start()
        procs[slot] = (proc, time.monotonic())

    for slot in range(count):
        start(slot)
    log.info(
        "%d web processes on http://%s:%d (pids %s)",
        count,
        settings.host,
        settings.port,
        ", ".join(str(p.pid) for p, _ in procs.values()),
    )
    fast_exits = 0
    try:
        while not stop.wait(0.2):
            for slot, (proc, started) in list(procs.items()):
                if proc.is_alive():
                    continue
                quick = time.monotonic() - started < FAST_EXIT_S
                fast_exits = fast_exits + 1 if quick else 0
                log.warning(
                    "web process %d (pid %s) exited with code %s; starting another",
                    slot,
                    proc.pid,
                    proc.exitcode,
                )
                if fast_exits >= MAX_FAST_EXITS:
                    raise click.ClickException(
                        f"web processes keep exiting at start ({fast_exits} in a row); the log "
                        "above says why"
                    )
                start(slot)
    finally:
        _stop_all([p for p, _ in procs.values()])
        sock.close()


def _stop_all(procs: list[Any]) -> None:
    for proc in procs:
        if proc.is_alive():
            proc.terminate()  # SIGTERM: uvicorn finishes the requests in flight
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        proc.join(max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def web_process(settings: Settings, sock: socket.socket, parent: int) -> None:
    """One web process: build the app (its own models, database connections, policy watcher)
    and serve on the shared socket. Ends when the parent stops it or dies."""
    import uvicorn

    from gateway.limits import uvicorn_config
    from gateway.logs import configure_logging
    from gateway.serve import build_app_or_explain

    os.setpgrp()  # Ctrl-C reaches the parent, which stops us once (SIGTERM), not twice
    app = build_app_or_explain(settings)
    json_logs = configure_logging(settings)
    server = uvicorn.Server(
        uvicorn_config(
            app,
            settings,
            log_level="info",
            **({"log_config": None, "access_log": False} if json_logs else {}),
        )
    )

    def orphaned() -> None:  # the parent was killed (kill -9): do not serve on alone
        while os.getppid() == parent:
            time.sleep(1.0)
        server.should_exit = True

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
    server.run(sockets=[sock])
