"""The video job store: a persistent queue in the shared database, used by web and worker processes.

A job's life, and who moves it::

    queued ──claim──▶ in_progress ──▶ completed   (frame audit allowed it: file in released/)
       │                 │        └─▶ failed      (generation error, timeout, cancelled, or
       │                 │                          withheld by the frame audit: output_moderation)
       └─cancel─▶ failed └─lease expired─▶ re-run once more, or failed (worker_lost)
                         └─cancel─▶ failed (cancelled; see gateway.cancel: the release re-checks)

Inside ``in_progress`` the ``stage`` column says how far the worker got: ``generating``,
``auditing``, ``encoding``, ``recording`` and ``decided``. ``decided`` means the frame-audit
decision is in the audit log *and* in this row; only then may a file leave quarantine. A worker
holds a job through a lease it renews (heartbeat); when a worker dies (kill -9), its lease runs
out and the next :meth:`JobStore.claim` recovers the job: a ``decided`` job is finished from the
recorded decision, anything earlier is run again from scratch (its partial files stay in
quarantine) or failed once its attempts are used up. So no job stays stuck and none is released
without its audit.

Errors (all subclasses of :class:`JobError`)::

    JobError
    ├── QueueFull            the queue holds ``queue_max`` jobs; retry after ``retry_after_s``
    ├── IdempotencyConflict  an Idempotency-Key reused with a different request body
    ├── JobNotFound          no such job (or it belongs to another tenant, or was deleted)
    ├── NotWithheld          a review (gateway.review) of a job that is not withheld
    ├── EndedByOwner         a review of a video or character its owner deleted or cancelled
    └── MissingVideoFile     the MP4 is in neither quarantine/ nor released/
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gateway.job_records import (
    EndedByOwner,
    IdempotencyConflict,
    JobError,
    JobNotFound,
    JobStatus,
    Lease,
    MissingVideoFile,
    NewJob,
    NotWithheld,
    Page,
    QueueFull,
    Release,
    Stage,
    VideoJob,
    row_to_job,
)
from storage import Database, Tx
from storage.database import split_statements
from storage.objects import ObjectMissing, ObjectStore, as_object_store

if TYPE_CHECKING:
    from audit.log import AuditLog
    from audit.records import ModerationRecord


RELEASED_DIR = "released"
QUARANTINE_DIR = "quarantine"

_SCHEMA = split_statements("""
CREATE TABLE IF NOT EXISTS video_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seconds TEXT NOT NULL,
    size TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL,
    stage TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    updated_at REAL NOT NULL,
    error_code TEXT,
    error_message TEXT,
    prompt_moderation TEXT NOT NULL,
    frame_moderation TEXT,
    policy_version TEXT NOT NULL,
    release TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    worker_id TEXT,
    lease_expires_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL,
    timings TEXT NOT NULL DEFAULT '{}',
    remixed_from TEXT,
    input_moderation TEXT,
    input_image TEXT,
    source_clip TEXT,
    source_dropped TEXT,
    character_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS video_jobs_idempotency
    ON video_jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS video_jobs_queue ON video_jobs (status, seq);
