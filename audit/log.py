"""The audit log: every request, verdict, frame score, decision, release and review, hash-chained.

One SQLite file (the same database as the job store), opened through sqlite-utils, in WAL mode
with ``synchronous=FULL``: WAL alone survives a process crash, but with ``NORMAL`` the last
commits can vanish on power loss or an OS crash, and the audit log is the record of evidence, so
every commit is fsynced (one fsync per request; bulk writers use :meth:`AuditLog.batch`).

Appends from several processes (web and worker processes) serialise on ``BEGIN IMMEDIATE``:
each append reads the chain head, writes its rows with the next sequence numbers and hashes, and
moves the head, all in one transaction, so the chain never forks. Open one :class:`AuditLog`
per process (a forked child reopens its connection on first use); within a process one instance
is safe to share between threads.

Writers::

    log = AuditLog(Path("var/reelguard.db"))
    log.record_moderation(ModerationRecord(...))        # gateway, per request (per input item)
    log.record_frame_audit(FrameAuditRecord(...))       # video worker, per job
    log.record_release(job_id, tenant, "withheld", path, reason, actor)
    log.record_review(job_or_request_id, reviewer, "approve", note)

Readers: :meth:`list_requests`, :meth:`iter_requests` (for export), :meth:`story`,
:meth:`queue`, :meth:`stats`, :meth:`verify`; retention: :meth:`purge`, :meth:`redact`,
:meth:`set_prompt_retention`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import chain
from audit.errors import BadFilter, InvalidRecord, SchemaTooNew, UnknownRecord, UnsafePath
from audit.evidence import resolve_evidence_path, stored_evidence_path
from audit.records import (
    ENDPOINTS,
    PROMPT_RETENTIONS,
    RELEASE_ACTIONS,
    REVIEW_VERDICTS,
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
    VerifyProblem,
    VerifyReport,
)
from audit.schema import ALL_TENANTS, SCHEMA_VERSION, TABLES, TableSpec, ddl
from classifiers.base import CATEGORIES, STAGES, Evidence, Verdict
from policies.decision import Action, Decision, Reason
from storage import Database, StorageConflict, Tx

POLICY_SETTING = "policy."
"""Prefix of the ``settings`` rows that chain policy changes (``policy.edited``...)."""

_JSON_COLUMNS = frozenset(
    {"model_versions", "evidence", "quotes", "category_scores", "latency_ms", "frames"}
)
_ACTIONS = tuple(a.value for a in Action)

Row = dict[str, Any]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _evidence_parts(evidence: Sequence[Evidence]) -> tuple[str, str | None]:
    """Evidence as committed JSON (no prompt text) plus the quotes, which are redactable."""
    items: list[dict[str, Any]] = []
    quotes: list[str | None] = []
    for e in evidence:
        item = {
            k: getattr(e, k)
            for k in ("start", "end", "frame_index", "timestamp_s", "detail")
            if getattr(e, k) is not None
        }
        items.append(item)
        quotes.append(e.text)
    return _json(items), (_json(quotes) if any(q is not None for q in quotes) else None)


def _frame_of(verdict: Verdict) -> tuple[int | None, float | None, str | None]:
    for e in verdict.evidence:
        if e.frame_index is not None:
            return e.frame_index, e.timestamp_s, e.detail
    detail = next((e.detail for e in verdict.evidence if e.detail), None)
    return None, None, detail


def _file_sha256(path: Path) -> tuple[str | None, int | None]:
    try:
        data = path.read_bytes()
    except OSError:
        return None, None
    return hashlib.sha256(data).hexdigest(), len(data)


class AuditLog:
    """The hash-chained audit log in the SQLite file at ``path`` (created on first use)."""

    def __init__(self, database: Database | Path | str) -> None:
        if isinstance(database, Database):
            self.database = database
        else:
            self.database = Database.from_url(database, durable=True)
        self.path = self.database.path
        self._ready_pid = -1
        self._ready_lock = threading.Lock()

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
            if self._ready_pid == os.getpid():
                return
            with self.database.transaction(write=True) as tx:
                for stmt in ddl():
                    tx.execute(stmt)
                tx.execute(
                    tx.dialect.insert_or_ignore(
                        "audit_chain",
                        ("id", "schema_version", "base_seq", "base_hash", "head_seq", "head_hash"),
                    ),
                    (1, SCHEMA_VERSION, 0, chain.GENESIS, 0, chain.GENESIS),
                )
                self._migrate(tx)
            self._ready_pid = os.getpid()

    def _migrate(self, tx: Tx) -> None:
        """Bring an older database up to :data:`SCHEMA_VERSION` (inside the open transaction)."""
        version = tx.value("SELECT schema_version FROM audit_chain WHERE id = 1")
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path}: audit schema version {version} was written by a newer ReelGuard "
                f"(this one reads up to {SCHEMA_VERSION}); upgrade ReelGuard, or open a copy"
            )
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](self, tx)
            version += 1
            tx.execute("UPDATE audit_chain SET schema_version = ? WHERE id = 1", (version,))

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
            yield tx

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        """A consistent snapshot for multi-query reads (WAL readers never block writers)."""
        self._ensure()
        with self.database.transaction() as tx:
            yield tx

    def _append(self, conn: Tx, rows: Sequence[tuple[str, Row]]) -> int:
        """Chain and insert ``rows`` (inside a write transaction); returns the last seq."""
        head_seq, head_hash = conn.execute(
            "SELECT head_seq, head_hash FROM audit_chain WHERE id = 1" + conn.dialect.lock_row
        ).fetchone()
        now = time.time()
        by_table: dict[str, list[list[Any]]] = {}
        for table, row in rows:
            spec = TABLES[table]
            head_seq += 1
            row = {**row, "seq": head_seq, "recorded_at": row.get("recorded_at", now)}
            if spec.redactable:
                self._seal_text(spec, row)
            types = spec.types
            full = {name: chain.coerce(row.get(name), types[name]) for name, _ in spec.columns}
            head_hash = chain.row_hash(head_hash, table, [full[c] for c in spec.chained])
            full["hash"] = head_hash
            by_table.setdefault(table, []).append([full[name] for name, _ in spec.columns])
        for table, values in by_table.items():
            spec = TABLES[table]
            marks = ", ".join("?" * len(spec.columns))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        conn.execute(
            "UPDATE audit_chain SET head_seq = ?, head_hash = ? WHERE id = 1",
            (head_seq, head_hash),
        )
        return int(head_seq)

    @staticmethod
    def _seal_text(spec: TableSpec, row: Row) -> None:
        """Digest the redactable text, then keep, hash or drop it per the tenant's retention."""
        retention = row.setdefault("retention", "keep")
        if all(row.get(c) is None for c in spec.redactable):
            return
        salt = chain.new_salt()
        for col in spec.redactable:
            text = row.get(col)
            row[f"{col}_digest"] = None if text is None else chain.text_digest(salt, text)
        if retention != "keep":
            for col in spec.redactable:
                row[col] = None
        row["salt"] = None if retention == "drop" else salt

    def _retention(self, conn: Tx, tenant: str) -> PromptRetention:
        found = conn.execute(
            "SELECT prompt_retention FROM audit_tenants WHERE tenant = ?", (tenant,)
        ).fetchone()
        return found[0] if found else "keep"

    # -- writers --------------------------------------------------------------------------------

    def record_moderation(self, rec: ModerationRecord) -> str:
        """Record one request's prompt stage (request, verdicts, decision, reasons).

        Returns the request id. ``rec.request_id`` must be unique (one per input item of a
        moderation request). Raises :class:`InvalidRecord` for a bad endpoint or a reused id.
        """
        if rec.endpoint not in ENDPOINTS:
            raise InvalidRecord(f"endpoint {rec.endpoint!r} is not one of {', '.join(ENDPOINTS)}")
        _need(rec.request_id, "request_id")
        _need(rec.tenant, "tenant")
        d = rec.decision
        common = {"request_id": rec.request_id, "tenant": rec.tenant, "created_at": rec.created_at}
        models = _json(dict(rec.model_versions))
        with self._write() as conn:
            retention = self._retention(conn, rec.tenant)
            rows: list[tuple[str, Row]] = [
                (
                    "requests",
                    {
                        **common,
                        "endpoint": rec.endpoint,
                        "job_id": rec.job_id,
                        "action": Action(d.action).value,
                        "policy_version": d.policy_version,
                        "model_versions": models,
                        "latency_ms": rec.latency_ms,
                        "retention": retention,
                        "original": rec.original,
                        "normalized": rec.normalized,
                    },
                )
            ]
            for v in rec.verdicts:
                evidence, quotes = _evidence_parts(v.evidence)
                rows.append(
                    (
                        "verdicts",
                        {
                            **common,
                            "classifier": v.classifier,
                            "category": v.category,
                            "score": v.score,
                            "threshold": v.threshold,
                            "model_id": v.model_id,
                            "model_version": v.model_version,
                            "evidence": evidence,
                            "retention": retention,
                            "quotes": quotes,
                        },
                    )
                )
            rows += self._decision_rows(
                d,
                {**common, "job_id": rec.job_id},
                "prompt",
                retention,
                models,
                {"latency_ms": _json({"total": rec.latency_ms}), "frames": None},
            )
            try:
                self._append(conn, rows)
            except StorageConflict as exc:
                raise InvalidRecord(
                    f"request id {rec.request_id!r} is already in the audit log; give each "
                    "request (each input item) its own id"
                ) from exc
        return rec.request_id

    @staticmethod
    def _decision_rows(
        d: Decision,
        common: Row,
        stage: str,
        retention: str,
        models: str,
        extra: Row,
    ) -> list[tuple[str, Row]]:
        rows: list[tuple[str, Row]] = [
            (
                "decisions",
                {
                    **common,
                    "stage": stage,
                    "action": Action(d.action).value,
                    "policy_version": d.policy_version,
                    "model_versions": models,
                    "category_scores": _json(dict(d.category_scores)),
                    **extra,
                },
            )
        ]
        for r in d.reasons:
            rows.append(("reasons", _reason_row(r, common, retention)))
        return rows

    def prompt_decision(self, job_id: str) -> str | None:
        """The action of the prompt decision recorded for video job ``job_id`` (``allow``,
        ``review`` or ``block``), or ``None`` when the log holds none (a worker refuses such a
        job: nothing may be generated without its prompt decision on record)."""
        with self._read() as conn:
            found = conn.execute(
                "SELECT action FROM requests WHERE job_id = ? AND endpoint = 'videos' "
                "ORDER BY seq DESC LIMIT 1",
                (job_id,),
            ).fetchone()
        return None if found is None else str(found[0])

    def record_frame_audit(self, rec: FrameAuditRecord) -> int:
        """Record one video job's frame stage: decision, reasons, every frame score, evidence.

        Thumbnail files are hashed into the record (``audit verify --check-files`` re-checks
        them); a thumbnail that cannot be read is recorded with no digest rather than losing
        the audit. Returns the sequence number of the last row written.
        """
        _need(rec.job_id, "job_id")
        _need(rec.tenant, "tenant")
        d = rec.decision
        created = time.time() if rec.created_at is None else rec.created_at
        models = _json(dict(rec.model_versions))
        with self._write() as conn:
            found = conn.execute(
                "SELECT request_id FROM requests WHERE job_id = ? ORDER BY seq LIMIT 1",
                (rec.job_id,),
            ).fetchone()
            request_id = found[0] if found else None
            retention = self._retention(conn, rec.tenant)
            common = {
                "request_id": request_id,
                "job_id": rec.job_id,
                "tenant": rec.tenant,
                "created_at": created,
            }
            frames = _json([[f.index, f.timestamp_s] for f in rec.frames])
            extra = {"latency_ms": _json(dict(rec.latency_ms)), "frames": frames}
            rows = self._decision_rows(d, common, "frame", retention, models, extra)
            for v in rec.verdicts:
                index, ts, detail = _frame_of(v)
                rows.append(
                    (
                        "frame_scores",
                        {
                            "job_id": rec.job_id,
                            "request_id": request_id,
                            "tenant": rec.tenant,
                            "frame_index": index,
                            "timestamp_s": ts,
                            "classifier": v.classifier,
                            "category": v.category,
                            "score": v.score,
                            "threshold": v.threshold,
                            "model_id": v.model_id,
                            "model_version": v.model_version,
                            "detail": detail,
                        },
                    )
                )
            stamps = {f.index: f.timestamp_s for f in rec.frames}
            for index, path in sorted(rec.thumbnails.items()):
                digest, size = _file_sha256(Path(path))
                stored = (
                    str(path)
                    if rec.data_dir is None
                    else stored_evidence_path(Path(path), rec.data_dir)
                )
                rows.append(
                    (
                        "evidence",
                        {
                            "job_id": rec.job_id,
                            "tenant": rec.tenant,
                            "frame_index": index,
                            "timestamp_s": stamps.get(index),
                            "path": stored,
                            "sha256": digest,
                            "bytes": size,
                        },
                    )
                )
            return self._append(conn, rows)

    def record_release(
        self, job_id: str, tenant: str, action: str, path: str | None, reason: str, actor: str
    ) -> int:
        """Record what became of a job's video: ``released`` or ``withheld`` (where, why, by
        whom), or ``cancelled``/``deleted`` by its owner (who, and why; ``path`` may be None)."""
        if action not in RELEASE_ACTIONS:
            raise InvalidRecord(
                f"release action {action!r} is not one of {', '.join(RELEASE_ACTIONS)}"
            )
        _need(job_id, "job_id")
        _need(actor, "actor")
        with self._write() as conn:
            found = conn.execute(
                "SELECT request_id FROM requests WHERE job_id = ? ORDER BY seq LIMIT 1", (job_id,)
            ).fetchone()
            request_id = found[0] if found else None
            row = {
                "job_id": job_id,
                "request_id": request_id,
                "tenant": tenant,
                "action": action,
                "path": None if path is None else str(path),
                "reason": reason,
                "actor": actor,
                **_decided_under(conn, request_id, job_id),
            }
            return self._append(conn, [("releases", row)])

    def record_review(self, job_id: str, reviewer: str, verdict: str, note: str) -> int:
        """Record a human review of a job or request (``job_id`` may be either id).

        Raises :class:`UnknownRecord` when neither a request nor a job has that id.
        """
        if verdict not in REVIEW_VERDICTS:
            raise InvalidRecord(f"review verdict {verdict!r} is not one of approve, reject")
        _need(reviewer, "reviewer")
        with self._write() as conn:
            request_id, found_job, tenant = self._resolve(conn, job_id)
            row = {
                "ref": job_id,
                "request_id": request_id,
                "job_id": found_job,
                "tenant": tenant,
                "reviewer": reviewer,
                "verdict": verdict,
                "note": note,
                **_decided_under(conn, request_id, found_job),
            }
            return self._append(conn, [("reviews", row)])

    # -- tenant prompt retention ----------------------------------------------------------------

    def set_prompt_retention(self, tenant: str, mode: str, *, actor: str = "unknown") -> int:
        """Set how new records of ``tenant`` keep prompt text: keep, hash or drop.

        Stored in the database (table ``audit_tenants``) so every process applies the same
        setting, and chained as a ``settings`` row naming ``actor`` and the previous value, so
        who changed it is on record and an edit made directly in SQLite fails verify. Existing
        rows are unchanged; use :meth:`redact` for them. Returns the chained row's seq.
        """
        _need(tenant, "tenant")
        _need(actor, "actor")
        if mode not in PROMPT_RETENTIONS:
            raise BadFilter(f"prompt retention {mode!r} is not one of keep, hash, drop")
        with self._write() as conn:
            found = conn.execute(
                "SELECT prompt_retention FROM audit_tenants WHERE tenant = ?", (tenant,)
            ).fetchone()
            conn.execute(
                "INSERT INTO audit_tenants VALUES (?, ?, ?) ON CONFLICT(tenant) DO UPDATE SET "
                "prompt_retention = excluded.prompt_retention, updated_at = excluded.updated_at",
                (tenant, mode, time.time()),
            )
            return self._append(
                conn, [("settings", _setting(tenant, mode, found[0] if found else "keep", actor))]
            )

    # -- policy changes -------------------------------------------------------------------------

    def record_policy_change(
        self, tenant: str, change: str, version: str, previous: str | None, actor: str
    ) -> int:
        """Chain a change of the policy ``tenant`` is served: a ``settings`` row named
        ``policy.<change>`` (``load``, ``added``, ``edited``, ``removed``, or ``ack`` for an
        operator's acknowledgement of a removal) with the new and previous version and who
        (which process or person) made it. Returns the row's seq."""
        _need(tenant, "tenant")
        _need(actor, "actor")
        _need(change, "change")
        row = {
            "tenant": tenant,
            "name": f"{POLICY_SETTING}{change}",
            "value": version,
            "previous": previous or "",
            "actor": actor,
        }
        with self._write() as conn:
            return self._append(conn, [("settings", row)])

    def policy_changes(self, tenant: str | None = None, after_seq: int = 0) -> list[Row]:
        """The chained policy changes (oldest first), of one tenant or all, after ``after_seq``:
        dicts with ``seq``, ``recorded_at``, ``tenant``, ``change``, ``version``, ``previous``,
        ``actor``."""
        where, args = "name LIKE ? AND seq > ?", [f"{POLICY_SETTING}%", after_seq]
        if tenant is not None:
            where += " AND tenant = ?"
            args.append(tenant)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT seq, recorded_at, tenant, name, value, previous, actor FROM settings "
                f"WHERE {where} ORDER BY seq",
                args,
            ).fetchall()
        return [
            {
                "seq": seq,
                "recorded_at": at,
                "tenant": who,
                "change": name[len(POLICY_SETTING) :],
                "version": value,
                "previous": previous or None,
                "actor": actor,
            }
            for seq, at, who, name, value, previous, actor in rows
        ]

    def prompt_retentions(self) -> dict[str, PromptRetention]:
        """Every tenant with a non-default setting (the default is ``keep``)."""
        with self._read() as conn:
            rows = conn.execute("SELECT tenant, prompt_retention FROM audit_tenants ORDER BY 1")
            return {t: m for t, m in rows}

    # -- readers --------------------------------------------------------------------------------

    def _resolve(self, conn: Tx, ref: str) -> tuple[str | None, str | None, str]:
        """(request id, job id, tenant) for a request id or a job id."""
        found = conn.execute(
            "SELECT request_id, job_id, tenant FROM requests WHERE request_id = ?", (ref,)
        ).fetchone()
        if found is None:
            found = conn.execute(
                "SELECT request_id, job_id, tenant FROM requests WHERE job_id = ? "
                "ORDER BY seq LIMIT 1",
                (ref,),
            ).fetchone()
        if found is None:
            for table in ("decisions", "releases"):
                job = conn.execute(
                    f"SELECT request_id, job_id, tenant FROM {table} WHERE job_id = ? LIMIT 1",
                    (ref,),
                ).fetchone()
                if job is not None:
                    found = job
                    break
        if found is None:
            raise UnknownRecord(
                f"no request or job with id {ref!r} in the audit log; "
                "`reelguard audit list` shows the ids"
            )
        return found[0], found[1], found[2]

    def list_requests(
        self, f: ListFilter | None = None, *, limit: int | None = 50, offset: int = 0
    ) -> list[RequestSummary]:
        """Requests matching ``f``, newest first. Raises :class:`BadFilter` for bad values."""
        where, params = _where(f or ListFilter())
        order = "ORDER BY r.created_at DESC, r.seq DESC"
        page = f"SELECT r.seq FROM requests r {where} {order}"
        if limit is not None:
            page += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        # Pick the page first, then compute the summary columns for those rows only: with a
        # sort in the plan, SQLite would otherwise evaluate them for every matching row.
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM requests r WHERE r.seq IN ({page}) {order}"
        with self._read() as conn:
            return [_summary(row) for row in conn.execute(sql, params).fetchall()]

    def iter_requests(self, f: ListFilter | None = None, page: int = 1000) -> Iterator[Row]:
        """Every matching request, newest first, with its prompt text (for export)."""
        where, params = _where(f or ListFilter())
        sql = (
            f"SELECT {_SUMMARY_COLUMNS}, r.original, r.normalized FROM requests r {where} "
            "AND r.seq < ? ORDER BY r.seq DESC LIMIT ?"
            if where
            else f"SELECT {_SUMMARY_COLUMNS}, r.original, r.normalized FROM requests r "
            "WHERE r.seq < ? ORDER BY r.seq DESC LIMIT ?"
        )
        last = 1 << 62
        while True:
            with self._read() as conn:
                rows = conn.execute(sql, [*params, last, page]).fetchall()
            for row in rows:
                out = _summary(row[:-2]).as_dict()
                out["original"], out["normalized"] = row[-2], row[-1]
                yield out
            if len(rows) < page:
                return
            last = rows[-1][0]

    def story(self, ref: str) -> Story:
        """Everything recorded about a request or job id. Raises :class:`UnknownRecord`."""
        with self._read() as conn:
            request_id, job_id, _ = self._resolve(conn, ref)

            def rows(table: str, where: str, *args: Any) -> list[Row]:
                found = conn.records(f"SELECT * FROM {table} WHERE {where} ORDER BY seq", args)
                return [_decode(row) for row in found]

            key = "request_id = ? OR job_id = ?"
            request = rows("requests", "request_id = ?", request_id)
            verdicts = rows("verdicts", "request_id = ?", request_id)
            text = request[0]["original"] if request else None
            for v in verdicts:
                _merge_quotes(v, text)
            reasons = rows("reasons", key, request_id, job_id)
            for r in reasons:
                _merge_quotes(r, text)
            return Story(
                request=request[0] if request else None,
                verdicts=verdicts,
                decisions=rows("decisions", key, request_id, job_id),
                reasons=reasons,
                frame_scores=rows("frame_scores", "job_id = ?", job_id),
                evidence=rows("evidence", "job_id = ?", job_id),
                releases=rows("releases", "job_id = ?", job_id),
                reviews=rows("reviews", key, request_id, job_id),
            )

    def queue(self, limit: int | None = 100, tenant: str | None = None) -> list[QueueItem]:
        """What awaits a human review, oldest first: withheld videos and prompts sent to review."""
        tenant_sql = "" if tenant is None else " AND x.tenant = ?"
        args: list[Any] = [] if tenant is None else [tenant]
        cap = "" if limit is None else f" LIMIT {int(limit)}"
        with self._read() as conn:
            found = [
                ("withheld_video", job_id, request_id, job_id, who, since)
                for job_id, request_id, who, since in conn.execute(
                    f"SELECT x.job_id, x.request_id, x.tenant, x.recorded_at FROM releases x "
                    f"WHERE {_WITHHELD_OPEN}{tenant_sql} ORDER BY x.recorded_at{cap}",
                    args,
                )
            ]
            found += [
                ("prompt_review", request_id, request_id, job_id, who, since)
                for request_id, job_id, who, since in conn.execute(
                    f"SELECT x.request_id, x.job_id, x.tenant, x.created_at FROM requests x "
                    f"WHERE {_PROMPT_REVIEW_OPEN}{tenant_sql} ORDER BY x.created_at{cap}",
                    args,
                )
            ]
            found.sort(key=lambda item: item[5])
            if limit is not None:
                found = found[:limit]
            return [
                QueueItem(
                    ref=ref,
                    kind=kind,  # type: ignore[arg-type]
                    tenant=who,
                    since=since,
                    request_id=request_id,
                    job_id=job_id,
                    categories=_categories(
                        conn,
                        *(
                            ("job_id", job_id)
                            if kind == "withheld_video"
                            else ("request_id", request_id)
                        ),
                    ),
                )
                for kind, ref, request_id, job_id, who, since in found
            ]

    def stats(
        self, *, since: float | None = None, until: float | None = None, tenant: str | None = None
    ) -> list[StatRow]:
        """Per day (UTC) and category: requests reviewed or blocked, and that day's total."""
        cond: list[str] = ["1 = 1"]
        args: list[Any] = []
        for col, op, val in (("created_at", ">=", since), ("created_at", "<", until)):
            if val is not None:
                cond.append(f"{col} {op} ?")
                args.append(val)
        if tenant is not None:
            cond.append("tenant = ?")
            args.append(tenant)
        where = " AND ".join(cond)
        with self._read() as conn:
            totals = dict(
                conn.execute(
                    f"SELECT date(created_at, 'unixepoch') d, count(*) FROM requests "
                    f"WHERE {where} GROUP BY d",
                    args,
                ).fetchall()
            )
            per = conn.execute(
                f"""SELECT d, category, sum(1 - b), sum(b) FROM (
                        SELECT date(min(created_at), 'unixepoch') d, category,
                               max(action = 'block') b
                        FROM reasons WHERE {where} AND action != 'allow'
                        GROUP BY coalesce(request_id, job_id), category)
                    GROUP BY d, category ORDER BY d, category""",
                args,
            ).fetchall()
        return [StatRow(d, c, int(r), int(b), int(totals.get(d, 0))) for d, c, r, b in per]

    def head(self) -> tuple[int, str]:
        """The last sequence number and its hash (anchor it elsewhere to detect truncation)."""
        with self._read() as conn:
            seq, digest = conn.execute(
                "SELECT head_seq, head_hash FROM audit_chain WHERE id = 1"
            ).fetchone()
        return int(seq), str(digest)

    def count(self) -> int:
        """Rows in all chained tables."""
        with self._read() as conn:
            return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)

    # -- verification ---------------------------------------------------------------------------

    def verify(
        self,
        *,
        check_files: bool = False,
        max_problems: int = 100,
        workers: int | None = None,
        anchors: Sequence[Anchor] = (),
        data_dir: Path | None = None,
    ) -> VerifyReport:
        """Recompute the whole chain; name the first row that does not match, and the rest.

        Catches an edited, deleted, inserted or reordered row in any audited table, prompt text
        edited in place, text removed without a chained redaction, a cut-off tail (against the
        head in ``audit_chain``) and, with ``check_files``, evidence thumbnails changed on disk
        (their stored paths are resolved inside ``<data_dir>/evidence/``; a path that leads
        elsewhere is a problem; without ``data_dir`` only absolute paths can be read).

        Every row stores its hash, so row ``n`` can be checked against the stored hash of row
        ``n - 1`` alone: large logs are split into ranges checked by ``workers`` processes
        (default: one per CPU, for logs over :data:`PARALLEL_MIN_ROWS` rows). The result is the
        same as one sequential pass. Rows appended while verify runs are left for the next run;
        run parallel verification when no purge or redaction is under way (one process reads
        one consistent snapshot and is immune to both).

        ``anchors`` are heads noted outside the database by earlier runs: each must still be the
        hash of its row (or of the purge base), and lie at or before the current head, so an
        attacker who rewrites rows *and* recomputes every later hash and the head is still
        caught. Anchors before the purge base are skipped (their rows are gone by design).
        """
        started = time.perf_counter()
        folder = None if data_dir is None else str(data_dir)
        with self._read() as conn:
            _, base_seq, base_hash, head_seq, head_hash = conn.execute(
                "SELECT schema_version, base_seq, base_hash, head_seq, head_hash "
                "FROM audit_chain WHERE id = 1"
            ).fetchone()
            covered: dict[str, int] = {}
            for who, through in conn.execute(
                "SELECT tenant, max(through_seq) FROM redactions GROUP BY tenant"
            ):
                covered[who] = through
            found: list[tuple[int, str, str, str]] = []
            anchors_checked = 0
            for anchor in anchors:
                problem = _check_anchor(conn, anchor, base_seq, base_hash, head_seq)
                anchors_checked += int(anchor.seq >= base_seq)
                if problem is not None:
                    found.append(problem)
            self._check_base(
                conn,
                base_seq,
                base_hash,
                lambda *p: found.append(p),
            )
            found += _check_settings(conn, head_seq)
            beyond = max(
                conn.execute(f"SELECT coalesce(max(seq), 0) FROM {t}").fetchone()[0] for t in TABLES
            )
            ranges = _ranges(base_seq, head_seq, workers)
            starts = [base_hash] + [_stored_hash(conn, lo - 1) for lo, _ in ranges[1:]]
            if len(ranges) == 1:  # in this snapshot, so a concurrent purge cannot interfere
                results = [
                    _check_range(
                        conn, *ranges[0], base_hash, covered, check_files, max_problems, folder
                    )
                ]
        jobs = [
            (self.database.url, lo, hi, prev, covered, check_files, max_problems, folder)
            for (lo, hi), prev in zip(ranges, starts, strict=True)
        ]
        if len(jobs) > 1:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx) as pool:
                results = list(pool.map(_verify_range, *zip(*jobs, strict=True)))
        rows = 0
        for (_, hi), (count, seen, _, problems) in zip(ranges, results, strict=True):
            rows += count
            found += problems
            if hi != head_seq and seen != hi:
                gap = f"seq {hi}" if seen + 1 == hi else f"seqs {seen + 1}..{hi}"
                found.append((seen + 1, "-", "deleted", f"{gap} missing: rows were deleted"))
        _, last_seq, last_hash, _ = results[-1]
        if last_seq != head_seq or last_hash != head_hash:
            found.append(
                (
                    last_seq + 1,
                    "audit_chain",
                    "truncated",
                    f"the chain ends at seq {last_seq} but its head records seq {head_seq}: rows "
                    "at the end were deleted, or the head was edited",
                )
            )
        if beyond > head_seq:
            found.append(
                (
                    head_seq + 1,
                    "audit_chain",
                    "inserted",
                    f"rows up to seq {beyond} lie beyond the head (seq {head_seq}): rows were "
                    "inserted after the end, or the head was edited",
                )
            )
        found.sort(key=lambda p: p[0])
        problems_out = tuple(VerifyProblem(*p) for p in found[:max_problems])
        return VerifyReport(
            rows=rows,
            base_seq=base_seq,
            head_seq=head_seq,
            head_hash=head_hash,
            problems=problems_out,
            seconds=time.perf_counter() - started,
            anchors_checked=anchors_checked,
        )

    @staticmethod
    def _check_base(conn: Tx, base_seq: int, base_hash: str, problem: Any) -> None:
        if base_seq == 0 and base_hash == chain.GENESIS:
            return
        last = conn.execute(
            "SELECT seq, through_seq, through_hash FROM purges ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if last is None or (last[1], last[2]) != (base_seq, base_hash):
            problem(
                base_seq,
                "audit_chain",
                "base",
                f"the chain starts after seq {base_seq}, but no purge record commits to that "
                "start: the start of the log was deleted outside `reelguard audit purge`",
            )

    # -- retention ------------------------------------------------------------------------------

    def purge(
        self,
        older_than_s: float,
        *,
        actor: str,
        now: float | None = None,
        data_dir: Path | None = None,
    ) -> PurgeReport:
        """Delete every row recorded more than ``older_than_s`` seconds ago, keeping the chain.

        Removes the oldest prefix of the chain (up to the first row that is still young), then
        appends a chained purge record committing to the hash of the last removed row, which
        becomes the chain's verified start.

        The rows to remove (and the link to the next one) are verified first; if any was
        edited, nothing is purged (:class:`InvalidRecord`): a purge must neither act on a
        tampered row nor erase the proof of tampering. Evidence thumbnails of removed rows are
        deleted only where their stored path resolves inside ``<data_dir>/evidence/``
        (:func:`audit.evidence.resolve_evidence_path`); the others, and all of them when
        ``data_dir`` is ``None``, are left alone and listed in :attr:`PurgeReport.kept`.
        """
        if older_than_s < 0:
            raise BadFilter("--older-than must not be negative")
        cutoff = (time.time() if now is None else now) - older_than_s
        removed_files: list[str] = []
        with self._write() as conn:
            base_seq, head_seq = conn.execute(
                "SELECT base_seq, head_seq FROM audit_chain WHERE id = 1"
            ).fetchone()
            young = [
                conn.execute(
                    f"SELECT seq FROM {t} WHERE recorded_at >= ? ORDER BY seq LIMIT 1", (cutoff,)
                ).fetchone()
                for t in TABLES
            ]
            firsts = [y[0] for y in young if y is not None]
            through = (min(firsts) - 1) if firsts else head_seq
            if through <= base_seq:
                return PurgeReport(cutoff, base_seq, 0, 0)
            through_hash = None
            for t in TABLES:
                found = conn.execute(f"SELECT hash FROM {t} WHERE seq = ?", (through,)).fetchone()
                if found is not None:
                    through_hash = found[0]
            if through_hash is None:
                raise InvalidRecord(
                    f"row {through} is missing, so the purge cannot anchor the chain; run "
                    "`reelguard audit verify` and resolve the break first"
                )
            self._verify_before_purge(conn, base_seq, through, head_seq)
            removed_files = [
                p for (p,) in conn.execute("SELECT path FROM evidence WHERE seq <= ?", (through,))
            ]
            rows = 0
            for t in TABLES:
                rows += conn.execute(f"DELETE FROM {t} WHERE seq <= ?", (through,)).rowcount
            conn.execute(
                "UPDATE audit_chain SET base_seq = ?, base_hash = ? WHERE id = 1",
                (through, through_hash),
            )
            # The settings rows that justified each tenant's current retention may be gone:
            # re-state them in the chain, so verify can still check audit_tenants against it.
            carried = [
                ("settings", _setting(tenant, mode, mode, actor))
                for tenant, mode in conn.execute(
                    "SELECT tenant, prompt_retention FROM audit_tenants ORDER BY tenant"
                )
            ]
            record = {
                "cutoff": cutoff,
                "through_seq": through,
                "through_hash": through_hash,
                "rows": rows,
                "actor": actor,
            }
            self._append(conn, [*carried, ("purges", record)])
        files, kept = _delete_evidence(removed_files, data_dir)
        return PurgeReport(cutoff, through, rows, files, tuple(kept))

    def _verify_before_purge(self, conn: Tx, base_seq: int, through: int, head_seq: int) -> None:
        """Raise :class:`InvalidRecord` if rows ``base_seq + 1 .. through`` (and the row
        after, which commits to ``through``'s hash) do not verify."""
        (base_hash,) = conn.execute("SELECT base_hash FROM audit_chain WHERE id = 1").fetchone()
        covered = dict(
            conn.execute("SELECT tenant, max(through_seq) FROM redactions GROUP BY tenant")
        )
        hi = min(head_seq, through + 1)
        _, _, _, problems = _check_range(conn, base_seq + 1, hi, base_hash, covered, False, 5)
        if problems:
            seq, table, _, message = problems[0]
            raise InvalidRecord(
                f"{table} seq {seq} does not verify ({message}), so nothing was purged: a purge "
                "would act on edited rows and erase the proof; run `reelguard audit verify` "
                "and restore the database from a backup"
            )

    def redact(
        self,
        tenant: str | None,
        mode: str,
        *,
        actor: str,
        older_than_s: float | None = None,
        now: float | None = None,
    ) -> RedactReport:
        """Remove stored prompt text and evidence quotes (``hash`` keeps the salt, ``drop`` not).

        Applies to ``tenant`` (every tenant when ``None``), for rows recorded before
        ``older_than_s`` ago (all rows when ``None``). Appends a chained redaction record naming
        the last covered seq; ``audit verify`` accepts removed text only under such a record.
        """
        if mode not in ("hash", "drop"):
            raise BadFilter(f"redaction mode {mode!r} is not one of hash, drop")
        who = ALL_TENANTS if tenant is None else tenant
        with self._write() as conn:
            (through,) = conn.execute("SELECT head_seq FROM audit_chain WHERE id = 1").fetchone()
            if older_than_s is not None:
                cutoff = (time.time() if now is None else now) - older_than_s
                through = max(
                    (
                        conn.execute(
                            f"SELECT max(seq) FROM {t} WHERE recorded_at < ?", (cutoff,)
                        ).fetchone()[0]
                        or 0
                        for t in TABLES
                    ),
                    default=0,
                )
            rows = 0
            for spec in TABLES.values():
                if not spec.redactable:
                    continue
                sets = ", ".join(f"{c} = NULL" for c in spec.redactable)
                salt = "salt = NULL" if mode == "drop" else "salt = salt"
                cond = "seq <= ? AND coalesce(redacted, retention) != 'drop'"
                if mode == "hash":
                    cond += " AND coalesce(redacted, retention) = 'keep'"
                args: list[Any] = [mode, through]
                if tenant is not None:
                    cond += " AND tenant = ?"
                    args.append(tenant)
                rows += conn.execute(
                    f"UPDATE {spec.name} SET {sets}, {salt}, redacted = ? WHERE {cond}", args
                ).rowcount
            record = {"tenant": who, "mode": mode, "through_seq": through, "rows": rows}
            self._append(conn, [("redactions", {**record, "actor": actor})])
        return RedactReport(who, mode, int(through), rows)  # type: ignore[arg-type]


# -- helpers --------------------------------------------------------------------------------------


def _delete_evidence(stored: Sequence[str], data_dir: Path | None) -> tuple[int, list[str]]:
    """Delete the evidence files of purged rows that lie inside ``<data_dir>/evidence/``;
    return (files deleted, ``"<path>: <why>"`` for each one left alone)."""
    deleted, kept = 0, []
    for path in stored:
        if data_dir is None:
            kept.append(f"{path}: no data folder given, so no file is deleted")
            continue
        try:
            target = resolve_evidence_path(path, data_dir)
        except UnsafePath as exc:
            kept.append(f"{path}: {exc}")
            continue
        if not target.is_file():
            continue  # already gone (or not a file): nothing to delete
        try:
            target.unlink()
            deleted += 1
        except OSError as exc:
            kept.append(f"{path}: {exc}")
    return deleted, kept


def _decided_under(conn: Tx, request_id: str | None, job_id: str | None) -> dict[str, str | None]:
    """Policy version and models of the latest decision on a request or job (for releases and
    reviews, so they too name the policy and models they act on)."""
    found = conn.execute(
        "SELECT policy_version, model_versions FROM decisions "
        "WHERE request_id = ? OR job_id = ? ORDER BY seq DESC LIMIT 1",
        (request_id, job_id),
    ).fetchone()
    return {
        "policy_version": found[0] if found else None,
        "model_versions": found[1] if found else None,
    }


def _need(value: str | None, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{name} must be a non-empty string, got {value!r}")


def _reason_row(r: Reason, common: Row, retention: str) -> Row:
    evidence, quotes = _evidence_parts(r.evidence)
    return {
        **common,
        "stage": r.stage,
        "category": r.category,
        "action": Action(r.action).value,
        "source": r.source,
        "classifier": r.classifier,
        "score": r.score,
        "threshold": r.threshold,
        "message": r.message,
        "evidence": evidence,
        "retention": retention,
        "quotes": quotes,
    }


def _decode(row: Row) -> Row:
    return {
        k: (json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v)
        for k, v in row.items()
    }


def _merge_quotes(row: Row, original: str | None) -> None:
    """Put the quoted text back into each evidence item (from the prompt if the quote is gone)."""
    quotes = row.get("quotes") or []
    for i, item in enumerate(row.get("evidence") or []):
        text = quotes[i] if i < len(quotes) else None
        if text is None and original is not None and "start" in item and "end" in item:
            text = original[item["start"] : item["end"]]
        item["text"] = text


_WITHHELD_OPEN = """x.action = 'withheld'
    AND NOT EXISTS (SELECT 1 FROM releases y WHERE y.job_id = x.job_id AND y.seq > x.seq)
    AND NOT EXISTS (SELECT 1 FROM reviews v WHERE v.job_id = x.job_id AND v.seq > x.seq)"""

_PROMPT_REVIEW_OPEN = """x.action = 'review'
    AND NOT EXISTS (SELECT 1 FROM reviews v WHERE v.request_id = x.request_id)
    AND (x.job_id IS NULL OR NOT EXISTS (SELECT 1 FROM releases y WHERE y.job_id = x.job_id))"""

_SUMMARY_COLUMNS = """r.seq, r.request_id, r.job_id, r.tenant, r.endpoint, r.created_at, r.action,
    (SELECT action FROM decisions d WHERE d.job_id = r.job_id AND d.stage = 'frame'
        ORDER BY d.seq DESC LIMIT 1),
    (SELECT action FROM releases y WHERE y.job_id = r.job_id ORDER BY y.seq DESC LIMIT 1),
    (SELECT verdict FROM reviews v WHERE v.request_id = r.request_id ORDER BY v.seq DESC LIMIT 1),
    (SELECT group_concat(DISTINCT category) FROM reasons c WHERE c.request_id = r.request_id),
    r.policy_version, r.latency_ms"""


def _summary(row: Sequence[Any]) -> RequestSummary:
    cats = tuple(sorted(row[10].split(","))) if row[10] else ()
    return RequestSummary(
        seq=row[0],
        request_id=row[1],
        job_id=row[2],
        tenant=row[3],
        endpoint=row[4],
        created_at=row[5],
        action=row[6],
        frame_action=row[7],
        release=row[8],
        review=row[9],
        categories=cats,
        policy_version=row[11],
        latency_ms=row[12],
    )


def _categories(conn: Tx, column: str, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    rows = conn.execute(
        f"SELECT DISTINCT category FROM reasons WHERE {column} = ? ORDER BY 1", (value,)
    )
    return tuple(c for (c,) in rows)


def _action_condition(f: ListFilter) -> tuple[list[str], list[Any]]:
    if f.stage is not None and f.stage not in STAGES:
        raise BadFilter(f"stage {f.stage!r} is not one of {', '.join(STAGES)}")
    if f.action is None:
        if f.stage is not None:
            raise BadFilter("--stage only narrows --action; give --action too")
        return [], []
    if f.action not in _ACTIONS:
        raise BadFilter(f"action {f.action!r} is not one of {', '.join(_ACTIONS)}")
    frame = "r.job_id IN (SELECT job_id FROM decisions WHERE stage = 'frame' AND action = ?)"
    if f.stage == "prompt":
        return ["r.action = ?"], [f.action]
    if f.stage == "frame":
        return [frame], [f.action]
    return [f"(r.action = ? OR {frame})"], [f.action, f.action]


def _where(f: ListFilter) -> tuple[str, list[Any]]:
    """SQL conditions on ``requests r`` for a filter; :class:`BadFilter` for bad values."""
    cond, args = _action_condition(f)
    if f.category is not None:
        if f.category not in CATEGORIES:
            raise BadFilter(f"category {f.category!r} is not one of {', '.join(CATEGORIES)}")
        cond.append("r.request_id IN (SELECT request_id FROM reasons WHERE category = ?)")
        args.append(f.category)
    for col, text in (("tenant", f.tenant), ("policy_version", f.policy_version)):
        if text is not None:
            cond.append(f"r.{col} = ?")
            args.append(text)
    if f.since is not None and f.until is not None and f.since >= f.until:
        raise BadFilter("--since must be earlier than --until")
    for op, val in ((">=", f.since), ("<", f.until)):
        if val is not None:
            cond.append(f"r.created_at {op} ?")
            args.append(val)
    if f.needs_review:
        open_prompt = _PROMPT_REVIEW_OPEN.replace("x.", "r.")
        cond.append(
            f"(({open_prompt}) OR r.job_id IN "
            f"(SELECT x.job_id FROM releases x WHERE {_WITHHELD_OPEN}))"
        )
    return ("WHERE " + " AND ".join(cond)) if cond else "", args


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where the verifier finds each column in a scanned row of one table (computed once)."""

    name: str
    width: int
    columns: tuple[str, ...]
    redactable: tuple[str, ...]
    retention_at: int
    tenant_at: int
    digest_at: tuple[int, ...]
    sha256_at: int


def _plan(spec: TableSpec) -> _Plan:
    chained = spec.chained
    cols = [*chained, "hash"]
    if spec.redactable:
        cols += [*spec.redactable, "salt", "redacted"]
    if spec.name == "evidence":
        cols += ["path"]
    return _Plan(
        name=spec.name,
        width=len(chained),
        columns=tuple(cols),
        redactable=spec.redactable,
        retention_at=chained.index("retention") if spec.redactable else -1,
        tenant_at=chained.index("tenant") if spec.redactable else -1,
        digest_at=tuple(chained.index(d) for d in spec.digests),
        sha256_at=chained.index("sha256") if "sha256" in chained else -1,
    )


_PLANS: dict[str, _Plan] = {name: _plan(spec) for name, spec in TABLES.items()}


def _check_text(plan: _Plan, row: Sequence[Any], covered: Mapping[str, int]) -> str | None:
    """Why a row's redactable text does not hold up, or ``None`` when it does."""
    n = plan.width
    k = len(plan.redactable)
    texts = row[n + 1 : n + 1 + k]
    salt, redacted = row[n + 1 + k], row[n + 2 + k]
    retention = row[plan.retention_at]
    if redacted is not None or retention != "keep":
        if any(t is not None for t in texts):
            return "text present in a row marked redacted"
        tenant = row[plan.tenant_at]
        if (
            redacted is not None
            and max(covered.get(tenant, 0), covered.get(ALL_TENANTS, 0)) < row[0]
        ):
            return "text removed, but no chained redaction record covers this row"
        return None
    for col, text, at in zip(plan.redactable, texts, plan.digest_at, strict=True):
        digest = row[at]
        if text is None and digest is not None:
            return f"{col} removed, but no chained redaction record covers this row"
        if text is not None and (salt is None or chain.text_digest(salt, text) != digest):
            return f"{col} was edited: it no longer matches its committed digest"
    return None


def _scan(conn: Tx, plan: _Plan, lo: int, hi: int) -> Iterator[tuple[int, str, tuple[Any, ...]]]:
    name = plan.name
    cur = conn.cursor(
        sql=f"SELECT {', '.join(plan.columns)} FROM {name} WHERE seq BETWEEN ? AND ? ORDER BY seq",
        params=(lo, hi),
    )
    cur.arraysize = 4096
    while True:
        chunk = cur.fetchmany()
        if not chunk:
            return
        for row in chunk:
            yield row[0], name, row


PARALLEL_MIN_ROWS = 200_000
"""Below this many rows, verify runs in one process (starting workers costs about a second)."""


def _ranges(base_seq: int, head_seq: int, workers: int | None) -> list[tuple[int, int]]:
    """Split ``base_seq + 1 .. head_seq`` into contiguous ranges, one per worker process."""
    total = head_seq - base_seq
    if workers is None:
        workers = 1 if total < PARALLEL_MIN_ROWS else min(os.cpu_count() or 1, 8)
    workers = max(1, min(workers, total))
    step = -(-total // workers) if total else 1
    out = []
    lo = base_seq + 1
    for _ in range(workers):
        hi = min(head_seq, lo + step - 1)
        out.append((lo, hi))
        lo = hi + 1
    out[-1] = (out[-1][0], head_seq)
    return out


def _migrate_1_to_2(log: AuditLog, conn: Tx) -> None:
    """Version 2 chains retention settings: state the ones an older database already holds."""
    rows = [
        ("settings", _setting(tenant, mode, mode, "schema migration 1->2"))
        for tenant, mode in conn.execute(
            "SELECT tenant, prompt_retention FROM audit_tenants ORDER BY tenant"
        )
    ]
    if rows:
        log._append(conn, rows)


MIGRATIONS: dict[int, Callable[[AuditLog, Tx], None]] = {1: _migrate_1_to_2}
"""Schema version -> the step that upgrades a database from it to the next version."""


def _setting(tenant: str, mode: str, previous: str, actor: str) -> Row:
    return {
        "tenant": tenant,
        "name": "prompt_retention",
        "value": mode,
        "previous": previous,
        "actor": actor,
    }


def _check_settings(conn: Tx, head_seq: int) -> list[tuple[int, str, str, str]]:
    """``audit_tenants`` must hold, per tenant, the value its latest chained setting names."""
    chained = {
        tenant: (value, seq)
        for tenant, value, seq in conn.execute(
            "SELECT tenant, value, max(seq) FROM settings WHERE name = 'prompt_retention' "
            "GROUP BY tenant"
        )
    }
    current = dict(conn.execute("SELECT tenant, prompt_retention FROM audit_tenants"))
    problems = []
    for tenant in sorted(set(chained) | set(current)):
        value, seq = chained.get(tenant, ("keep", head_seq + 1))
        now = current.get(tenant, "keep")
        if now != value:
            problems.append(
                (
                    seq,
                    "audit_tenants",
                    "setting",
                    f"tenant {tenant!r} stores prompts as {now!r} but the chain last recorded "
                    f"{value!r}: the setting was changed outside `reelguard audit "
                    "prompt-retention`; set it again with that command to record who and why",
                )
            )
    return problems


def _check_anchor(
    conn: Tx, anchor: Anchor, base_seq: int, base_hash: str, head_seq: int
) -> tuple[int, str, str, str] | None:
    """A problem tuple when ``anchor`` no longer matches the chain, else None."""
    short = anchor.hash[:12]
    if anchor.seq > head_seq:
        return (
            head_seq + 1,
            "audit_chain",
            "anchor",
            f"an anchor taken {anchor.at or 'earlier'} records seq {anchor.seq} ({short}...) but "
            f"the chain now ends at seq {head_seq}: rows at the end were deleted",
        )
    if anchor.seq < base_seq:
        return None
    stored = base_hash if anchor.seq == base_seq else _stored_hash(conn, anchor.seq)
    if stored == anchor.hash:
        return None
    return (
        anchor.seq,
        "audit_chain",
        "anchor",
        f"row seq {anchor.seq} now hashes to {stored[:12]}... but an anchor taken "
        f"{anchor.at or 'earlier'} recorded {short}...: the chain was rewritten since",
    )


def _stored_hash(conn: Tx, seq: int) -> str:
    """The hash stored for row ``seq`` (all zeros if that row is gone: the gap is reported)."""
    for t in TABLES:
        found = conn.execute(f"SELECT hash FROM {t} WHERE seq = ?", (seq,)).fetchone()
        if found is not None:
            return str(found[0])
    return chain.GENESIS


def _verify_range(
    path: str,
    lo: int,
    hi: int,
    prev_hash: str,
    covered: Mapping[str, int],
    check_files: bool,
    max_problems: int,
    data_dir: str | None = None,
) -> tuple[int, int, str, list[tuple[int, str, str, str]]]:
    """Check rows ``lo..hi`` (in a worker process, or in-process for small logs)."""
    database = Database.from_url(path, durable=False)
    try:
        with database.transaction() as tx:
            return _check_range(tx, lo, hi, prev_hash, covered, check_files, max_problems, data_dir)
    finally:
        database.close()


def _check_range(
    conn: Tx,
    lo: int,
    hi: int,
    prev_hash: str,
    covered: Mapping[str, int],
    check_files: bool,
    max_problems: int,
    data_dir: str | None = None,
) -> tuple[int, int, str, list[tuple[int, str, str, str]]]:
    problems: list[tuple[int, str, str, str]] = []

    def problem(seq: int, table: str, kind: str, message: str) -> None:
        if len(problems) < max_problems:
            problems.append((seq, table, kind, message))

    files = _FileCheck(data_dir) if check_files else None
    rows, last_seq, last_hash = _walk_chain(conn, lo, hi, prev_hash, covered, problem, files)
    return rows, last_seq, last_hash, problems


def _walk_chain(
    conn: Tx,
    lo: int,
    hi: int,
    prev_hash: str,
    covered: Mapping[str, int],
    problem: Any,
    files: _FileCheck | None,
) -> tuple[int, int, str]:
    """The verifier's hot loop over rows ``lo..hi`` of every table in seq order.

    Returns (rows seen, last seq seen or ``lo - 1``, the hash that row stores).
    """
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    sha = hashlib.sha256
    plans = _PLANS
    merged = heapq.merge(*(_scan(conn, plan, lo, hi) for plan in plans.values()))
    prev = bytes.fromhex(prev_hash)
    expect = lo
    rows = 0
    for seq, table, row in merged:
        rows += 1
        plan = plans[table]
        n = plan.width
        if seq != expect:
            _gap(seq, expect, table, problem)
        digest = sha(prev + encode([table, *row[:n]]).encode()).digest()
        stored = row[n]
        if digest.hex() != stored:
            problem(
                seq,
                table,
                "hash",
                f"{table} seq {seq} does not match its hash: the row was edited, or rows were "
                "reordered or inserted before it",
            )
            with suppress(TypeError, ValueError):
                digest = bytes.fromhex(stored)
        prev = digest
        if plan.redactable:
            why = _check_text(plan, row, covered)
            if why is not None:
                problem(seq, table, "text", f"{table} seq {seq}: {why}")
        if files is not None and plan.sha256_at >= 0:
            _check_file(plan, row, problem, files)
        expect = seq + 1
    return rows, expect - 1, prev.hex()


def _gap(seq: int, expect: int, table: str, problem: Any) -> None:
    if seq < expect:
        problem(seq, table, "order", f"{table} seq {seq} is out of order or duplicated")
    else:
        gap = f"seq {expect}" if seq == expect + 1 else f"seqs {expect}..{seq - 1}"
        problem(expect, table, "deleted", f"{gap} missing: rows were deleted")


@dataclass(frozen=True, slots=True)
class _FileCheck:
    """``verify --check-files``: where stored evidence paths are resolved (a string, so it
    pickles to the verifier processes)."""

    data_dir: str | None


def _check_file(plan: _Plan, row: Sequence[Any], problem: Any, files: _FileCheck) -> None:
    path, digest = row[-1], row[plan.sha256_at]
    if files.data_dir is not None:
        try:
            target = resolve_evidence_path(path, Path(files.data_dir))
        except UnsafePath as exc:
            problem(row[0], plan.name, "file", str(exc))
            return
    elif Path(path).is_absolute():
        target = Path(path)
    else:
        problem(
            row[0],
            plan.name,
            "file",
            f"evidence path {path} is relative to the data folder; give it (--data-dir)",
        )
        return
    actual, _ = _file_sha256(target)
    if actual is None:
        problem(row[0], plan.name, "file", f"evidence file {path} is missing")
    elif actual != digest:
        problem(row[0], plan.name, "file", f"evidence file {path} was changed after recording")
