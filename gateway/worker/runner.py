"""One job, in one readable place (:meth:`JobRunner.run`)::

    generate (progress 0-90 %) -> frame audit, while a thread encodes MP4 + thumbnail into
        quarantine/ (the same read-only frames; nothing leaves quarantine before the decision)
        -> record the frame audit (audit log) -> mark the job "decided"
        -> allow: move to released/, record the release, completed
           review/block: stay in quarantine, record the withholding, failed (output_moderation,
           or prompt_review when only the prompt was sent to review)

The files live in the object store (:mod:`storage.objects`: the data folder or an S3 bucket);
a store that cannot be reached fails the job (``storage_unavailable``, or ``release_failed`` for
a decided job) and releases nothing.

A job is generated only when its prompt decision in the audit log allows it; a job whose worker
died is recovered by the next claim (a ``decided`` one is finished from its recorded decision,
anything earlier is run again). The lease and the stops are in :mod:`gateway.worker.lease`,
the processes in :mod:`gateway.worker.pool`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.evidence import flagged_thumbnails
from config.settings import Settings
from gateway import metrics
from gateway.jobs import JobStore, VideoJob, video_key
from gateway.worker.components import (
    Components,
    job_conditioning,
    prompt_minor_mentions,
)
from gateway.worker.lease import Heartbeat, LeaseLost, Shutdown, StopJob
from generator.base import VideoOutput
from policies.resolved import ResolvedPolicy
from storage import StorageError
from storage.objects import ObjectStoreUnavailable, object_store

IDLE_SWEEP_INTERVAL_S = 600.0
"""How often an idle worker repeats the after-job sweep (source clips of ended jobs, character
retention, deletes the store failed) and asks for its turn at the storage sweep."""

if TYPE_CHECKING:
    from gateway.frame_audit import FrameAuditResult
    from gateway.storage_sweep import SweepReport

log = logging.getLogger("reelguard.worker")

PROMPT_AUDIT_MISSING = "prompt_audit_missing"
"""Error code of a job a worker refused: no prompt decision allowing it in the audit log."""


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
        self.store = JobStore(settings.database)
        self.files = object_store(settings)
        self.shutdown = shutdown or threading.Event()
        self._last_sweep = float("-inf")  # a worker that starts idle sweeps once at once
        self.last_storage_sweep: SweepReport | None = None
        """What this worker's last storage sweep did (None: it has not had a turn)."""

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
        self._drop_sources()
        self._last_sweep = time.monotonic()
        with contextlib.suppress(Exception):  # metrics and the log line must not fail a job
            done = self.store.get(job.id)
            if done.status in ("completed", "failed"):
                metrics.observe_job(done)
                from gateway.logs import job_event

                job_event(done, worker_id=self.worker_id)

    def sweep_when_idle(self) -> bool:
        """Run the after-job sweep (:meth:`_drop_sources`) on an idle worker when the last one is
        older than :data:`IDLE_SWEEP_INTERVAL_S`: without it a deployment with no new jobs would
        never expire characters or finish failed deletes; then the storage sweep, when this
        worker gets the deployment's turn (:meth:`_sweep_store`). True when it ran."""
        if time.monotonic() - self._last_sweep < IDLE_SWEEP_INTERVAL_S:
            return False
        self._drop_sources()
        self._sweep_store()
        self._last_sweep = time.monotonic()
        return True

    def _sweep_store(self) -> None:
        """Delete what failed deletes left in the store (evidence of purged audit rows,
        released videos' quarantined originals: :func:`gateway.storage_sweep.sweep`, objects
        older than a day) when :func:`gateway.storage_sweep.claim` gives this worker the turn:
        one idle worker of the deployment an hour. Only on an idle worker: it lists the store."""
        from gateway.storage_sweep import SWEEP_OLDER_THAN_S, claim, sweep

        database = self.store.database
        try:
            if not claim(database, self.worker_id):
                return
            report = sweep(database, self.files, older_than_s=SWEEP_OLDER_THAN_S)
        except Exception:  # never ends the worker: the next turn tries again
            log.exception("the storage sweep failed")
            return
        self.last_storage_sweep = report
        if report.evidence or report.leftovers:
            log.info(
                "storage sweep: deleted %d purged evidence object(s), %d release leftover(s)",
                len(report.evidence),
                len(report.leftovers),
            )
        for line in report.failed:  # left for the next turn
            log.warning("storage sweep: cannot delete %s", line)

    def _drop_sources(self) -> None:
        """Delete the source clips of every ended job (this one, and any a cancellation or
        an exhausted lease ended): :func:`gateway.source_clips.drop_ended_sources`; and the
        characters past ``REELGUARD_CHARACTER_RETENTION_DAYS`` and deleted characters' files
        still stored (:func:`gateway.character_store.sweep_characters`)."""
        from gateway.character_store import sweep_characters
        from gateway.source_clips import drop_ended_sources

        try:
            drop_ended_sources(self.store.database, self.files)
        except Exception:  # never fails a job: the next job's sweep tries again
            log.exception("deleting ended jobs' source clips failed")
        try:
            swept = sweep_characters(
                self.c.audit_log, self.files, self.settings.character_retention_days
            )
            if swept:
                log.info("characters deleted or their files removed: %s", ", ".join(swept))
        except Exception:  # never fails a job: the next job's sweep tries again
            log.exception("the characters' retention sweep failed")

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
            conditioning=job_conditioning(job, self.files),
        )

        hb.stage("generating", s.video_generate_timeout_s, progress=0)
        t, cpu = time.perf_counter(), time.process_time()
        output = backend.generate(request, hb.progress(0, 90))
        timings["generate_s"] = time.perf_counter() - t
        # Process CPU seconds (all threads) as well: wall times on a busy machine say more
        # about the neighbours than about us.
        timings["generate_cpu_s"] = time.process_time() - cpu
        if self.c.watermark is not None:
            # Burned in before the audit, not after: the audit then judges exactly the frames
            # the MP4 holds (nothing served differs from what was audited), and a watermark
            # that could change a score is judged with the video rather than trusted blindly.
            t = time.perf_counter()
            output = replace(output, frames=self.c.watermark.apply(output.frames))
            timings["watermark_s"] = time.perf_counter() - t

        # The encoder writes into quarantine/ on its own thread while the audit runs: the file
        # is not servable until _finalize moves it after an "allow", and both read the same
        # frames, made read-only here, so the MP4 holds exactly the frames that were audited.
        output.frames.flags.writeable = False
        hb.stage("auditing", s.video_audit_timeout_s, progress=90)
        t, cpu = time.perf_counter(), time.process_time()

        def encode() -> None:
            with self.files.writing(video_key("quarantine", job.thumbnail_name)) as poster:
                write_thumbnail(output.frames[0], poster)
            with self.files.writing(video_key("quarantine", job.file_name)) as mp4:
                encode_mp4(output.frames, output.fps, mp4)

        encoder = BackgroundEncode(encode)
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
        t_sign = time.perf_counter()
        self._sign(job, output, audit, video_key("quarantine", job.file_name))
        timings["sign_s"] = time.perf_counter() - t_sign

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

    def _sign(self, job: VideoJob, output: VideoOutput, audit: FrameAuditResult, key: str) -> None:
        """Embed the C2PA manifest in the quarantined MP4 ``key`` (see
        :mod:`generator.provenance`): in place in a local folder; in an object store, signed in
        a temporary copy that replaces the quarantined object (still unreleased).

        Without a key the video stays unsigned (the worker said so at start-up). A signing
        failure of a video the frame audit allowed withholds it when
        ``REELGUARD_C2PA_REQUIRED`` is true (recorded, then the job fails
        ``provenance_failed``: nothing is released); otherwise it is logged and the video
        goes on unsigned.
        """
        from gateway.worker.ingredients import source_ingredients
        from generator.provenance import Provenance, ProvenanceError, sign_mp4

        signing_key = self.c.signing_key
        if signing_key is None:
            return
        info = Provenance(
            job_id=job.id,
            policy_version=audit.policy_version,
            backend=output.backend,
            model_id=output.model_id,
            seed=output.seed,
            remixed_from=job.remixed_from,
            ingredients=source_ingredients(job, self.store, self.files),
        )
        try:
            local = self.files.local_path(key)
            if local is not None:
                sign_mp4(local, info, signing_key)
            else:
                with tempfile.TemporaryDirectory(prefix="reelguard-sign-") as folder:
                    copy = Path(folder) / job.file_name
                    copy.write_bytes(self.files.get_bytes(key))
                    sign_mp4(copy, info, signing_key)
                    self.files.put_file(key, copy)
        except ProvenanceError as exc:
            if not self.settings.c2pa_required or not audit.released:
                # Unsigned but allowed by settings, or withheld anyway (its frame audit is
                # still recorded as evidence).
                log.error("job %s: not signed: %s", job.id, exc)
                return
            message = f"withheld: the C2PA signature is required and failed ({exc})"
            self.c.audit_log.record_release(
                job_id=job.id,
                tenant=job.tenant,
                action="withheld",
                path=None,
                reason=message,
                actor=f"worker:{self.worker_id}",
            )
            raise StopJob("provenance_failed", message) from None

    def _audit(
        self, job: VideoJob, output: VideoOutput, policy: ResolvedPolicy
    ) -> FrameAuditResult:
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
        self, job: VideoJob, output: VideoOutput, audit: FrameAuditResult, timings: dict[str, float]
    ) -> dict[str, Any]:
        """Write the frame audit to the audit log; return the job's ``frame_moderation``."""
        from audit.records import FrameAuditRecord
        from policies.decision import Action

        prompt_action = Action(job.prompt_moderation.get("action", "allow"))
        input_action = Action((job.input_moderation or {}).get("action", "allow"))
        final = max(prompt_action, input_action, audit.decision.action, key=lambda a: a.severity)
        latency = {k.removesuffix("_s"): v * 1000.0 for k, v in timings.items()}
        thumbnails = flagged_thumbnails(self.files, job.id, output.frames, audit.decision)
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
            )
        )
        return {
            **audit.decision.as_json(),
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
        try:
            if allowed:
                timings["record_s"] = time.perf_counter() - t
                release(
                    self.c.audit_log,
                    self.files,
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
                    self.files,
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
        enqueue_event(self.settings, self.store.get(job.id), database=self.store.database)

    def _cancelled(self, job: VideoJob, allowed: bool) -> None:
        """End a decided job its owner cancelled before the release: nothing is released; an
        allowed video's files are removed, a withheld one's stay in quarantine as evidence."""
        from gateway.cancel import remove_files
        from gateway.webhooks import enqueue_event

        if allowed:
            try:
                remove_files(self.files, job)
            except StorageError as exc:  # unreleased and never servable; only space is lost
                log.warning("job %s: cannot delete its files now: %s", job.id, exc)
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
            enqueue_event(self.settings, self.store.get(job.id), database=self.store.database)

    def _fail(self, job: VideoJob, code: str, message: str) -> None:
        """Fail a job that never reached a decision; its unaudited files are deleted."""
        from gateway.webhooks import enqueue_event

        if self.store.get(job.id).stage != "decided":  # audited files are evidence: keep them
            for name in (job.file_name, job.thumbnail_name):
                try:
                    self.files.delete(video_key("quarantine", name))
                except StorageError as exc:  # quarantined files are never served
                    log.warning("job %s: cannot delete unaudited %s: %s", job.id, name, exc)
        if self.store.finish(
            job.id, self.worker_id, status="failed", error_code=code, error_message=message
        ):
            enqueue_event(self.settings, self.store.get(job.id), database=self.store.database)

    def _requeue(self, job: VideoJob) -> None:
        """Hand a job back to the queue (worker shutdown); this run does not count."""
        self.store.requeue(job.id, self.worker_id)


def _error_code(exc: Exception) -> str:
    from generator.base import BackendError, InvalidVideoRequest

    if isinstance(exc, InvalidVideoRequest):
        return "invalid_request"
    if isinstance(exc, BackendError):
        return "generation_failed"
    if isinstance(exc, ObjectStoreUnavailable):
        return "storage_unavailable"
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
    input_review = (job.input_moderation or {}).get("action") == "review"
    if frame.get("action", "block") != "allow" or parts:
        if job.prompt_moderation.get("action") == "review":
            parts.append("the prompt also needs human review")
        if input_review:
            parts.append("the reference image also needs human review")
        return "output_moderation", "withheld by the output moderation: " + (
            "; ".join(parts) or "not allowed"
        )
    prompt = [
        f"{r.get('category')} ({r.get('source')})"
        for r in job.prompt_moderation.get("reasons", [])
        if r.get("action") == "review"
    ][:5]
    if input_review and job.prompt_moderation.get("action") != "review":
        image = [
            f"{r.get('category')} ({r.get('message')})"
            for r in (job.input_moderation or {}).get("reasons", [])
            if r.get("action") == "review"
        ][:5]
        return "prompt_review", (
            "withheld until a reviewer approves it: the reference image needs human review ("
            + ("; ".join(image) or "policy")
            + "); the frame audit found nothing"
        )
    return "prompt_review", (
        "withheld until a reviewer approves it: the prompt needs human review ("
        + ("; ".join(prompt) or "policy")
        + "); the frame audit found nothing"
    )
