"""Worker processes: a pool that starts them (``spawn``) and restarts any that dies, and each
process's loop: claim a job, run it, deliver due webhooks, wait for the next.

The web process never generates: ``reelguard serve`` starts a :class:`WorkerPool` next to the
server, and ``reelguard worker`` (:mod:`gateway.commands.worker`) runs a pool alone. An idle
worker waits on :func:`wait_for_work`, woken by the database doorbell (inotify) within
milliseconds of a new job.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.process
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable

import click

from config.settings import Settings
from gateway import metrics
from gateway.doorbell import Doorbell, open_doorbell
from gateway.jobs import JobStore
from gateway.worker.components import Components
from gateway.worker.runner import JobRunner

log = logging.getLogger("reelguard.worker")


def worker_main(settings: Settings, slot: int, parent_pid: int) -> None:
    """Entry point of one worker process: load models, then claim and run jobs until told to
    stop (SIGTERM/SIGINT) or until the process that started it is gone.

    The worker id, ``<host>:<pid>:w<slot>:<random>``, is what the job row's ``worker_id`` shows.
    """
    from gateway.logs import configure_logging

    worker_id = f"{socket.gethostname()}:{os.getpid()}:w{slot}:{secrets.token_hex(3)}"
    if not configure_logging(settings, process=worker_id):
        logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {worker_id} %(message)s")
    metrics.setup(settings)
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.torch_threads))
    shutdown = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: shutdown.set())
    with contextlib.suppress(Exception):
        import torch

        torch.set_num_threads(settings.torch_threads)

    def orphaned() -> bool:
        return os.getppid() != parent_pid

    threading.Thread(
        target=_watch_parent, args=(orphaned, shutdown), name="parent-watch", daemon=True
    ).start()
    runner = JobRunner(settings, Components.load(settings), worker_id, shutdown)
    metrics.worker_alive()
    log.info("worker %s ready (pid %d)", worker_id, os.getpid())
    from gateway.webhooks import deliver_due

    with open_doorbell(settings) as doorbell:
        if not doorbell.available:
            log.info("queue wake-up by polling: %s", doorbell.unavailable_reason)
        while not shutdown.is_set():
            try:
                busy = runner.run_next()
                deliver_due(settings)
            except Exception:  # a database hiccup must not end the worker; the pool restarts it
                log.exception("worker loop error")
                busy = False
            if not busy:
                try:
                    runner.sweep_when_idle()
                except Exception:  # a sweep must not end the worker; the next one tries again
                    log.exception("the idle sweep failed")
                try:
                    wait_for_work(runner.store, doorbell, settings.worker_poll_interval_s, shutdown)
                except Exception:  # e.g. a locked database: fall back to a plain pause
                    log.exception("waiting for work failed")
                    shutdown.wait(settings.worker_poll_interval_s)
    metrics.process_gone(os.getpid())
    log.info("worker %s stopped", worker_id)


def wait_for_work(
    store: JobStore,
    doorbell: Doorbell,
    timeout_s: float,
    stop: threading.Event,
    *,
    tick_s: float = 0.1,
    min_gap_s: float = 0.01,
    settle_s: float = 0.001,
    peek_s: float = 0.02,
) -> None:
    """Return when a job is queued, ``stop`` is set, or ``timeout_s`` passes.

    Each peek is one indexed read (:meth:`JobStore.has_queued`, on a pooled connection). With
    a working ``doorbell`` the wait sleeps until the database is written, then peeks: a new job
    starts ~1 ms after its commit instead of half a 20 ms peek period later, and an idle worker
    wakes 10 times a second instead of 50. A write rings when its WAL frames are written, a
    moment before the commit is visible to readers, so the peek waits ``settle_s`` after the
    ring, and peeks once more ``min_gap_s`` later if it found nothing. It never peeks more often
    than every ``min_gap_s``, so a busy database (the moderation audit log) cannot make it spin,
    and it peeks every ``tick_s`` regardless (a filesystem that reports no writes costs latency,
    never a job). Without the doorbell it peeks every ``peek_s``.
    """
    deadline = time.monotonic() + timeout_s
    if not doorbell.available:
        while time.monotonic() < deadline:
            if store.has_queued() or stop.wait(peek_s):
                return
        return
    # Forget the writes made so far (mostly this worker's own, from its last job): the first
    # peek below sees their commits, so waiting out a gap for them only adds latency.
    doorbell.wait(0.0)
    follow_up = False
    while not stop.is_set():
        peeked = time.monotonic()
        if store.has_queued():
            return
        remaining = deadline - peeked
        if remaining <= 0:
            return
        rang = doorbell.wait(min(remaining, min_gap_s if follow_up else tick_s))
        follow_up = rang
        if rang:
            since = time.monotonic() - peeked
            if stop.wait(max(settle_s, min_gap_s - since)):
                return


def _watch_parent(orphaned: Callable[[], bool], shutdown: threading.Event) -> None:
    while not shutdown.wait(1.0):
        if orphaned():
            shutdown.set()


class WorkerPool:
    """``count`` worker processes, restarted when one dies, stopped together."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings, self.count = settings, count
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="worker-pool", daemon=True)

    def start(self) -> WorkerPool:
        """Start the processes and the thread that restarts any that die."""
        for slot in range(self.count):
            self.processes.append(self._spawn(slot))
        self._monitor.start()
        return self

    def _spawn(self, slot: int) -> multiprocessing.process.BaseProcess:
        proc = self._ctx.Process(
            target=worker_main,
            args=(self.settings, slot, os.getpid()),
            name=f"reelguard-worker-{slot}",
            daemon=True,
        )
        proc.start()
        return proc

    def _watch(self) -> None:
        started = {slot: time.monotonic() for slot in range(self.count)}
        delay = dict.fromkeys(range(self.count), 0.0)
        while not self._stopping.wait(1.0):
            for slot, proc in enumerate(self.processes):
                if proc.is_alive() or self._stopping.is_set():
                    continue
                if proc.pid is not None:
                    metrics.process_gone(proc.pid)  # a killed worker counts no more
                # A worker that dies right after starting (bad weights, bad policy) is restarted
                # with a growing pause, not in a tight loop.
                quick = time.monotonic() - started[slot] < 30.0
                delay[slot] = min(60.0, max(1.0, 2 * delay[slot])) if quick else 0.0
                log.warning(
                    "worker %s exited (%s); starting another in %.0f s",
                    proc.name,
                    proc.exitcode,
                    delay[slot],
                )
                if delay[slot] and self._stopping.wait(delay[slot]):
                    return
                self.processes[slot] = self._spawn(slot)
                started[slot] = time.monotonic()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM every worker (a running job goes back to the queue), then wait."""
        self._stopping.set()
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self.processes:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(2)
            if proc.pid is not None:
                metrics.process_gone(proc.pid)

    def __enter__(self) -> WorkerPool:
        if not self.processes:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_workers(settings: Settings, count: int | None = None) -> WorkerPool | None:
    """Start ``count`` (default ``settings.video_workers``) worker processes; None for 0.

    Raises ``click.ClickException`` for settings the workers cannot run with (webhooks).
    """
    from gateway.webhooks import WebhookConfigError, check_config

    n = settings.video_workers if count is None else count
    if n <= 0:
        return None
    try:
        check_config(settings)
    except WebhookConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return WorkerPool(settings, n).start()
