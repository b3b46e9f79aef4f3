"""Group commit: concurrent callers' moderation records in one transaction (one fsync).

Under load the gateway's requests used to commit one transaction each, and each took its turn
on the chain head (``BEGIN IMMEDIATE`` on SQLite, the head's row lock on PostgreSQL), so a
process answered no faster than one fsync (or one PostgreSQL commit and its round trips) at a
time. :class:`GroupCommit` lets callers that arrive while a commit is under way queue up; when
it ends, one of them (the *leader*) appends every queued request's rows in one transaction,
then wakes them all. Nothing changes about what a caller is promised:

* :meth:`GroupCommit.record` returns only after the transaction holding the caller's rows has
  committed (durably, as every audit write), and raises when it did not: an answer is never
  sent for a decision that is not on record;
* a request's rows stay together and in order, and the chain keeps one global order: the
  leader appends under the same head lock as any other writer, in arrival order;
* one bad request does not fail the others: when the group's transaction fails on a
  constraint (a reused request id), every request in it is written again alone, so only the
  bad one gets the error; any other failure (the database is unavailable) reaches every caller
  of that group, who then answers 503 (fail closed).

Batches are bounded by the callers waiting (the gateway's admission limit bounds those), so a
group never grows without limit; a lone caller commits at once, with no added wait.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from audit.append import append, retention_of
from audit.errors import InvalidRecord
from audit.records import ModerationRecord
from audit.rows import TableRows, moderation_rows
from storage import StorageConflict, Tx

MAX_GROUP_REQUESTS = 256
"""The most requests one group transaction takes; the rest go in the next one."""


@dataclass(eq=False)
class _Request:
    """One caller's records and, once its group has committed or failed, the outcome."""

    records: Sequence[ModerationRecord]
    done: bool = False
    error: BaseException | None = None
    rows: TableRows = field(default_factory=list)


WriteTx = Callable[[], AbstractContextManager[Tx]]


class GroupCommit:
    """Commits the moderation records of concurrent callers of one process together.

    ``write`` opens an audit write transaction (:meth:`audit.log.AuditLog.transaction`: the
    schema is ready and the head is locked). Thread-safe; a forked child starts afresh.
    """

    def __init__(self, write: WriteTx) -> None:
        self._write = write
        self._pid = -1
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._leading = False
        self._pid = os.getpid()
        self.groups = 0
        """Group transactions committed so far (for tests and benchmarks)."""

    @property
    def waiting(self) -> int:
        """Callers queued for the next group (the one being committed not counted)."""
        with self._cond:
            return len(self._queue)

    @property
    def committing(self) -> bool:
        """Whether a caller of this process is committing a group now."""
        with self._cond:
            return self._leading

    def record(self, records: Sequence[ModerationRecord]) -> None:
        """Append ``records`` (one request's items, in order) and return once committed.

        Raises what the write raised (:class:`~audit.errors.InvalidRecord` for a reused id,
        a :mod:`storage.errors` error when the database failed): then none of ``records`` is
        in the log.
        """
        if self._pid != os.getpid():
            self._reset()
        mine = _Request(records)
        cond = self._cond
        with cond:
            self._queue.append(mine)
        while True:  # as leader, until a group held this caller's records
            with cond:
                while not mine.done and self._leading:
                    cond.wait()
                if mine.done:
                    return _outcome(mine)
                self._leading = True
                group = self._queue[:MAX_GROUP_REQUESTS]
                del self._queue[:MAX_GROUP_REQUESTS]
            try:
                self._commit(group)
            except BaseException as exc:  # every caller in the group gets it (_outcome)
                for req in group:
                    if not req.done:
                        req.error = exc
            finally:
                with cond:
                    for req in group:
                        req.done = True
                    self._leading = False
                    cond.notify_all()

    def _commit(self, group: list[_Request]) -> None:
        """Append the whole group in one transaction; on a constraint failure, each alone."""
        try:
            with self._write() as tx:
                retention: dict[str, str] = {}
                ready = []
                for req in group:
                    try:
                        req.rows = [
                            row
                            for rec in req.records
                            for row in moderation_rows(
                                rec, retention.get(rec.tenant) or _retention(tx, rec, retention)
                            )
                        ]
                    except InvalidRecord as exc:  # this request only
                        req.error, req.done = exc, True
                        continue
                    ready.append(req)
                if ready:
                    append(tx, [row for req in ready for row in req.rows])
            self.groups += 1
        except StorageConflict:
            if len(group) == 1 and len(group[0].records) == 1:
                raise
            for req in group:
                if not req.done:
                    self._commit_alone(req)

    def _commit_alone(self, req: _Request) -> None:
        try:
            with self._write() as tx:
                for rec in req.records:
                    rows = moderation_rows(rec, retention_of(tx, rec.tenant))
                    try:
                        append(tx, rows)
                    except StorageConflict as exc:
                        raise _reused(rec) from exc
            self.groups += 1
        except BaseException as exc:  # handed to this request's caller
            req.error = exc
        req.done = True


def _retention(tx: Tx, rec: ModerationRecord, seen: dict[str, str]) -> str:
    seen[rec.tenant] = retention_of(tx, rec.tenant)
    return seen[rec.tenant]


def _reused(rec: ModerationRecord) -> InvalidRecord:
    return InvalidRecord(
        f"request id {rec.request_id!r} is already in the audit log; give each request "
        "(each input item) its own id"
    )


def _outcome(req: _Request) -> None:
    if req.error is not None:
        if isinstance(req.error, StorageConflict):
            raise _reused(req.records[0]) from req.error
        raise req.error
