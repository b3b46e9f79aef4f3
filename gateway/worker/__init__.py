"""Video workers: the job runner, its lease and heartbeat, and the process pool.

* :mod:`gateway.worker.runner`: :class:`JobRunner` takes one claimed job through generate ->
  frame audit (+ encode) -> record -> release or withhold.
* :mod:`gateway.worker.components`: :class:`Components`, what a worker loads once (policies,
  audit log, frame classifiers, backends, the C2PA key), and the per-job inputs.
* :mod:`gateway.worker.lease`: :class:`Heartbeat` keeps a running job's lease and turns a
  cancellation, a lost lease, a shutdown or an overrun stage into :class:`StopJob`.
* :mod:`gateway.worker.pool`: :class:`WorkerPool` (``spawn``ed processes, restarted when one
  dies), each running :func:`worker_main`; :func:`wait_for_work` wakes an idle one.

The web process never runs a job: ``reelguard serve`` starts a pool next to the server, and
``reelguard worker`` (:mod:`gateway.commands.worker`) runs one alone.
"""

from gateway.worker.components import Components
from gateway.worker.lease import EXIT_STAGE_OVERRUN, Heartbeat, LeaseLost, Shutdown, StopJob
from gateway.worker.pool import WorkerPool, start_workers, wait_for_work, worker_main
from gateway.worker.runner import PROMPT_AUDIT_MISSING, JobRunner

__all__ = [
    "EXIT_STAGE_OVERRUN",
    "PROMPT_AUDIT_MISSING",
    "Components",
    "Heartbeat",
    "JobRunner",
    "LeaseLost",
    "Shutdown",
    "StopJob",
    "WorkerPool",
    "start_workers",
    "wait_for_work",
    "worker_main",
]