CREATE INDEX IF NOT EXISTS video_jobs_tenant ON video_jobs (tenant, seq);
""")
_ADDED_COLUMNS = (
    "remixed_from",
    "input_moderation",
    "input_image",
    "source_clip",
    "source_dropped",
    "character_id",
)
"""Columns added after the first release (all TEXT, NULL for older rows): a database made
before them gets them at start-up (:meth:`JobStore._add_columns`)."""


JOBS_CHANNEL = "reelguard_jobs"
"""The PostgreSQL ``LISTEN``/``NOTIFY`` channel a job store rings when it queues a job; idle
workers listen on it (:func:`gateway.doorbell.open_doorbell`)."""

PEEK_QUEUED = "SELECT 1 FROM video_jobs WHERE status = 'queued' LIMIT 1"
"""The indexed read an idle worker peeks at the queue with (microseconds)."""


class JobStore:
    """The ``video_jobs`` table. Each call is one transaction, so one store can be shared by
    threads, and any number of processes can use the same database.

    Given a path, the store opens it with ``durable=False`` (job bookkeeping may lose its last
    commits on power loss, never on a crash); the web process passes its shared
    :class:`~storage.Database` instead.
    """

    def __init__(self, database: Database | Path | str) -> None:
        if isinstance(database, Database):
            self.database = database
        else:
            self.database = Database.from_url(database, durable=False)
        self.db_path = self.database.path
        """The SQLite file (``None`` on PostgreSQL)."""
        self.database.create_schema(_SCHEMA)
        self._add_columns()

    def _add_columns(self) -> None:
        """Bring a ``video_jobs`` table made by an older version up to date (idempotent)."""
        with self.database.transaction(write=True) as tx:
            tx.add_columns("video_jobs", [(n, "TEXT") for n in _ADDED_COLUMNS])
            # Made here, after the columns it names exist: the jobs whose source clip is
            # still stored (gateway.source_clips sweeps the ended ones), a few at any time.
            tx.execute(
                "CREATE INDEX IF NOT EXISTS video_jobs_sources ON video_jobs (seq) "
                "WHERE source_clip IS NOT NULL AND source_dropped IS NULL"
            )

    # -- web process ---------------------------------------------------------------------------

    def create(
        self,
        new: NewJob,
        *,
        queue_max: int,
        workers: int = 1,
        audit: AuditLog | None = None,
        prompt_record: ModerationRecord | None = None,
    ) -> tuple[VideoJob, bool]:
        """Enqueue a job; returns ``(job, created)``.

        With ``audit`` and ``prompt_record``, the job row and its prompt record (``job_id``
        set to the new job) commit in one transaction on the audit log's connection (same
        database file), so no crash can leave a queued job without its prompt decision on
        record; if the record cannot be written, no job exists. Workers refuse a job whose
        prompt decision is not in the log (:meth:`gateway.worker.JobRunner.run`), so a job
        created without them (tests of the queue alone) is never generated.

        With an idempotency key already used by this tenant, returns the existing job and
        ``created=False`` (or raises :class:`IdempotencyConflict` if the request differs).
        Raises :class:`QueueFull` when ``queue_max`` jobs are already waiting.
        """
        if (audit is None) != (prompt_record is None):
            raise ValueError("create() takes audit and prompt_record together, or neither")
        if audit is None or prompt_record is None:
            with self.database.transaction(write=True) as tx:
                return self._insert(tx, new, queue_max, workers)
        with audit.transaction() as tx:
            job, created = self._insert(tx, new, queue_max, workers)
            if created:
                audit.record_moderation(replace(prompt_record, job_id=job.id))
            return job, created

    def _insert(self, tx: Tx, new: NewJob, queue_max: int, workers: int) -> tuple[VideoJob, bool]:
        """The body of :meth:`create`, inside the caller's write transaction ``tx``."""
        now = time.time()
        if new.idempotency_key is not None:
            row = tx.record(
                "SELECT * FROM video_jobs WHERE tenant = ? AND idempotency_key = ?",
                (new.tenant, new.idempotency_key),
            )
            if row is not None:
                if row["request_hash"] != new.request_hash:
                    raise IdempotencyConflict(
                        f"Idempotency-Key {new.idempotency_key!r} was used for a different "
                        "request; send a new key for a new video"
                    )
                return row_to_job(row), False
        queued = tx.value("SELECT count(*) FROM video_jobs WHERE status = 'queued'")
        if queued >= queue_max:
            raise QueueFull(queued, queue_max, self._retry_after(tx, queued, workers))
        job_id = "video_" + secrets.token_hex(16)
        tx.execute(
            """INSERT INTO video_jobs (id, tenant, model, prompt, seconds, size, width, height,
               seed, status, stage, progress, created_at, updated_at, prompt_moderation,
               policy_version, idempotency_key, request_hash, remixed_from, input_moderation,
               input_image, source_clip, character_id)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 'queued', 0, ?, ?, ?, ?, ?, ?,
                       ?, ?, ?, ?, ?)""",
            (
                job_id,
                new.tenant,
                new.model,
                new.prompt,
                new.seconds,
                new.size,
                new.width,
                new.height,
                new.seed,
                now,
                now,
                json.dumps(new.prompt_moderation),
                new.policy_version,
                new.idempotency_key,
                new.request_hash,
                new.remixed_from,
                None if new.input_moderation is None else json.dumps(new.input_moderation),
                new.input_image,
                None if new.source_clip is None else json.dumps(new.source_clip),
                new.character_id,
            ),
        )
        _ring(tx)
        return read_job(tx, job_id), True

    @staticmethod
    def _retry_after(tx: Tx, queued: int, workers: int) -> int:
        """Seconds until a queue slot frees up, from the last jobs' run times."""
        rows = tx.execute(
            """SELECT completed_at - started_at FROM video_jobs
               WHERE completed_at IS NOT NULL AND started_at IS NOT NULL
               ORDER BY seq DESC LIMIT 20"""
        ).fetchall()
        durations = [r[0] for r in rows if r[0] is not None and r[0] > 0]
        mean = sum(durations) / len(durations) if durations else 30.0
        # One slot frees when the oldest waiting job starts: about one job time per worker.
        return max(1, min(3600, round(mean / max(1, workers))))

    def find_idempotent(self, tenant: str, key: str) -> VideoJob | None:
        """The tenant's job created with this Idempotency-Key, if any."""
        with self.database.transaction() as tx:
            row = tx.record(
                "SELECT * FROM video_jobs WHERE tenant = ? AND idempotency_key = ?", (tenant, key)
            )
        return row_to_job(row) if row is not None else None

    def get(self, job_id: str, tenant: str | None = None) -> VideoJob:
        """A job by id; with ``tenant``, only that tenant's live (not deleted) job."""
        with self.database.transaction() as tx:
            row = tx.record("SELECT * FROM video_jobs WHERE id = ?", (job_id,))
        if row is None or (tenant is not None and (row["tenant"] != tenant or row["deleted_at"])):
            raise JobNotFound(f"no video {job_id!r}")
        return row_to_job(row)

    def list(
        self,
        tenant: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> Page:
        """A page of the tenant's live jobs, after the job ``after`` in the chosen order."""
        cmp, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
        params: list[Any] = [tenant]
        where = "tenant = ? AND deleted_at IS NULL"
        with self.database.transaction() as tx:
            if after is not None:
                anchor = tx.value(
                    "SELECT seq FROM video_jobs WHERE id = ? AND tenant = ?", (after, tenant)
                )
                if anchor is None:
                    raise JobNotFound(f"no video {after!r} to page after")
                where += f" AND seq {cmp} ?"
                params.append(anchor)
            rows = tx.records(
                f"SELECT * FROM video_jobs WHERE {where} ORDER BY seq {direction} LIMIT ?",
                (*params, limit + 1),
            )
        return Page(tuple(row_to_job(r) for r in rows[:limit]), has_more=len(rows) > limit)

    def queued_count(self) -> int:
        """Jobs waiting for a worker."""
        with self.database.transaction() as tx:
            return int(tx.value("SELECT count(*) FROM video_jobs WHERE status = 'queued'"))

    def status_counts(self, statuses: Sequence[str]) -> dict[str, int]:
        """How many jobs are in each of ``statuses`` now (a status with none is absent)."""
        marks = ", ".join("?" * len(statuses))
        with self.database.transaction() as tx:
            rows = tx.all(
                f"SELECT status, count(*) FROM video_jobs WHERE status IN ({marks}) "
                "GROUP BY status",
                tuple(statuses),
            )
        return {status: int(n) for status, n in rows}

    def has_queued(self) -> bool:
        """Whether any job waits for a worker: the one indexed read an idle worker peeks with
        (microseconds, on a pooled connection)."""
        with self.database.transaction() as tx:
            return tx.one(PEEK_QUEUED) is not None

    # -- worker processes ----------------------------------------------------------------------

    def claim(self, worker_id: str, *, lease_s: float, max_attempts: int) -> VideoJob | None:
        """Take the next job for ``worker_id``: first a job whose worker died, else the oldest
        queued one. Returns ``None`` when there is nothing to do.

        A recovered job keeps its stage: the caller finishes a ``decided`` job from the recorded
        decision and runs any other from scratch. A recovered job that already had
        ``max_attempts`` runs fails (``worker_lost``) instead of being run again.
        """
        # Run again if the server aborts it for a deadlock: the expiry UPDATE below locks
        # every expired row it matches, the only statement here locking more than one row.
        return self.database.write(lambda tx: self._claim(tx, worker_id, lease_s, max_attempts))

    def _claim(self, tx: Tx, worker_id: str, lease_s: float, max_attempts: int) -> VideoJob | None:
        now = time.time()
        self._fail_exhausted(tx, now, max_attempts)
        claim = tx.dialect.skip_locked
        row = tx.record(
            """SELECT * FROM video_jobs
               WHERE status = 'in_progress' AND lease_expires_at < ?
               ORDER BY seq LIMIT 1"""
            + claim,
            (now,),
        )
        if row is None:
            row = tx.record(
                "SELECT * FROM video_jobs WHERE status = 'queued' ORDER BY seq LIMIT 1" + claim
            )
        if row is None:
            return None
        recovering = row["status"] == "in_progress"
        stage = row["stage"] if recovering and row["stage"] == "decided" else "generating"
        attempts = row["attempts"] + (0 if stage == "decided" else 1)
        tx.execute(
            """UPDATE video_jobs SET status = 'in_progress', stage = ?, worker_id = ?,
               lease_expires_at = ?, attempts = ?, started_at = coalesce(started_at, ?),
               updated_at = ? WHERE id = ?""",
            (stage, worker_id, now + lease_s, attempts, now, now, row["id"]),
        )
        return read_job(tx, row["id"])

    @staticmethod
    def _fail_exhausted(tx: Tx, now: float, max_attempts: int) -> None:
        """Fail expired jobs whose worker died on their last allowed attempt (not decided ones:
        those only need their recorded decision applied), and expired cancelled jobs."""
        tx.execute(
            """UPDATE video_jobs SET status = 'failed', stage = 'done', progress = progress,
               error_code = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'worker_lost' END,
               error_message = CASE WHEN cancel_requested = 1 THEN 'deleted while running'
                   ELSE 'the worker running this job stopped ' || attempts || ' time(s)' END,
               completed_at = ?, updated_at = ?, worker_id = NULL, lease_expires_at = NULL
               WHERE status = 'in_progress' AND lease_expires_at < ? AND stage != 'decided'
               AND (attempts >= ? OR cancel_requested = 1)""",
            (now, now, now, max_attempts),
        )

    def heartbeat(self, job_id: str, worker_id: str, *, lease_s: float) -> Lease:
        """Renew the lease; tells the worker whether it still owns the job and if it was
        cancelled. A worker that lost its lease must stop without writing anything."""
        now = time.time()
        with self.database.transaction(write=True) as tx:
            cur = tx.execute(
                """UPDATE video_jobs SET lease_expires_at = ?, updated_at = ?
                   WHERE id = ? AND worker_id = ? AND status = 'in_progress'""",
                (now + lease_s, now, job_id, worker_id),
            )
            cancel = tx.value("SELECT cancel_requested FROM video_jobs WHERE id = ?", (job_id,))
        return Lease(owned=cur.rowcount == 1, cancel_requested=bool(cancel))

    def set_progress(self, job_id: str, worker_id: str, progress: int) -> Lease:
        """Record a running job's progress; says, from the same write, whether this worker
        still owns the job and whether its owner cancelled it (so it stops at this step)."""
        now = time.time()
        with self.database.transaction(write=True) as tx:
            cur = tx.execute(
                """UPDATE video_jobs SET progress = ?, updated_at = ?
                   WHERE id = ? AND worker_id = ? AND status = 'in_progress'""",
                (progress, now, job_id, worker_id),
            )
            cancel = tx.value("SELECT cancel_requested FROM video_jobs WHERE id = ?", (job_id,))
        return Lease(owned=cur.rowcount == 1, cancel_requested=bool(cancel))

    def update(self, job_id: str, worker_id: str, **fields: Any) -> bool:
        """Set columns of a job this worker owns (``stage``, ``progress``, ``timings``...).

        JSON columns take dicts. Returns False (and writes nothing) if the worker lost the job.
        """
        for key in ("frame_moderation", "timings"):
            if key in fields and not isinstance(fields[key], str | None):
                fields[key] = json.dumps(fields[key])
        fields["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.database.transaction(write=True) as tx:
            cur = tx.execute(
                f"UPDATE video_jobs SET {assignments} "
                "WHERE id = ? AND worker_id = ? AND status = 'in_progress'",
                (*fields.values(), job_id, worker_id),
            )
        return cur.rowcount == 1

    def requeue(self, job_id: str, worker_id: str) -> bool:
        """Hand a job back to the queue (its worker is shutting down); the run does not count.

        Anything the run left in quarantine is overwritten by the next run.
        """
        now = time.time()
        attempts = self.database.dialect.greatest("0", "attempts - 1")
        with self.database.transaction(write=True) as tx:
            cur = tx.execute(
                f"""UPDATE video_jobs SET status = 'queued', stage = 'queued', progress = 0,
                   worker_id = NULL, lease_expires_at = NULL, attempts = {attempts},
                   updated_at = ?
                   WHERE id = ? AND worker_id = ? AND status = 'in_progress'
                   AND stage != 'decided'""",
                (now, job_id, worker_id),
            )
            if cur.rowcount == 1:
                _ring(tx)
        return cur.rowcount == 1

    def finish(
        self,
        job_id: str,
        worker_id: str,
        *,
        status: Literal["completed", "failed"],
        error_code: str | None = None,
        error_message: str | None = None,
        release: Release | None = None,
        timings: dict[str, float] | None = None,
    ) -> bool:
        """End a job this worker owns. Returns False if it lost the job meanwhile."""
        now = time.time()
        fields: dict[str, Any] = {
            "status": status,
            "stage": "done",
            "error_code": error_code,
            "error_message": error_message,
            "completed_at": now,
            "lease_expires_at": None,
        }
        if status == "completed":
            fields["progress"] = 100
        if release is not None:
            fields["release"] = release
        if timings is not None:
            fields["timings"] = timings
        return self.update(job_id, worker_id, **fields)


def _ring(tx: Tx) -> None:
    """Wake idle workers when ``tx`` commits a queued job (PostgreSQL ``NOTIFY``; on SQLite the
    commit itself is what the workers' inotify doorbell sees)."""
    statement = tx.dialect.notify(JOBS_CHANNEL)
    if statement is not None:
        tx.execute(statement)


def read_job(tx: Tx, job_id: str) -> VideoJob:
    """The job ``job_id`` as ``tx`` sees it; :class:`JobNotFound` when there is none."""
    row = tx.record("SELECT * FROM video_jobs WHERE id = ?", (job_id,))
    if row is None:
        raise JobNotFound(f"no video {job_id!r}")
    return row_to_job(row)


def videos_dir(data_dir: Path, kind: Literal["released", "quarantine"]) -> Path:
    """``data_dir/released`` or ``data_dir/quarantine``, created on first use (the local
    folder store; use :func:`video_key` with an :class:`~storage.objects.ObjectStore`)."""
    path = Path(data_dir) / (RELEASED_DIR if kind == "released" else QUARANTINE_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def video_key(kind: Literal["released", "quarantine"], name: str) -> str:
    """The object key of ``name`` (a job's :attr:`~VideoJob.file_name` or
    :attr:`~VideoJob.thumbnail_name`) in ``released/`` or ``quarantine/``."""
    return f"{RELEASED_DIR if kind == 'released' else QUARANTINE_DIR}/{name}"


def move_to_released(files: Path | ObjectStore, job: VideoJob) -> str:
    """Move a job's MP4 and thumbnail out of quarantine (idempotent: a repeat finds them
    already moved) and return where the MP4 now is. In a local folder each move is an atomic
    rename; in S3 a copy, then the quarantined object is deleted. Call it only after the
    decision that allows it is committed."""
    store = as_object_store(files)
    for name in (job.thumbnail_name, job.file_name):  # the MP4 last: its presence means done
        if store.exists(video_key("quarantine", name)):
            with contextlib.suppress(ObjectMissing):  # a concurrent repeat moved it first
                store.move(video_key("quarantine", name), video_key("released", name))
    target = video_key("released", job.file_name)
    if not store.exists(target):
        raise MissingVideoFile(
            f"{store.location(video_key('quarantine', job.file_name))}: the video file is "
            f"missing (and it is not in released/ of {store.label}); check REELGUARD_DATA_DIR "
            "or REELGUARD_STORAGE_URL points at the store the workers write to"
        )
    return store.location(target)


__all__ = [
    "JOBS_CHANNEL",
    "PEEK_QUEUED",
    "QUARANTINE_DIR",
    "RELEASED_DIR",
    "EndedByOwner",
    "IdempotencyConflict",
    "JobError",
    "JobNotFound",
    "JobStatus",
    "JobStore",
    "Lease",
    "MissingVideoFile",
    "NewJob",
    "NotWithheld",
    "Page",
    "QueueFull",
    "Release",
    "Stage",
    "VideoJob",
    "move_to_released",
    "read_job",
    "row_to_job",
    "video_key",
    "videos_dir",
]
