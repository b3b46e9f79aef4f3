"""One database the stores share: where it is, its dialect, connections and transactions.

The audit log, the job queue, the API keys and the webhook deliveries all live in one database
and reach it through a :class:`Database`::

    db = Database.from_url("var/reelguard.db")        # a path, or sqlite:///var/reelguard.db,
                                                      # or postgresql://user:pw@host/reelguard
    with db.transaction(write=True) as tx:            # BEGIN IMMEDIATE (SQLite) / BEGIN ... COMMIT
        tx.execute("UPDATE video_jobs SET ... WHERE id = ?", (job_id,))
        audit.record_release(...)                     # the same transaction (a savepoint)

A transaction belongs to the thread that opened it: a ``transaction()`` opened inside another
on the same thread and database joins it (a nested write is a savepoint, so a failing inner
block rolls back alone), which is how a job row and its audit record commit together. Reads
get a snapshot (``write=False``); a write cannot start inside a read. SQL is written once with
``?`` placeholders; :class:`Tx` hands it to the driver in its own style (the
:class:`~storage.dialect.Dialect`).

Connections are pooled per process (a forked child opens its own). On SQLite, writers take
the file's :class:`~storage.sqlite.WriterLock` before ``BEGIN IMMEDIATE`` (a thread lock in
the process, an ``flock`` across processes), so they queue instead of polling SQLite's busy
handler, waiting for other processes up to the busy timeout. On PostgreSQL
(:mod:`storage.postgres`) writers order themselves on the rows they lock (``FOR UPDATE``),
waiting up to the same timeout (``lock_timeout``). Driver errors leave as
:mod:`storage.errors` (``StorageUnavailable``, ``StorageConflict``). A transaction the server
aborts to break a deadlock or a serialization conflict (``StorageRetryable``) can be run again:
:meth:`Database.write` takes the body as a function and does that.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from storage.dialect import Dialect
from storage.errors import StorageError, StorageRetryable, StorageUnsupported
from storage.sqlite import SqliteDriver, writer_lock

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's transaction (or row lock) before giving up."""
IDLE_CONNECTIONS = 16
"""Connections a process keeps open per database between transactions."""
RETRY_ATTEMPTS = 4
"""Runs of a :meth:`Database.write` body the server aborted to break a conflict."""
RETRY_PAUSE_S = 0.01
"""The first pause before such a run again (random up to twice this, doubling each time)."""
T = TypeVar("T")

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


class Driver(Protocol):
    """What a backend (:class:`storage.sqlite.SqliteDriver`,
    :class:`storage.postgres.PostgresDriver`) gives a :class:`Database`."""

    dialect: Dialect
    url: str
    where: str
    """The database as shown in messages (a path, or a URL without its password)."""
    process_lock: str | None
    """A key this process's writers serialise on before ``BEGIN``, or ``None``."""
    traces: bool
    """Whether :meth:`set_trace` hooks the driver (else :class:`Tx` reports statements)."""

    @property
    def errors(self) -> type[Exception]:
        """The driver's base exception class."""
        ...

    def connect(self, *, durable: bool, timeout_s: float) -> Any:
        """A new connection in autocommit mode (the database layer issues ``BEGIN``)."""
        ...

    def translate(self, exc: BaseException) -> StorageError | None:
        """The storage error for a driver error, or ``None`` when it means a bug."""
        ...

    def in_transaction(self, conn: Any) -> bool:
        """Whether ``conn`` is inside a transaction."""
        ...

    def usable(self, conn: Any) -> bool:
        """Whether a pooled connection may be used again."""
        ...

    def cursor(self, conn: Any, *, dicts: bool) -> Any:
        """A cursor for one statement (rows as dicts with ``dicts``; else one that streams)."""
        ...

    def set_trace(self, conn: Any, callback: Callable[[str], object] | None) -> None:
        """Hook ``callback`` to every statement ``conn`` runs (only where :attr:`traces`)."""
        ...

    def probe_write(self) -> str | None:
        """Why the database cannot be written now, or ``None`` (writes nothing)."""
        ...


