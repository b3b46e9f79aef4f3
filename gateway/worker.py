"""Video worker processes: claim a job, generate, audit every shot, encode, record, release.

One job, in one readable place (:meth:`JobRunner.run`)::

    generate (progress 0-90 %) -> frame audit, while a thread encodes MP4 + thumbnail into
        quarantine/ (the same read-only frames; nothing leaves quarantine before the decision)
        -> record the frame audit (audit log) -> mark the job "decided"
        -> allow: move to released/, record the release, completed
           review/block: stay in quarantine, record the withholding, failed (output_moderation,
           or prompt_review when only the prompt was sent to review)

The web process never runs this: ``reelguard serve`` starts a :class:`WorkerPool` of separate
processes (``spawn``), and ``reelguard worker`` runs a pool alone. The pool restarts a worker
that dies. While a job runs, a heartbeat thread renews its lease, watches for cancellation and
for a stage that overruns its timeout; a cooperative check in the progress callback stops the
generator at the next step, and a stage that ignores it past a grace period ends the process
(the pool starts a fresh one), so no stage can hang a worker for ever.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from classifiers.base import Evidence
from gateway import metrics
from gateway.doorbell import DatabaseDoorbell
from gateway.jobs import (
    PEEK_QUEUED,
    JobStore,
    Lease,
    VideoJob,
    connect,
    videos_dir,
)
from gateway.options import db_option
from gateway.settings import Settings

log = logging.getLogger("reelguard.worker")

EXIT_STAGE_OVERRUN = 70
PROMPT_AUDIT_MISSING = "prompt_audit_missing"
"""Error code of a job a worker refused: no prompt decision allowing it in the audit log."""


class StopJob(Exception):
    """Raised inside a job (from the progress callback) to stop it at the next step."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LeaseLost(StopJob):
    """Another worker recovered this job; stop and write nothing."""


class Shutdown(StopJob):
    """The worker is stopping (SIGTERM): hand the job back to the queue."""


def decision_json(decision: Any) -> dict[str, Any]:
    """A policy :class:`~policies.decision.Decision` as plain JSON (reasons with evidence)."""
    return {
        "action": str(decision.action),
        "policy_version": decision.policy_version,
        "reasons": [_drop_none(asdict(r)) for r in (*decision.reasons, *decision.allowlisted)],
        "category_scores": dict(decision.category_scores),
    }


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return str(value) if isinstance(value, str) else value


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


