"""A running job's lease: the heartbeat that keeps it, and the stops that end a job early.

While a job runs, :class:`Heartbeat` renews its lease from a thread (so a dead worker's job is
recovered by another once the lease lapses), watches for a cancellation and for a stage that
overruns its timeout. The generator's progress callback calls :meth:`Heartbeat.check`, which
raises a :class:`StopJob` at the next step; a stage that ignores it past a grace period ends
the process (:data:`EXIT_STAGE_OVERRUN`; the pool starts a fresh worker)::

    StopJob      stop this job (code: cancelled, timeout, ...): it fails with that code
    ├── LeaseLost  another worker recovered this job: stop and write nothing
    └── Shutdown   this worker is stopping (SIGTERM): hand the job back to the queue
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.jobs import JobStore, Lease, VideoJob

log = logging.getLogger("reelguard.worker")

EXIT_STAGE_OVERRUN = 70
"""Exit status of a worker process that ended itself because a stage ignored its timeout."""


class StopJob(Exception):
    """Raised inside a job (from the progress callback) to stop it at the next step."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LeaseLost(StopJob):
    """Another worker recovered this job; stop and write nothing."""


class Shutdown(StopJob):
    """The worker is stopping (SIGTERM): hand the job back to the queue."""


class Heartbeat:
    """Keeps a job's lease alive from a thread and turns events into :class:`StopJob`.

    The generator calls :meth:`check` (through the progress callback) at every step; it raises
    when the job was cancelled, the lease was lost, the worker is shutting down, or the current
    stage ran past its timeout.
    """

    def __init__(
        self,
        store: JobStore,
        job: VideoJob,
        worker_id: str,
        lease_s: float,
        shutdown: threading.Event,
        grace_s: float = 15.0,
    ) -> None:
        self.store, self.job, self.worker_id, self.lease_s = store, job, worker_id, lease_s
        self.grace_s = grace_s
        self.shutdown = shutdown
        self._stop = threading.Event()
        self._stopped_reason: StopJob | None = None
        self._stage = "generating"
        self._deadline = float("inf")
        self._timeout_s = float("inf")
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def stage(self, name: str, timeout_s: float, progress: int | None = None) -> None:
        """Enter a stage with its own timeout; record it (and the progress) on the job row.

        Reads the job row first, so a cancellation stops the job at the next stage even when
        the heartbeat thread has not seen it yet.
        """
        self.check()
        self._stop_if(self.store.heartbeat(self.job.id, self.worker_id, lease_s=self.lease_s))
        self._stage, self._timeout_s = name, timeout_s
        self._deadline = time.monotonic() + timeout_s
        fields: dict[str, Any] = {"stage": name}
        if progress is not None:
            fields["progress"] = progress
        if not self.store.update(self.job.id, self.worker_id, **fields):
            raise LeaseLost("lease_lost", "another worker took over this job")

    def _stop_if(self, lease: Lease) -> None:
        if not lease.owned:
            self._stopped_reason = LeaseLost("lease_lost", "another worker took this job")
        elif lease.cancel_requested:
            self._stopped_reason = StopJob("cancelled", "deleted while running")
        self.check()

    def check(self) -> None:
        """Raise :class:`StopJob` if this job must stop now."""
        if self._stopped_reason is not None:
            raise self._stopped_reason
        if self.shutdown.is_set():
            raise Shutdown("shutdown", "the worker is shutting down")
        if time.monotonic() > self._deadline:
            raise StopJob(
                "timeout", f"the {self._stage} stage took longer than {self._timeout_s:g} s"
            )

    def progress(self, lo: int, hi: int) -> Callable[[float], None]:
        """A progress callback mapping the stage's fraction done to job progress lo..hi %."""
        last = [-1]

        def callback(fraction: float) -> None:
            self.check()
            pct = lo + round((hi - lo) * min(1.0, max(0.0, fraction)))
            if pct != last[0]:
                last[0] = pct
                # The same write reads the cancel flag: a DELETE stops the job at this step.
                self._stop_if(self.store.set_progress(self.job.id, self.worker_id, pct))

        return callback

    def _loop(self) -> None:
        interval = max(0.2, self.lease_s / 3)
        while not self._stop.wait(interval):
            try:
                lease = self.store.heartbeat(self.job.id, self.worker_id, lease_s=self.lease_s)
            except Exception:  # a busy database: try again next beat, the lease has slack
                log.warning("heartbeat for %s failed", self.job.id, exc_info=True)
                continue
            if not lease.owned:
                self._stopped_reason = LeaseLost("lease_lost", "another worker took this job")
            elif lease.cancel_requested:
                self._stopped_reason = StopJob("cancelled", "deleted while running")
            if time.monotonic() > self._deadline + self.grace_s:
                self._hard_stop()

    def _hard_stop(self) -> None:
        """The stage ignored the cooperative stop: fail the job and end the process."""
        message = f"the {self._stage} stage took longer than {self._timeout_s:g} s"
        log.error("job %s: %s; ending worker %s", self.job.id, message, self.worker_id)
        with contextlib.suppress(Exception):
            self.store.finish(
                self.job.id,
                self.worker_id,
                status="failed",
                error_code="timeout",
                error_message=message,
            )
        os._exit(EXIT_STAGE_OVERRUN)
