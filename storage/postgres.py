"""PostgreSQL specifics (psycopg 3): connect, translate driver errors, probe writes, LISTEN.

A :class:`~storage.database.Database` on a ``postgresql://`` URL keeps a small pool of
connections per process, each in autocommit mode so the database layer issues ``BEGIN`` /
``COMMIT`` itself, exactly as it does on SQLite. Every connection sets:

* ``lock_timeout`` to the busy timeout: a writer waiting for a row lock (the chain head, a job
  row) gives up like a SQLite writer waiting for the file lock, as
  :class:`~storage.errors.StorageUnavailable`;
* ``synchronous_commit = off`` for a database opened ``durable=False`` (job bookkeeping): a
  server crash may lose the last commits, never corrupt them; the audit log keeps ``on``;
* ``application_name`` ``reelguard``, so the server's activity view names us.

:class:`Listener` is the worker's doorbell on PostgreSQL: a dedicated connection that
``LISTEN``\\ s on a channel the job store ``NOTIFY``-rings in the transaction that queues a job (the
notification is delivered when that transaction commits).
"""

from __future__ import annotations

import itertools
import re
import select
import time
from types import TracebackType
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from storage.errors import StorageConflict, StorageError, StorageRetryable, StorageUnavailable

SCHEMES = ("postgresql", "postgres")
"""URL schemes a PostgreSQL database is named by (``postgresql+psycopg`` is accepted too)."""


def shown(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(/+[^:/@]*):[^@/]*@", r"\1:***@", url)


def conninfo(url: str) -> str:
    """The libpq URL psycopg connects with (``postgresql+psycopg://`` becomes
    ``postgresql://``)."""
    return re.sub(r"^[A-Za-z][A-Za-z0-9.-]*(\+[A-Za-z0-9]+)?://", "postgresql://", url)


def connect(url: str, *, durable: bool, timeout_s: float) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (the caller issues ``BEGIN``), configured as the module
    docstring says. Raises :class:`psycopg.Error` when the server cannot be reached."""
    conn = psycopg.connect(
        conninfo(url),
        autocommit=True,
        connect_timeout=max(1, round(timeout_s)),
        application_name="reelguard",
    )
    try:
        conn.execute(f"SET lock_timeout = {int(timeout_s * 1000)}")
        conn.execute(f"SET synchronous_commit = {'on' if durable else 'off'}")
    except BaseException:
        conn.close()
        raise
    return conn


def translate(exc: BaseException, where: str) -> StorageError | None:
    """The storage error for a psycopg error raised on the database at ``where``, or ``None``
    when the error means a bug (SQL that does not parse, a missing table, bad data for a
    column) and must surface as it is."""
    if not isinstance(exc, psycopg.Error):
        return None
    if isinstance(exc, psycopg.IntegrityError):
        return StorageConflict(f"{where}: {_first_line(exc)}")
    if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return StorageRetryable(f"{where}: {_first_line(exc)}; the transaction may be run again")
    if isinstance(
        exc,
        psycopg.ProgrammingError
        | psycopg.DataError
        | psycopg.NotSupportedError
        | pg_errors.InFailedSqlTransaction,
    ):
        return None
    return StorageUnavailable(f"{where}: cannot use the database: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def in_transaction(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn`` is inside a transaction (also an aborted one)."""
    return conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def usable(conn: psycopg.Connection[Any]) -> bool:
    """Whether a pooled connection may be handed out again (not closed, not broken)."""
    return not conn.closed and not conn.broken


def probe_write(url: str, *, timeout_s: float = 2.0) -> str | None:
    """Can the database at ``url`` take writes now? ``None`` when it can, else why not
    (unreachable, a read-only standby, ``default_transaction_read_only``). Writes nothing."""
    try:
        with psycopg.connect(
            conninfo(url), autocommit=True, connect_timeout=max(1, round(timeout_s))
        ) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
            ).fetchone()
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {_first_line(exc)}"
    if row is None:
        return "the server answered nothing"
    if row[0]:
        return "the server is a read-only standby (in recovery)"
    if row[1] == "on":
        return "the server makes transactions read-only (default_transaction_read_only)"
    return None