class BackgroundEncode:
    """Runs ``work`` (the MP4 and thumbnail encode) on a thread started at construction.

    :meth:`wait` returns when it is done, re-raising its exception in the caller; ``check`` is
    called between short waits, so a cancelled job or an overrun stage still stops promptly.
    """

    def __init__(self, work: Callable[[], object]) -> None:
        self._work = work
        self._error: BaseException | None = None
        self.elapsed_s = 0.0
        self._thread = threading.Thread(target=self._run, name="encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t = time.perf_counter()
        try:
            self._work()
        except BaseException as exc:  # handed to the job's thread by wait()
            self._error = exc
        finally:
            self.elapsed_s = time.perf_counter() - t

    def wait(self, check: Callable[[], None], poll_s: float = 0.05) -> None:
        """Block until the work is done; raise its error, or what ``check`` raises meanwhile."""
        while self._thread.is_alive():
            check()
            self._thread.join(poll_s)
        if self._error is not None:
            raise self._error

    def join(self, timeout_s: float) -> None:
        """Wait at most ``timeout_s`` for the thread, ignoring its result."""
        self._thread.join(timeout_s)


@dataclass
class Components:
    """What a worker loads once and reuses for every job."""

    settings: Settings
    backends: dict[str, Any]
    policies: Any
    audit_log: Any
    frame_classifiers: Callable[[Any], Any]

    @classmethod
    def load(cls, settings: Settings) -> Components:
        """Open the policy store, the audit log and the frame classifiers (models load here)."""
        from audit.log import AuditLog
        from gateway.frame_audit import load_frame_classifiers
        from policies.store import PolicyStore

        policies = PolicyStore(
            settings.policy, settings.tenant_policy_dir, max_file_bytes=settings.policy_max_bytes
        )
        classifiers = load_frame_classifiers(settings)
        # Build the base policy's frame models now, not inside the first job's audit budget
        # (a model that fails to build is retried, and fails closed, at audit time).
        classifiers(policies.base)
        # Likewise the lexicon behind the minor-mention check (~60 ms on first use); if it
        # cannot load, every audit withholds and says why (JobRunner._audit).
        with contextlib.suppress(Exception):
            prompt_minor_mentions("a warm-up prompt")
        return cls(
            settings=settings,
            backends={},
            policies=policies,
            audit_log=AuditLog(settings.db),
            frame_classifiers=classifiers,
        )

    def backend(self, name: str) -> Any:
        """The generator backend ``name``, built on first use."""
        if name not in self.backends:
            from generator.registry import get_backend

            self.backends[name] = get_backend(self.settings, name)
        return self.backends[name]


class JobRunner:
    """Runs claimed jobs through the pipeline in one worker process."""

    def __init__(
        self,
        settings: Settings,
        components: Components,
        worker_id: str,
        shutdown: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.c = components
        self.worker_id = worker_id
        self.store = JobStore(settings.db)
        self.shutdown = shutdown or threading.Event()

    def run_next(self) -> bool:
        """Claim and run one job; False when the queue was empty."""
        job = self.store.claim(
            self.worker_id,
            lease_s=self.settings.video_lease_s,
            max_attempts=self.settings.video_max_attempts,
        )
        if job is None:
            return False
        self.run(job)
        return True

    def run(self, job: VideoJob) -> None:
        """Take one claimed job to completed or failed (or back to the queue on shutdown)."""
        self._run(job)
        with contextlib.suppress(Exception):  # metrics and the log line must not fail a job
            done = self.store.get(job.id)
            if done.status in ("completed", "failed"):
                metrics.observe_job(done)
                from gateway.logs import job_event

                job_event(done, worker_id=self.worker_id)

    def _run(self, job: VideoJob) -> None:
        if job.stage == "decided":
            log.info("job %s: finishing from its recorded decision", job.id)
            try:
                self._finalize(self.store.get(job.id))
            except Exception as exc:  # the decision stands; fail rather than loop on it
                log.exception("job %s: applying the recorded decision failed", job.id)
                self._fail(job, "release_failed", f"{type(exc).__name__}: {exc}")
            return
        why = self._unaudited(job)
        if why is not None:
            self._refuse(job, why)
            return
        s = self.settings
        with Heartbeat(
            self.store, job, self.worker_id, s.video_lease_s, self.shutdown, s.video_stage_grace_s
        ) as hb:
            try:
                self._pipeline(job, hb)
            except LeaseLost:
                metrics.count_lease_loss()
                log.warning("job %s: lease lost; another worker owns it now", job.id)
            except Shutdown:
                self._requeue(job)
            except StopJob as stop:
                self._fail(job, stop.code, str(stop))
            except Exception as exc:
                log.exception("job %s failed", job.id)
                self._fail(job, _error_code(exc), f"{type(exc).__name__}: {exc}")

    def _unaudited(self, job: VideoJob) -> str | None:
        """Why ``job`` must not be generated, judged by the audit log (not by the job row): its
        prompt decision is missing (e.g. a row written outside ``POST /v1/videos``), or it
        is a block. ``None`` when the recorded decision allows generating."""
        action = self.c.audit_log.prompt_decision(job.id)
        if action is None:
            return "its prompt decision is not in the audit log"
        if action == "block":
            return "its prompt decision in the audit log is block"
        return None

    def _refuse(self, job: VideoJob, why: str) -> None:
        """Fail closed before generating: record the refusal in the audit log, fail the job."""
        message = f"refused before generation: {why}; nothing was generated"
        log.error("job %s: %s", job.id, message)
        self.c.audit_log.record_release(
            job_id=job.id,
            tenant=job.tenant,
            action="withheld",
            path=None,
            reason=message,
            actor=f"worker:{self.worker_id}",
        )
        self._fail(job, PROMPT_AUDIT_MISSING, message)

    def _pipeline(self, job: VideoJob, hb: Heartbeat) -> None:
        from generator.base import VideoRequest
        from generator.encode import encode_mp4, write_thumbnail

        s = self.settings
        timings: dict[str, float] = {
            "queue_wait_s": (job.started_at or time.time()) - job.created_at
        }
        with contextlib.suppress(Exception):  # a bad edit: the store keeps the last good policy
            self.c.policies.reload_if_changed()
        policy = self.c.policies.get(job.tenant)
        backend = self.c.backend(job.model)
        request = VideoRequest(
            prompt=job.prompt,
            seconds=float(job.seconds),
            width=job.width,
            height=job.height,
            seed=job.seed,
        )

        hb.stage("generating", s.video_generate_timeout_s, progress=0)
        t, cpu = time.perf_counter(), time.process_time()
        output = backend.generate(request, hb.progress(0, 90))
        timings["generate_s"] = time.perf_counter() - t
        # Process CPU seconds (all threads) as well: wall times on a busy machine say more
        # about the neighbours than about us.
        timings["generate_cpu_s"] = time.process_time() - cpu

        # The encoder writes into quarantine/ on its own thread while the audit runs: the file
        # is not servable until _finalize moves it after an "allow", and both read the same
        # frames, made read-only here, so the MP4 holds exactly the frames that were audited.
        output.frames.flags.writeable = False
        hb.stage("auditing", s.video_audit_timeout_s, progress=90)
        t, cpu = time.perf_counter(), time.process_time()
        quarantine = videos_dir(s.data_dir, "quarantine")
        encoder = BackgroundEncode(
            lambda: (
                write_thumbnail(output.frames[0], quarantine / job.thumbnail_name),
                encode_mp4(output.frames, output.fps, quarantine / job.file_name),
            )
        )
        try:
            audit = self._audit(job, output, policy)
            timings["audit_s"] = time.perf_counter() - t
            timings.update({f"audit.{k}_s": v / 1000.0 for k, v in audit.timings_ms.items()})

            hb.stage("encoding", s.video_encode_timeout_s, progress=95)
            t_wait = time.perf_counter()
            encoder.wait(hb.check)
            timings["encode_wait_s"] = time.perf_counter() - t_wait
            timings["encode_s"] = encoder.elapsed_s
            timings["audit_encode_s"] = time.perf_counter() - t
            timings["audit_encode_cpu_s"] = time.process_time() - cpu
        finally:
            # Never leave the encoder writing behind a failed job (whose files _fail deletes).
            encoder.join(s.video_encode_timeout_s)

        hb.stage("recording", s.video_encode_timeout_s, progress=98)
        t = time.perf_counter()
        frame_moderation = self._record_audit(job, output, audit, timings)
        if not self.store.update(
            job.id,
            self.worker_id,
            stage="decided",
            frame_moderation=frame_moderation,
            timings=timings,
        ):
            raise LeaseLost("lease_lost", "another worker took over this job")
        # Decided: apply the decision; a cancellation that commits before the release wins
        # there (gateway.cancel), so the trail ends with the release, withholding or cancel.
        self._finalize(self.store.get(job.id), t_record=t)

    def _audit(self, job: VideoJob, output: Any, policy: Any) -> Any:
        """The frame audit; if it cannot run at all, a fail-closed block decision.

        The prompt's mentions of a child go with it, so a sexual frame score in a video whose
        prompt mentions a minor blocks as ``sexual/minors`` (the same rule as the prompt stage).
        """
        from gateway.frame_audit import audit_frames, failed_audit

        try:
            mentions = prompt_minor_mentions(job.prompt)
        except Exception as exc:  # unknown whether a minor is mentioned: withhold, say why
            log.exception("job %s: minor-mention check raised", job.id)
            return failed_audit(
                policy, f"the prompt's minor-mention check failed: {type(exc).__name__}: {exc}"
            )
        try:
            return audit_frames(
                output.frames,
                output.fps,
                policy,
                self.c.frame_classifiers(policy),
                timeout_s=self.settings.video_audit_timeout_s,
                minor_mentions=mentions,
            )
        except StopJob:
            raise
        except Exception as exc:  # fail closed: the video is withheld, and the log says why
            log.exception("frame audit raised")
            return failed_audit(policy, f"the frame audit failed: {type(exc).__name__}: {exc}")

    def _record_audit(
        self, job: VideoJob, output: Any, audit: Any, timings: dict[str, float]
    ) -> dict[str, Any]:
        """Write the frame audit to the audit log; return the job's ``frame_moderation``."""
        from audit.records import FrameAuditRecord
        from policies.decision import Action

        prompt_action = Action(job.prompt_moderation.get("action", "allow"))
        final = max(prompt_action, audit.decision.action, key=lambda a: a.severity)
        latency = {k.removesuffix("_s"): v * 1000.0 for k, v in timings.items()}
        thumbnails = self._evidence_thumbnails(job, output, audit)
        metrics.count_decision(job.tenant, "frame", audit.decision)
        self.c.audit_log.record_frame_audit(
            FrameAuditRecord(
                job_id=job.id,
                tenant=job.tenant,
                frames=audit.sampled,
                verdicts=audit.verdicts,
                decision=audit.decision,
                model_versions={
                    **audit.model_versions,
                    "generator": f"{output.backend}:{output.model_id}@seed={output.seed}",
                },
                latency_ms=latency,
                thumbnails=thumbnails,
                data_dir=self.settings.data_dir,
            )
        )
        return {
            **decision_json(audit.decision),
            "final_action": str(final),
            "sampled_frames": len(audit.sampled),
            "model_versions": dict(audit.model_versions),
            "generator": {
                "backend": output.backend,
                "model_id": output.model_id,
                "seed": output.seed,
                "fps": output.fps,
                "frames": int(output.frames.shape[0]),
                "understood": list(output.understood),
                "ignored": list(output.ignored),
            },
        }

    def _evidence_thumbnails(self, job: VideoJob, output: Any, audit: Any) -> dict[int, Path]:
        """JPEGs of the frames a review/block reason points at, for the reviewer (at most 16)."""
        from audit.evidence import write_thumbnail

        flagged = sorted(
            {
                e.frame_index
                for r in audit.decision.reasons
                for e in r.evidence
                if e.frame_index is not None and 0 <= e.frame_index < len(output.frames)
            }
        )[:16]
        thumbnails: dict[int, Path] = {}
        for index in flagged:
            try:
                thumbnails[index] = write_thumbnail(
                    self.settings.data_dir, job.id, index, output.frames[index]
                )
            except Exception:  # evidence is a convenience; the scores are recorded regardless
                log.warning("job %s: evidence thumbnail of frame %d failed", job.id, index)
        return thumbnails

    def _finalize(self, job: VideoJob, t_record: float | None = None) -> None:
        """Apply a recorded decision: release the file, or keep it quarantined (withheld).

        The release (or withholding) is recorded and the job ended in one transaction that
        first checks the job was not cancelled (:mod:`gateway.cancel`): a DELETE that came
        first wins, and the job ends ``cancelled`` with nothing released.
        """
        from gateway.cancel import JobCancelled, JobLost, release, withhold
        from gateway.webhooks import enqueue_event

        assert job.frame_moderation is not None, "only decided jobs are finalized"
        t = t_record if t_record is not None else time.perf_counter()
        actor = f"worker:{self.worker_id}"
        timings = dict(job.timings)
        allowed = job.frame_moderation.get("final_action") == "allow"
        data_dir = self.settings.data_dir
        try:
            if allowed:
                timings["record_s"] = time.perf_counter() - t
                release(
                    self.c.audit_log,
                    data_dir,
                    job,
                    self.worker_id,
                    reason="the frame audit allowed every sampled frame",
                    actor=actor,
                    timings=timings,
                )
            else:
                timings["record_s"] = time.perf_counter() - t
                code, reason = withhold_cause(job)
                withhold(
                    self.c.audit_log,
                    data_dir,
                    job,
                    self.worker_id,
                    code=code,
                    reason=reason,
                    actor=actor,
                    timings=timings,
                )
        except JobCancelled:
            self._cancelled(job, allowed)
            return
        except JobLost:
            metrics.count_lease_loss()
            log.warning("job %s: another worker owns it now; leaving it", job.id)
            return
        enqueue_event(self.settings, self.store.get(job.id))

    def _cancelled(self, job: VideoJob, allowed: bool) -> None:
        """End a decided job its owner cancelled before the release: nothing is released; an
        allowed video's files are removed, a withheld one's stay in quarantine as evidence."""
        from gateway.cancel import remove_files
        from gateway.webhooks import enqueue_event

        if allowed:
            remove_files(self.settings.data_dir, job)
            message = "deleted while running; the video was not released and its files are gone"
        else:
            message = (
                "deleted while running; not released (withheld by the output moderation), its "
                "files stay in quarantine as evidence"
            )
        log.info("job %s: cancelled by its owner before release", job.id)
        if self.store.finish(
            job.id, self.worker_id, status="failed", error_code="cancelled", error_message=message
        ):
            enqueue_event(self.settings, self.store.get(job.id))

    def _fail(self, job: VideoJob, code: str, message: str) -> None:
        """Fail a job that never reached a decision; its unaudited files are deleted."""
        from gateway.webhooks import enqueue_event

        if self.store.get(job.id).stage != "decided":  # audited files are evidence: keep them
            quarantine = videos_dir(self.settings.data_dir, "quarantine")
            for name in (job.file_name, job.thumbnail_name):
                (quarantine / name).unlink(missing_ok=True)
        if self.store.finish(
            job.id, self.worker_id, status="failed", error_code=code, error_message=message
        ):
            enqueue_event(self.settings, self.store.get(job.id))

    def _requeue(self, job: VideoJob) -> None:
        """Hand a job back to the queue (worker shutdown); this run does not count."""
        self.store.requeue(job.id, self.worker_id)


def prompt_minor_mentions(prompt: str) -> tuple[Evidence, ...]:
    """Evidence that ``prompt`` mentions a child, found exactly as the prompt stage finds it
    (normalised text, :func:`classifiers.text.lexicon.find_minor_mentions`).

    Recomputed from the job's stored prompt rather than read from its prompt record, so jobs
    queued before the record carried mentions get the rule too. Raises if the lexicon cannot
    be used (the caller withholds the video).
    """
    from classifiers.text.lexicon import find_minor_mentions
    from classifiers.text.normalize import normalize

    return tuple(find_minor_mentions(normalize(prompt)))


def _error_code(exc: Exception) -> str:
    from generator.base import BackendError, InvalidVideoRequest

    if isinstance(exc, InvalidVideoRequest):
        return "invalid_request"
    if isinstance(exc, BackendError):
        return "generation_failed"
    return "internal_error"


def withhold_cause(job: VideoJob) -> tuple[str, str]:
    """Why a decided video is withheld: ``(error code, message)``.

    ``output_moderation`` when the frame audit reviewed or blocked it (whatever the prompt);
    ``prompt_review`` when the frames passed but the prompt itself was sent to review.
    """
    frame = job.frame_moderation or {}
    parts = []
    for r in frame.get("reasons", [])[:5]:
        if r.get("action") not in ("review", "block"):
            continue
        ev = next((e for e in r.get("evidence", []) if "timestamp_s" in e), None)
        where = f" at {ev['timestamp_s']:.2f} s" if ev else ""
        parts.append(f"{r.get('category')} ({r.get('source')}, {r.get('action')}){where}")
    if frame.get("action", "block") != "allow" or parts:
        if job.prompt_moderation.get("action") == "review":
            parts.append("the prompt also needs human review")
        return "output_moderation", "withheld by the output moderation: " + (
            "; ".join(parts) or "not allowed"
        )
    prompt = [
        f"{r.get('category')} ({r.get('source')})"
        for r in job.prompt_moderation.get("reasons", [])
        if r.get("action") == "review"
    ][:5]
    return "prompt_review", (
        "withheld until a reviewer approves it: the prompt needs human review ("
        + ("; ".join(prompt) or "policy")
        + "); the frame audit found nothing"
    )


# -- processes ---------------------------------------------------------------------------------


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

    with DatabaseDoorbell(settings.db) as doorbell:
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
                    wait_for_work(runner.store, doorbell, settings.worker_poll_interval_s, shutdown)
                except Exception:  # e.g. a locked database: fall back to a plain pause
                    log.exception("waiting for work failed")
                    shutdown.wait(settings.worker_poll_interval_s)
    metrics.process_gone(os.getpid())
    log.info("worker %s stopped", worker_id)


def wait_for_work(
    store: JobStore,
    doorbell: DatabaseDoorbell,
    timeout_s: float,
    stop: threading.Event,
    *,
    tick_s: float = 0.1,
    min_gap_s: float = 0.01,
    settle_s: float = 0.001,
) -> None:
    """Return when a job is queued, ``stop`` is set, or ``timeout_s`` passes.

    With a working ``doorbell`` the wait sleeps until the database is written, then peeks (one
    indexed read on a connection held for the wait): a new job starts ~1 ms after its commit
    instead of half a 20 ms peek period later, and an idle worker wakes 10 times a second
    instead of 50. A write rings when its WAL frames are written, a moment before the commit is
    visible to readers, so the peek waits ``settle_s`` after the ring, and peeks once more
    ``min_gap_s`` later if it found nothing. It never peeks more often than every ``min_gap_s``,
    so a busy database (the moderation audit log) cannot make it spin, and it peeks every
    ``tick_s`` regardless (a filesystem that reports no writes costs latency, never a job).
    Without the doorbell it is :meth:`JobStore.wait_for_work` (20 ms peeks).
    """
    if not doorbell.available:
        store.wait_for_work(timeout_s, stop)
        return

    deadline = time.monotonic() + timeout_s
    conn = connect(store.db_path)
    try:
        # Forget the writes made so far (mostly this worker's own, from its last job): the
        # first peek below sees their commits, so waiting out a gap for them only adds latency.
        doorbell.wait(0.0)
        follow_up = False
        while not stop.is_set():
            peeked = time.monotonic()
            if conn.execute(PEEK_QUEUED).fetchone():
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
    finally:
        conn.close()


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


@click.command("worker")
@db_option
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Video folder with released/ and quarantine/ (default: REELGUARD_DATA_DIR).",
)
@click.option(
    "-n",
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default: REELGUARD_VIDEO_WORKERS, at least 1).",
)
def worker_command(db: Path, data_dir: Path | None, workers: int | None) -> None:
    """Run video workers alone (no HTTP): claim queued jobs from the database and run them.

    Use it on machines that only generate, next to `reelguard serve --workers 0`. Stop with
    Ctrl-C or SIGTERM: running jobs go back to the queue.
    """
    overrides: dict[str, Any] = {"db": db}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)
    count = workers or max(1, settings.video_workers)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    JobStore(settings.db)  # create the table (and fail here, clearly, on a bad path)
    from policies.loader import PolicyError
    from policies.store import PolicyStore

    try:  # the same check `serve` makes: a bad policy stops here, not in a restart loop
        PolicyStore(
            settings.policy, settings.tenant_policy_dir, max_file_bytes=settings.policy_max_bytes
        )
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load, so no job can run:\n{exc}") from None
    from gateway.logs import configure_logging

    configure_logging(settings)
    metrics.prepare_dir(metrics.setup(settings))  # before the workers inherit the folder
    stop_metrics = metrics.serve_port(settings)
    pool = start_workers(settings, count)
    assert pool is not None
    try:
        with pool:
            click.echo(f"reelguard worker: {count} process(es) on {settings.db}", err=True)
            stop.wait()
    finally:
        if stop_metrics is not None:
            stop_metrics()
