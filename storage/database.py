"""One database the stores share: where it is, its dialect, connections and transactions.

The audit log, the job queue, the API keys and the webhook deliveries all live in one database
and reach it through a :class:`Database`::

    db = Database.from_url("var/reelguard.db")        # a path, or sqlite:///var/reelguard.db
    with db.transaction(write=True) as tx:            # BEGIN IMMEDIATE ... COMMIT
        tx.execute("UPDATE video_jobs SET ... WHERE id = ?", (job_id,))
        audit.record_release(...)                     # the same transaction (a savepoint)

A transaction belongs to the thread that opened it: a ``transaction()`` opened inside another
on the same thread and database joins it (a nested write is a savepoint, so a failing inner
block rolls back alone), which is how a job row and its audit record commit together. Reads
get a snapshot (``write=False``); a write cannot start inside a read.

Connections are pooled per process (a forked child opens its own); writers in one process take
a lock per database file before ``BEGIN IMMEDIATE``, so they queue in Python instead of polling
SQLite's busy handler, while writers in other processes wait up to the busy timeout. Driver
errors leave as :mod:`storage.errors` (``StorageUnavailable``, ``StorageConflict``).

``postgresql://`` URLs are refused with :class:`~storage.errors.StorageUnsupported` until
PostgreSQL support lands (issue 13); what differs between the two databases is in
:class:`~storage.dialect.Dialect`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from storage.dialect import SQLITE, Dialect
from storage.errors import StorageError, StorageUnsupported
from storage.sqlite import connect_wal, probe_write, translate

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's transaction before giving up."""
IDLE_CONNECTIONS = 16
"""Connections a process keeps open per database between transactions."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
Params = Sequence[Any]


class Cursor(Protocol):
    """The DB-API cursor members the stores use."""

    arraysize: int

    @property
    def rowcount(self) -> int:
        """Rows the last ``UPDATE``/``DELETE``/``INSERT`` changed."""
        ...

    def fetchone(self) -> Any:
        """The next row, or ``None``."""
        ...

    def fetchmany(self, size: int = ...) -> list[Any]:
        """Up to ``size`` (default ``arraysize``) more rows."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...

    def __iter__(self) -> Iterator[Any]: ...


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class Tx:
    """A transaction's connection: run SQL written with ``?`` placeholders.

    Driver errors raised here leave as :mod:`storage.errors`. ``raw`` is the driver connection,
    for the rare code that needs the driver itself (the verifier's streaming scan).
    """

    __slots__ = ("_depth", "_where", "dialect", "pid", "raw", "write")

    def __init__(self, raw: sqlite3.Connection, dialect: Dialect, write: bool, where: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self.write = write
        self.pid = os.getpid()
        self._where = where
        self._depth = 0

    def _fail(self, exc: sqlite3.Error) -> StorageError | sqlite3.Error:
        return translate(exc, self._where) or exc

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement; the cursor holds its rows (if any)."""
        try:
            return self.raw.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc

    def executemany(self, sql: str, rows: Sequence[Params]) -> Cursor:
        """Run one statement for each parameter row."""
        try:
            return self.raw.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """The first row as a tuple, or ``None``."""
        found: tuple[Any, ...] | None = self.execute(sql, params).fetchone()
        return found

    def all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Every row as a tuple."""
        return self.execute(sql, params).fetchall()

    def value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row (``None`` when there is no row)."""
        found = self.execute(sql, params).fetchone()
        return None if found is None else found[0]

    def record(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        """The first row as a dict keyed by column name, or ``None``."""
        found: dict[str, Any] | None = self.cursor(dicts=True, sql=sql, params=params).fetchone()
        return found

    def records(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Every row as a dict keyed by column name."""
        return self.cursor(dicts=True, sql=sql, params=params).fetchall()

    def cursor(self, *, dicts: bool = False, sql: str, params: Params = ()) -> Cursor:
        """Run ``sql`` on a cursor of its own (rows as dicts with ``dicts``), for streaming."""
        cur = self.raw.cursor()
        if dicts:
            cur.row_factory = _dict_row
        try:
            return cur.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._fail(exc) from exc


class Database:
    """A database shared by the stores of one process (see the module docstring).

    ``durable`` (the default) fsyncs every commit (SQLite ``synchronous=FULL``): the audit log
    is the record of evidence. ``durable=False`` (``NORMAL``) may lose the last commits on power
    loss, never on a process crash: for job bookkeeping (progress, heartbeats).
    """

    def __init__(
        self,
        path: Path,
        *,
        durable: bool = True,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        dialect: Dialect = SQLITE,
    ) -> None:
        self.path = Path(path)
        self.dialect = dialect
        self.durable = durable
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._pool_lock = threading.Lock()
        self._idle: list[tuple[sqlite3.Connection, int]] = []
        self._open: set[sqlite3.Connection] = set()
        self._generation = 0
        self._pid = os.getpid()
        self._trace: Callable[[str], object] | None = None

    @classmethod
    def from_url(cls, url: str | Path, *, durable: bool = True) -> Database:
        """The database at ``url``: a file path (``var/reelguard.db``) or a SQLite URL
        (``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``).

        Raises :class:`~storage.errors.StorageUnsupported` for ``postgresql://`` (not supported
        yet: issue 13) and any other scheme, saying which setting to change.
        """
        if isinstance(url, Path):
            # A URL that went through Path lost its "//": refuse it rather than create a file
            # named after it (REELGUARD_DB and --db are parsed as paths).
            match = _SCHEME.match(str(url))
            if match is None or len(match.group(1)) == 1 or ":/" not in str(url)[: match.end() + 1]:
                return cls(url, durable=durable)
            if match.group(1).lower().startswith("postgres"):
                cls.from_url(f"{match.group(1)}://{str(url)[match.end() :].lstrip('/')}")
            raise StorageUnsupported(
                f"{url}: a database path looks like a URL; REELGUARD_DB and --db take the path "
                "of a SQLite file, e.g. var/reelguard.db"
            )
        match = _SCHEME.match(url)
        if match is None or len(match.group(1)) == 1:  # a path (or a Windows drive letter)
            return cls(Path(url), durable=durable)
        scheme = match.group(1).lower()
        if scheme == "sqlite":
            rest = url[match.end() :]
            if not rest.startswith("///") or len(rest) == 3:
                raise StorageUnsupported(
                    f"{url}: a SQLite URL is sqlite:///relative/path.db or "
                    "sqlite:////absolute/path.db"
                )
            return cls(Path(rest[3:]), durable=durable)
        shown = re.sub(r"//[^@/]*@", "//***@", url)  # never echo a password
        if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
            raise StorageUnsupported(
                f"{shown}: PostgreSQL is not supported yet (issue 13: REELGUARD_DATABASE_URL "
                "will take this URL); this version keeps jobs, keys and the audit log in one "
                "SQLite file: set REELGUARD_DB (or --db) to its path, e.g. var/reelguard.db"
            )
        raise StorageUnsupported(
            f"{shown}: unknown database URL scheme {scheme!r}; give a SQLite file path "
            "(REELGUARD_DB or --db), e.g. var/reelguard.db"
        )

    @property
    def url(self) -> str:
        """The database as a URL (``sqlite:///<path>``)."""
        return f"sqlite:///{self.path}"

    def __repr__(self) -> str:
        return f"Database({self.url!r}, durable={self.durable})"

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = connect_wal(
                self.path,
                synchronous="FULL" if self.durable else "NORMAL",
                timeout_s=self.busy_timeout_s,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise (translate(exc, self.path) or exc) from exc
        except OSError as exc:  # the folder cannot be created
            raise (translate(sqlite3.OperationalError(str(exc)), self.path) or exc) from exc
        if self._trace is not None:
            conn.set_trace_callback(self._trace)
        return conn

    def _acquire(self) -> tuple[sqlite3.Connection, int]:
        with self._pool_lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours
                self._idle, self._open, self._pid = [], set(), os.getpid()
                self._generation += 1
            if self._idle:
                return self._idle.pop()
            generation = self._generation
        conn = self._connect()
        with self._pool_lock:
            self._open.add(conn)
        return conn, generation

    def _release(self, conn: sqlite3.Connection, generation: int) -> None:
        with self._pool_lock:
            keep = (
                generation == self._generation
                and self._pid == os.getpid()
                and len(self._idle) < IDLE_CONNECTIONS
            )
            if keep:
                self._idle.append((conn, generation))
                return
            self._open.discard(conn)
        if self._pid == os.getpid():
            conn.close()

    def close(self) -> None:
        """Close this process's connections (those in use close when their transaction ends);
        the next transaction opens a fresh one."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
            self._generation += 1
            for conn, _ in idle:
                self._open.discard(conn)
        if self._pid == os.getpid():
            for conn, _ in idle:
                conn.close()

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback`` with every SQL statement this process's connections run (``None``
        stops it): for tests and debugging."""
        with self._pool_lock:
            self._trace = callback
            conns = list(self._open)
        for conn in conns:
            conn.set_trace_callback(callback)

    def probe_write(self) -> str | None:
        """Why the database cannot be written now, or ``None`` when it can (writes nothing)."""
        return probe_write(self.path)

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Tx]:
        """A transaction on this thread's connection (see the module docstring).

        Commits when the block ends, rolls back when it raises. Inside another transaction of
        this database on the same thread it joins that one: a nested write runs in a savepoint.
        """
        current: Tx | None = getattr(self._local, "tx", None)
        if current is not None and current.pid == os.getpid():
            with self._nested(current, write) as tx:
                yield tx
            return
        lock = _write_lock(self.path) if write else None
        if lock is not None:
            lock.acquire()
        try:
            conn, generation = self._acquire()
            try:
                tx = Tx(conn, self.dialect, write, str(self.path))
                self._statement(
                    conn, self.dialect.begin_write if write else self.dialect.begin_read
                )
                self._local.tx = tx
                try:
                    yield tx
                except BaseException as exc:
                    # A signal's exception (Ctrl-C, SIGTERM) can arrive just after COMMIT
                    # returned: then there is nothing left to roll back.
                    if conn.in_transaction:
                        self._statement(conn, "ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        error = translate(exc, self.path)
                        if error is not None:
                            raise error from exc
                    raise
                else:
                    try:
                        self._statement(conn, "COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            self._statement(conn, "ROLLBACK")
                        raise
                finally:
                    self._local.tx = None
            finally:
                self._release(conn, generation)
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def _nested(self, outer: Tx, write: bool) -> Iterator[Tx]:
        if write and not outer.write:
            raise RuntimeError(
                "a write transaction cannot start inside a read transaction of the same "
                "database; open the outer one with write=True"
            )
        if not write:
            yield outer
            return
        outer._depth += 1
        name = f"sp_{outer._depth}"
        self._statement(outer.raw, f"SAVEPOINT {name}")
        try:
            yield outer
        except BaseException:
            self._statement(outer.raw, f"ROLLBACK TO {name}")
            self._statement(outer.raw, f"RELEASE {name}")
            raise
        else:
            self._statement(outer.raw, f"RELEASE {name}")
        finally:
            outer._depth -= 1

    def _statement(self, conn: sqlite3.Connection, sql: str) -> None:
        try:
            conn.execute(sql)
        except sqlite3.Error as exc:
            raise (translate(exc, self.path) or exc) from exc

    def create_schema(self, statements: Sequence[str]) -> None:
        """Run idempotent DDL (``CREATE ... IF NOT EXISTS``) in one write transaction."""
        with self.transaction(write=True) as tx:
            for statement in statements:
                tx.execute(statement)


_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.RLock:
    """The lock this process's writers to the file at ``path`` take before ``BEGIN IMMEDIATE``
    (shared by every :class:`Database` of that file, so they queue here, not in SQLite)."""
    key = os.path.abspath(path)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


def _forget_write_locks() -> None:
    # A forked child may inherit a lock some other thread of the parent held at the fork.
    global _WRITE_LOCKS_GUARD
    _WRITE_LOCKS.clear()
    _WRITE_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_write_locks)


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a DDL script (``;``-separated, no ``;`` inside a statement)."""
    return tuple(s.strip() for s in script.split(";") if s.strip())