class Tx:
    """A transaction's connection: run SQL written with ``?`` placeholders.

    Driver errors raised here leave as :mod:`storage.errors`. ``raw`` is the driver connection,
    for the rare code that needs the driver itself.
    """

    __slots__ = ("_depth", "_driver", "_trace", "dialect", "pid", "raw", "write")

    def __init__(
        self,
        raw: Any,
        driver: Driver,
        write: bool,
        trace: Callable[[str], object] | None = None,
    ) -> None:
        self.raw = raw
        self._driver = driver
        self.dialect = driver.dialect
        self.write = write
        self.pid = os.getpid()
        self._trace = trace
        self._depth = 0

    def _fail(self, exc: Exception) -> Exception:
        return self._driver.translate(exc) or exc

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement; the cursor holds its rows (if any)."""
        if self._trace is not None:
            self._trace(sql)
        try:
            cursor: Cursor = self.raw.execute(self.dialect.sql(sql), params)
        except self._driver.errors as exc:
            raise self._fail(exc) from exc
        return cursor

    def add_columns(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        """Add each ``(name, type)`` column that ``table`` lacks (a table made by an older
        version; idempotent, and ALTER only runs when needed, since it locks the table).

        On PostgreSQL it first takes the schema lock that :meth:`Database.create_schema` takes,
        held to the end of the transaction: processes starting together on a new database
        would otherwise collide on the columns, or on an index the caller creates after them.
        """
        lock = self.dialect.lock_name("reelguard-schema")
        if lock is not None:
            self.execute(lock)
        if self.dialect.postgres:
            have = {
                str(name)
                for (name,) in self.all(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = ?",
                    (table,),
                )
            }
        else:
            have = {str(row[1]) for row in self.all(f"PRAGMA table_info({table})")}
        exists = " IF NOT EXISTS" if self.dialect.postgres else ""
        for name, kind in columns:
            if name not in have:
                self.execute(f"ALTER TABLE {table} ADD COLUMN{exists} {name} {kind}")

    def executemany(self, sql: str, rows: Sequence[Params]) -> Cursor:
        """Run one statement for each parameter row."""
        if self._trace is not None:
            self._trace(sql)
        try:
            cur = self.raw.cursor()
            cur.executemany(self.dialect.sql(sql), rows)
        except self._driver.errors as exc:
            raise self._fail(exc) from exc
        cursor: Cursor = cur
        return cursor

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
        """Run ``sql`` on a cursor of its own: rows as dicts with ``dicts``; without, a cursor
        to stream a large result with ``fetchmany`` (server-side on PostgreSQL)."""
        if self._trace is not None:
            self._trace(sql)
        try:
            cur = self._driver.cursor(self.raw, dicts=dicts)
            cur.execute(self.dialect.sql(sql), params)
        except self._driver.errors as exc:
            raise self._fail(exc) from exc
        cursor: Cursor = cur
        return cursor


class Database:
    """A database shared by the stores of one process (see the module docstring): the SQLite
    file at ``path``, or the PostgreSQL server at ``url`` (one of the two).

    ``durable`` (the default) makes every commit survive power loss (SQLite
    ``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``): the audit log is the record of
    evidence. ``durable=False`` (SQLite ``NORMAL``, PostgreSQL ``synchronous_commit=off``) may
    lose the last commits on power loss or a server crash, never on a process crash: for job
    bookkeeping (progress, heartbeats).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        url: str | None = None,
        durable: bool = True,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("Database() takes a SQLite path or a PostgreSQL url, not both")
        self._driver: Driver
        if url is not None:
            from storage.postgres import PostgresDriver

            self._driver = PostgresDriver(url)
            self.path: Path | None = None
        else:
            self._driver = SqliteDriver(Path(path))  # type: ignore[arg-type]
            self.path = Path(path)  # type: ignore[arg-type]
        self.dialect = self._driver.dialect
        self.durable = durable
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._pool_lock = threading.Lock()
        self._idle: list[tuple[Any, int]] = []
        self._open: set[Any] = set()
        self._orphans: list[Any] = []
        self._generation = 0
        self._pid = os.getpid()
        self._trace: Callable[[str], object] | None = None
        self._schemas: set[tuple[int, str]] = set()

    @classmethod
    def from_url(cls, url: str | Path, *, durable: bool = True) -> Database:
        """The database at ``url``: a file path (``var/reelguard.db``), a SQLite URL
        (``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``) or a PostgreSQL URL
        (``postgresql://user:password@host:5432/dbname``; ``postgres://`` and
        ``postgresql+psycopg://`` too).

        Raises :class:`~storage.errors.StorageUnsupported` for any other scheme, and for a URL
        that went through a :class:`~pathlib.Path` (``--db``, ``REELGUARD_DB``), saying which
        setting to use.
        """
        if isinstance(url, Path):
            # A URL that went through Path lost its "//": refuse it rather than create a file
            # named after it (REELGUARD_DB and --db are parsed as paths).
            match = _SCHEME.match(str(url))
            if match is None or len(match.group(1)) == 1 or ":/" not in str(url)[: match.end() + 1]:
                return cls(url, durable=durable)
            hint = ""
            if match.group(1).lower().startswith("postgres"):
                hint = "; a PostgreSQL URL goes in REELGUARD_DATABASE_URL instead"
            raise StorageUnsupported(
                f"{_hide_password(str(url))}: a database path looks like a URL; REELGUARD_DB "
                f"and --db take the path of a SQLite file, e.g. var/reelguard.db{hint}"
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
        shown = _hide_password(url)
        if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
            if not url[match.end() :].startswith("//"):
                raise StorageUnsupported(
                    f"{shown}: a PostgreSQL URL is postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
                )
            return cls(url=url, durable=durable)
        raise StorageUnsupported(
            f"{shown}: unknown database URL scheme {scheme!r}; give a SQLite file path "
            "(REELGUARD_DB or --db), e.g. var/reelguard.db, or a PostgreSQL URL "
            "(REELGUARD_DATABASE_URL), postgresql://USER:PASSWORD@HOST/DBNAME"
        )

    @property
    def url(self) -> str:
        """The database as a URL (``sqlite:///<path>`` or the ``postgresql://`` URL, with its
        password: pass it to processes, never print it; :attr:`where` is for messages)."""
        return self._driver.url

    @property
    def where(self) -> str:
        """The database for messages: the SQLite path, or the URL without its password."""
        return self._driver.where

    def __repr__(self) -> str:
        return f"Database({self.where!r}, durable={self.durable})"

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            conn = self._driver.connect(durable=self.durable, timeout_s=self.busy_timeout_s)
        except self._driver.errors as exc:
            raise (self._driver.translate(exc) or exc) from exc
        if self._trace is not None and self._driver.traces:
            self._driver.set_trace(conn, self._trace)
        return conn

    def _acquire(self) -> tuple[Any, int]:
        with self._pool_lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours
                # Keep them referenced, never closed: closing (or collecting) a PostgreSQL
                # connection here would end the parent's session on the shared socket.
                self._orphans += [conn for conn, _ in self._idle] + list(self._open)
                self._idle, self._open, self._pid = [], set(), os.getpid()
                self._generation += 1
            while self._idle:
                conn, generation = self._idle.pop()
                if self._driver.usable(conn):
                    return conn, generation
                self._open.discard(conn)
            generation = self._generation
        conn = self._connect()
        with self._pool_lock:
            self._open.add(conn)
        return conn, generation

    def _release(self, conn: Any, generation: int) -> None:
        with self._pool_lock:
            keep = (
                generation == self._generation
                and self._pid == os.getpid()
                and len(self._idle) < IDLE_CONNECTIONS
                and self._driver.usable(conn)
            )
            if keep:
                self._idle.append((conn, generation))
                return
            self._open.discard(conn)
        if self._pid == os.getpid():
            with contextlib.suppress(Exception):
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
                with contextlib.suppress(Exception):
                    conn.close()

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback`` with every SQL statement this process's connections run (``None``
        stops it): for tests and debugging."""
        with self._pool_lock:
            self._trace = callback
            conns = list(self._open)
        if self._driver.traces:
            for conn in conns:
                self._driver.set_trace(conn, callback)

    def probe_write(self) -> str | None:
        """Why the database cannot be written now, or ``None`` when it can (writes nothing)."""
        return self._driver.probe_write()

    # -- transactions ---------------------------------------------------------------------------

    def in_transaction(self) -> bool:
        """Whether this thread is inside a transaction of this database (a new one would join
        it rather than commit on its own)."""
        return self._current_tx() is not None

    def _current_tx(self) -> Tx | None:
        """This thread's open transaction in this process, if any."""
        current: Tx | None = getattr(self._local, "tx", None)
        return current if current is not None and current.pid == os.getpid() else None

    def read_record(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        """The first row of one read-only statement, as a dict, or ``None``.

        The statement runs on its own, in autocommit (it is its own snapshot), so it costs one
        round trip instead of three (``BEGIN``, the statement, ``COMMIT``): for lookups on
        every request (API keys). Inside a transaction of this thread it runs in that one.
        """
        current = self._current_tx()
        if current is not None:
            return current.record(sql, params)
        conn, generation = self._acquire()
        try:
            trace = None if self._driver.traces else self._trace
            return Tx(conn, self._driver, False, trace).record(sql, params)
        finally:
            self._release(conn, generation)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Tx]:
        """A transaction on this thread's connection (see the module docstring).

        Commits when the block ends, rolls back when it raises. Inside another transaction of
        this database on the same thread it joins that one: a nested write runs in a savepoint.
        """
        current = self._current_tx()
        if current is not None:
            with self._nested(current, write) as tx:
                yield tx
            return
        key = self._driver.process_lock
        lock = writer_lock(key) if write and key is not None else None
        if lock is not None:
            lock.acquire(self.busy_timeout_s)
        try:
            conn, generation = self._acquire()
            try:
                trace = None if self._driver.traces else self._trace
                tx = Tx(conn, self._driver, write, trace)
                self._statement(
                    conn, self.dialect.begin_write if write else self.dialect.begin_read
                )
                self._local.tx = tx
                try:
                    yield tx
                except BaseException as exc:
                    # A signal's exception (Ctrl-C, SIGTERM) can arrive just after COMMIT
                    # returned: then there is nothing left to roll back.
                    self._rollback(conn)
                    if isinstance(exc, self._driver.errors):
                        error = self._driver.translate(exc)
                        if error is not None:
                            raise error from exc
                    raise
                else:
                    try:
                        self._statement(conn, "COMMIT")
                    except BaseException:
                        self._rollback(conn)
                        raise
                finally:
                    self._local.tx = None
            finally:
                self._release(conn, generation)
        finally:
            if lock is not None:
                lock.release()

    def write(self, body: Callable[[Tx], T], *, attempts: int = RETRY_ATTEMPTS) -> T:
        """Run ``body`` in a write transaction and return its result; when the server aborts
        the transaction to break a conflict with another one (:class:`StorageRetryable`: a
        PostgreSQL deadlock or serialization failure), run it again after a short random
        pause, up to ``attempts`` runs in all. ``body`` may run more than once, so it must do
        nothing but database work. Inside another transaction of this database on the same
        thread it runs once, in that one: only the outermost transaction can be run again."""
        nested = self.in_transaction()
        attempt = 1
        while True:
            try:
                with self.transaction(write=True) as tx:
                    return body(tx)
            except StorageRetryable:
                if nested or attempt >= attempts:
                    raise
            # Random, growing pauses: the two transactions that collided must not collide
            # again the same way.
            time.sleep(random.uniform(0, RETRY_PAUSE_S * 2**attempt))
            attempt += 1

    def _rollback(self, conn: Any) -> None:
        """Roll back what is left of a failed transaction; a connection that broke meanwhile
        (the server went away) is dropped by the pool instead, and the first error stands."""
        if not self._driver.usable(conn):
            return
        if self._driver.in_transaction(conn):
            try:
                self._statement(conn, "ROLLBACK")
            except StorageError:
                if self._driver.usable(conn):
                    raise

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
            if self._driver.usable(outer.raw):
                self._statement(outer.raw, f"ROLLBACK TO SAVEPOINT {name}")
                self._statement(outer.raw, f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self._statement(outer.raw, f"RELEASE SAVEPOINT {name}")
        finally:
            outer._depth -= 1

    def _statement(self, conn: Any, sql: str) -> None:
        if self._trace is not None and not self._driver.traces:
            self._trace(sql)
        try:
            conn.execute(sql)
        except self._driver.errors as exc:
            raise (self._driver.translate(exc) or exc) from exc

    def create_schema(self, statements: Sequence[str]) -> None:
        """Run idempotent DDL (``CREATE ... IF NOT EXISTS``, written for SQLite: see
        :meth:`~storage.dialect.Dialect.ddl`) in one write transaction; on PostgreSQL under a
        lock, since two processes creating the same table at once would collide."""
        with self.transaction(write=True) as tx:
            lock = self.dialect.lock_name("reelguard-schema")
            if lock is not None:
                tx.execute(lock)
            for statement in statements:
                tx.execute(self.dialect.ddl(statement))

    def ensure_schema(self, name: str, statements: Sequence[str]) -> None:
        """:meth:`create_schema` once per process for the tables called ``name`` (a store that
        opens its transactions often need not repeat its ``CREATE`` statements)."""
        key = (os.getpid(), name)
        if key not in self._schemas:
            self.create_schema(statements)
            self._schemas.add(key)


def _hide_password(url: str) -> str:
    from storage.postgres import shown

    return shown(url)


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a DDL script (``;``-separated, no ``;`` inside a statement)."""
    return tuple(s.strip() for s in script.split(";") if s.strip())
