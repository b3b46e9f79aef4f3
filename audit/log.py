"""The audit log: every request, verdict, frame score, decision, release and review, hash-chained.

:class:`AuditLog` is a small facade over the database (:class:`storage.Database`, the same one
as the job store's) and the modules that do the work:

* :mod:`audit.rows`: records to rows and back (pure mapping);
* :mod:`audit.append`: numbering, sealing and chaining rows onto the head;
* :mod:`audit.queries`: every read (lists, a request's story, the review queue, stats);
* :mod:`audit.verify`: recomputing the chain (in parallel for large logs);
* :mod:`audit.retention`: purge, redaction and the tenants' prompt retention;
* :mod:`audit.migrations`: creating the schema and upgrading older databases.

The database is opened durable (SQLite ``synchronous=FULL``): WAL alone survives a process
crash, but with ``NORMAL`` the last commits can vanish on power loss or an OS crash, and the
audit log is the record of evidence, so every commit is fsynced (one fsync per request; bulk
writers use :meth:`AuditLog.batch`). Appends from several processes serialise on the write
transaction: each reads the chain head, writes its rows with the next sequence numbers and
hashes, and moves the head, all in one transaction, so the chain never forks. One instance is
safe to share between threads; a forked child opens its own connections.

Writers::

    log = AuditLog(Path("var/reelguard.db"))
    log.record_moderation(ModerationRecord(...))        # gateway, per request (per input item)
    log.record_frame_audit(FrameAuditRecord(...))       # video worker, per job
    log.record_release(job_id, tenant, "withheld", path, reason, actor)
    log.record_review(job_or_request_id, reviewer, "approve", note)

Readers: :meth:`list_requests`, :meth:`iter_requests` (for export), :meth:`story`,
:meth:`queue`, :meth:`stats`, :meth:`verify`, :meth:`snapshot` (for :mod:`audit.insights`);
retention: :meth:`purge`, :meth:`redact`, :meth:`set_prompt_retention`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from audit import queries, retention
from audit.append import append, lock_head, retention_of
from audit.errors import InvalidRecord
from audit.group import GroupCommit
from audit.migrations import ensure_schema
from audit.records import (
    Anchor,
    FrameAuditRecord,
    ListFilter,
    ModerationRecord,
    PromptRetention,
    PurgeReport,
    QueueItem,
    RedactReport,
    RequestSummary,
    StatRow,
    Story,
    VerifyReport,
)
from audit.rows import (
    Row,
    check_release,
    check_review,
    frame_audit_rows,
    moderation_rows,
    policy_change_row,
    release_row,
    review_row,
)
from audit.verify import verify
from storage import Database, StorageConflict, Tx
from storage.objects import ObjectStore


class AuditLog:
    """The hash-chained audit log in ``database`` (a :class:`~storage.Database`, or a path or
    URL to open one; the tables are created on first use)."""

    def __init__(self, database: Database | Path | str) -> None:
        if isinstance(database, Database):
            self.database = database
        else:
            self.database = Database.from_url(database, durable=True)
        self.path = self.database.path
        """The SQLite file (``None`` on PostgreSQL)."""
        self._ready_pid = -1
        self._ready_lock = threading.Lock()
        self.group = GroupCommit(self.transaction)
        """The group commit of :meth:`record_moderations` (its ``groups`` count for tests)."""

    # -- schema and transactions ----------------------------------------------------------------

    def open(self) -> AuditLog:
        """Create or migrate the schema now (it happens on first use anyway); raises
        :class:`~audit.errors.SchemaTooNew` or a :mod:`storage.errors` error."""
        self._ensure()
        return self

    def _ensure(self) -> None:
        """Create the tables and migrate an older database, once per process."""
        if self._ready_pid == os.getpid():
            return
        with self._ready_lock:
            if self._ready_pid != os.getpid():
                with self.database.transaction(write=True) as tx:
                    ensure_schema(tx, self.database.where)
                self._ready_pid = os.getpid()

    def close(self) -> None:
        """Close the database's connections (a later call reopens them)."""
        self.database.close()

    @contextmanager
    def batch(self) -> Iterator[AuditLog]:
        """Group many appends in one transaction (one fsync): the fast bulk path.

        ``with log.batch(): for r in records: log.record_moderation(r)``. Other writers wait
        until the batch commits, so keep batches to a few seconds. A record that fails inside
        a batch leaves none of its rows behind (a savepoint) while the rest carries on.
        """
        with self._write():
            yield self

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction of this database that other statements can share with appends.

        ``with log.transaction() as tx:`` runs ``tx`` statements on other tables of the same
        database (the job store's) and ``log.record_*`` appends atomically: an exception rolls
        all of it back. The job system uses it so that a release, a review or a cancellation and
        the job row that reflects it commit together, or not at all, and so that a video job is
        enqueued with its prompt record (:meth:`gateway.jobs.JobStore.create`).
        """
        with self._write() as tx:
            yield tx

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        self._ensure()
        with self.database.transaction(write=True) as tx:
            lock_head(tx)  # first, before any job row (see audit.append)
            yield tx

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        """A consistent snapshot for multi-query reads (WAL readers never block writers)."""
        self._ensure()
        with self.database.transaction() as tx:
            yield tx

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A read transaction (one snapshot) for queries written elsewhere against the audit
        tables (:mod:`audit.insights`): ``with log.snapshot() as tx: insights.x(tx, ...)``."""
        with self._read() as tx:
            yield tx

    # -- writers --------------------------------------------------------------------------------

    def record_moderation(self, rec: ModerationRecord) -> str:
        """Record one request's prompt stage (request, verdicts, decision, reasons).

        Returns the request id. ``rec.request_id`` must be unique (one per input item of a
        moderation request). Raises :class:`InvalidRecord` for a bad endpoint or a reused id.
        """
        with self._write() as tx:
            rows = moderation_rows(rec, retention_of(tx, rec.tenant))
            try:
                append(tx, rows)
            except StorageConflict as exc:
                raise InvalidRecord(
                    f"request id {rec.request_id!r} is already in the audit log; give each "
                    "request (each input item) its own id"
                ) from exc
        return rec.request_id

    def record_moderations(self, records: Sequence[ModerationRecord]) -> None:
        """Record one request's items (in order) and return once they are committed, sharing
        the transaction, and its fsync, with other threads of this process that record at the
        same time (group commit, :mod:`audit.group`): the gateway's path under load.

        Raises like :meth:`record_moderation` (then none of ``records`` is in the log). Inside
        a transaction of this thread it appends in that one, like :meth:`record_moderation`.
        """
        if self.database.in_transaction():
            with self.batch():
                for rec in records:
                    self.record_moderation(rec)
            return
        self.group.record(records)

    def record_frame_audit(self, rec: FrameAuditRecord) -> int:
        """Record one video job's frame stage: decision, reasons, every frame score, evidence.

        Thumbnail files are hashed into the record (``audit verify --check-files`` re-checks
        them); a thumbnail that cannot be read is recorded with no digest rather than losing
        the audit. Returns the sequence number of the last row written.
        """
        created = time.time() if rec.created_at is None else rec.created_at
        with self._write() as tx:
            request_id = queries.first_request_of(tx, rec.job_id)
            rows = frame_audit_rows(rec, request_id, retention_of(tx, rec.tenant), created)
            return append(tx, rows)

    def record_release(
        self, job_id: str, tenant: str, action: str, path: str | None, reason: str, actor: str
    ) -> int:
        """Record what became of a job's video: ``released`` or ``withheld`` (where, why, by
        whom), or ``cancelled``/``deleted`` by its owner (who, and why; ``path`` may be None)."""
        check_release(job_id, action, actor)
        with self._write() as tx:
            request_id = queries.first_request_of(tx, job_id)
            decided = queries.decided_under(tx, request_id, job_id)
            row = release_row(job_id, request_id, tenant, action, path, reason, actor, decided)
            return append(tx, [("releases", row)])

    def record_review(self, job_id: str, reviewer: str, verdict: str, note: str) -> int:
        """Record a human review of a job or request (``job_id`` may be either id).

        Raises :class:`~audit.errors.UnknownRecord` when neither a request nor a job has that
        id.
        """
        check_review(reviewer, verdict)
        with self._write() as tx:
            request_id, found_job, tenant = queries.resolve(tx, job_id)
            decided = queries.decided_under(tx, request_id, found_job)
            row = review_row(
                job_id, request_id, found_job, tenant, reviewer, verdict, note, decided
            )
            return append(tx, [("reviews", row)])

    def record_policy_change(
        self, tenant: str, change: str, version: str, previous: str | None, actor: str
    ) -> int:
        """Chain a change of the policy ``tenant`` is served: a ``settings`` row named
        ``policy.<change>`` (``load``, ``added``, ``edited``, ``removed``, or ``ack`` for an
        operator's acknowledgement of a removal) with the new and previous version and who
        (which process or person) made it. Returns the row's seq."""
        row = policy_change_row(tenant, change, version, previous, actor)
        with self._write() as tx:
            return append(tx, [("settings", row)])

    # -- retention ------------------------------------------------------------------------------

    def set_prompt_retention(self, tenant: str, mode: str, *, actor: str = "unknown") -> int:
        """Set how new records of ``tenant`` keep prompt text: keep, hash or drop.

        Stored in the database (table ``audit_tenants``) so every process applies the same
        setting, and chained as a ``settings`` row naming ``actor`` and the previous value, so
        who changed it is on record and an edit made directly in the database fails verify.
        Existing rows are unchanged; use :meth:`redact` for them. Returns the chained row's seq.
        """
        with self._write() as tx:
            return retention.set_prompt_retention(tx, tenant, mode, actor=actor)

    def purge(
        self,
        older_than_s: float,
        *,
        actor: str,
        now: float | None = None,
        data_dir: Path | ObjectStore | None = None,
    ) -> PurgeReport:
        """Delete every row recorded more than ``older_than_s`` seconds ago, keeping the chain
        (see :func:`audit.retention.purge_rows`; an edited row stops it: :class:`InvalidRecord`).

        Evidence thumbnails of removed rows are deleted after the purge commits, and only where
        their stored path resolves inside ``<data_dir>/evidence/`` (``data_dir`` a folder or an
        object store: keys under ``evidence/`` only, :func:`audit.evidence.resolve_evidence_key`);
        the others, and all of them when ``data_dir`` is ``None``, are left alone and listed in
        :attr:`PurgeReport.kept`.
        """
        with self._write() as tx:
            purged = retention.purge_rows(tx, older_than_s, actor=actor, now=now)
        if not purged.evidence:
            return purged.report
        files, kept = retention.delete_evidence(purged.evidence, data_dir)
        r = purged.report
        return PurgeReport(r.cutoff, r.through_seq, r.rows, files, tuple(kept))

    def redact(
        self,
        tenant: str | None,
        mode: str,
        *,
        actor: str,
        older_than_s: float | None = None,
        now: float | None = None,
    ) -> RedactReport:
        """Remove stored prompt text and evidence quotes (``hash`` keeps the salt, ``drop`` not);
        see :func:`audit.retention.redact`."""
        with self._write() as tx:
            return retention.redact(
                tx, tenant, mode, actor=actor, older_than_s=older_than_s, now=now
            )

    # -- readers --------------------------------------------------------------------------------

    def prompt_decision(self, job_id: str) -> str | None:
        """The action of the prompt decision recorded for video job ``job_id`` (``allow``,
        ``review`` or ``block``), or ``None`` when the log holds none (a worker refuses such a
        job: nothing may be generated without its prompt decision on record)."""
        with self._read() as tx:
            return queries.prompt_decision(tx, job_id)

    def policy_changes(self, tenant: str | None = None, after_seq: int = 0) -> list[Row]:
        """The chained policy changes (oldest first), of one tenant or all, after ``after_seq``:
        dicts with ``seq``, ``recorded_at``, ``tenant``, ``change``, ``version``, ``previous``,
        ``actor``."""
        with self._read() as tx:
            return queries.policy_changes(tx, tenant, after_seq)

    def prompt_retentions(self) -> dict[str, PromptRetention]:
        """Every tenant with a non-default setting (the default is ``keep``)."""
        with self._read() as tx:
            return queries.prompt_retentions(tx)

    def list_requests(
        self, f: ListFilter | None = None, *, limit: int | None = 50, offset: int = 0
    ) -> list[RequestSummary]:
        """Requests matching ``f``, newest first. Raises :class:`BadFilter` for bad values."""
        f = f or ListFilter()
        queries.where_clause(f)  # a bad filter fails before any transaction
        with self._read() as tx:
            return queries.list_requests(tx, f, limit=limit, offset=offset)

    def iter_requests(self, f: ListFilter | None = None, page: int = 1000) -> Iterator[Row]:
        """Every matching request, newest first, with its prompt text (for export); one short
        read transaction per page, so a long export never holds a snapshot open."""
        f = f or ListFilter()
        queries.where_clause(f)
        last = 1 << 62
        while True:
            with self._read() as tx:
                rows = queries.requests_page(tx, f, last, page)
            yield from rows
            if len(rows) < page:
                return
            last = rows[-1]["seq"]

    def story(self, ref: str) -> Story:
        """Everything recorded about a request or job id. Raises :class:`UnknownRecord`."""
        with self._read() as tx:
            return queries.story(tx, ref)

    def queue(self, limit: int | None = 100, tenant: str | None = None) -> list[QueueItem]:
        """What awaits a human review, oldest first: withheld videos and prompts sent to review."""
        with self._read() as tx:
            return queries.queue(tx, limit, tenant)

    def stats(
        self, *, since: float | None = None, until: float | None = None, tenant: str | None = None
    ) -> list[StatRow]:
        """Per day (UTC) and category: requests reviewed or blocked, and that day's total."""
        with self._read() as tx:
            return queries.stats(tx, since=since, until=until, tenant=tenant)

    def head(self) -> tuple[int, str]:
        """The last sequence number and its hash (anchor it elsewhere to detect truncation)."""
        with self._read() as tx:
            return queries.head(tx)

    def count(self) -> int:
        """Rows in all chained tables."""
        with self._read() as tx:
            return queries.count(tx)

    def verify(
        self,
        *,
        check_files: bool = False,
        max_problems: int = 100,
        workers: int | None = None,
        anchors: Sequence[Anchor] = (),
        data_dir: Path | ObjectStore | None = None,
    ) -> VerifyReport:
        """Recompute the whole chain; name the first row that does not match, and the rest
        (see :func:`audit.verify.verify` for what it catches and how it splits the work)."""
        self._ensure()
        return verify(
            self.database,
            check_files=check_files,
            max_problems=max_problems,
            workers=workers,
            anchors=anchors,
            data_dir=data_dir,
        )