class Listener:
    """Rings when a transaction that ran ``NOTIFY <channel>`` commits, from any process on any
    machine (the job store notifies ``reelguard_jobs`` when it queues a job).

    The same interface as :class:`gateway.doorbell.DatabaseDoorbell`: :attr:`available`,
    :attr:`unavailable_reason`, :meth:`wait`, :meth:`close`. A lost connection is reopened on
    the next :meth:`wait`; meanwhile the waiter falls back to its timeout (callers peek on a
    slow tick either way, so a lost notification costs latency, never a job).
    """

    def __init__(self, url: str, channel: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", channel):
            raise ValueError(f"channel {channel!r}: lower-case letters, digits and _ only")
        self.url, self.channel = url, channel
        self._conn: psycopg.Connection[Any] | None = None
        self.unavailable_reason: str | None = None
        self._open()

    def _open(self) -> None:
        try:
            conn = psycopg.connect(conninfo(self.url), autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {self.channel}")
        except psycopg.Error as exc:
            self.unavailable_reason = f"{shown(self.url)}: {_first_line(exc)}"
            self._conn = None
            return
        self._conn, self.unavailable_reason = conn, None

    @property
    def available(self) -> bool:
        """True while a notification wakes :meth:`wait`."""
        return self._conn is not None

    def wait(self, timeout_s: float) -> bool:
        """Block until a notification arrived since the previous call (True) or ``timeout_s``
        passed (False)."""
        if self._conn is None or self._conn.closed:
            self._open()
            if self._conn is None:
                time.sleep(max(0.0, timeout_s))
                return False
        conn = self._conn
        deadline = time.monotonic() + max(0.0, timeout_s)
        try:
            while True:
                if self._drain(conn):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                readable, _, _ = select.select([conn.fileno()], [], [], remaining)
                if not readable:
                    return False
        except (psycopg.Error, OSError, ValueError) as exc:
            self.unavailable_reason = f"{shown(self.url)}: {exc}"
            self.close()
            return False

    @staticmethod
    def _drain(conn: psycopg.Connection[Any]) -> bool:
        """Read what the socket holds; True if a notification is among it."""
        pgconn = conn.pgconn
        pgconn.consume_input()
        if pgconn.status == psycopg.pq.ConnStatus.BAD:
            raise psycopg.OperationalError("the listening connection was lost")
        rang = False
        while pgconn.notifies() is not None:
            rang = True
        return rang

    def close(self) -> None:
        """Close the listening connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PostgresDriver:
    """The :class:`~storage.database.Database` backend for a PostgreSQL server at ``url``."""

    errors = psycopg.Error
    traces = False
    """psycopg has no statement hook: :class:`~storage.database.Tx` reports statements."""
    process_lock: str | None = None
    """No per-process writer lock: the server's row locks order writers."""

    def __init__(self, url: str) -> None:
        from storage.dialect import POSTGRES

        self.url = url
        self.where = shown(url)
        self.dialect = POSTGRES
        self._cursors = itertools.count()

    def connect(self, *, durable: bool, timeout_s: float) -> psycopg.Connection[Any]:
        """A fresh pooled connection (see :func:`connect`)."""
        return connect(self.url, durable=durable, timeout_s=timeout_s)

    def translate(self, exc: BaseException) -> StorageError | None:
        """See :func:`translate`."""
        return translate(exc, self.where)

    in_transaction = staticmethod(in_transaction)
    usable = staticmethod(usable)

    def cursor(self, conn: psycopg.Connection[Any], *, dicts: bool) -> Any:
        """A cursor for one statement: rows as dicts, or a server-side cursor that streams a
        large scan (the verifier's) in ``fetchmany`` chunks instead of loading it whole."""
        if dicts:
            return conn.cursor(row_factory=dict_row)
        return conn.cursor(name=f"reelguard_scan_{next(self._cursors)}")

    def set_trace(self, conn: Any, callback: Any) -> None:
        """Not used (:attr:`traces` is False)."""

    def probe_write(self) -> str | None:
        """See :func:`probe_write`."""
        return probe_write(self.url)
