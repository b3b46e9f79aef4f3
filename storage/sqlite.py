"""SQLite specifics: open the shared file in WAL mode, translate driver errors, probe writes.

Opening safely when several processes start at once: the gateway's database (audit log, jobs,
API keys) is opened by the web process and every worker process, often in the same second.
Switching a file to WAL (or reading its mode right after the last connection closed, while
another process is recovering the WAL) can answer ``database is locked`` at once: SQLite does
not call the busy handler for that step, so the busy timeout alone does not help.
:func:`connect_wal` sets the busy timeout first and retries that one step with backoff until
the same deadline.

Waiting for another process's write: SQLite's busy handler sleeps and tries again in growing
steps (1, 2, 5, 10 ... 100 ms), so under load a writer that found the file busy often slept
on long after the lock was free (p99 of 160-330 ms with 2-4 web processes, where one commit
takes about a millisecond). :class:`WriterLock` makes writers queue instead: in one process
on a thread lock, across processes on an ``flock`` of a file beside the database
(``<db>-writer``), which the kernel hands to the next waiter the moment it is unlocked and
drops when its process dies (``kill -9`` included). The busy timeout still bounds the wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from storage.errors import StorageConflict, StorageError, StorageUnavailable

Synchronous = Literal["FULL", "NORMAL"]

log = logging.getLogger("reelguard.storage")

_RETRYABLE = ("locked", "busy")


def connect_wal(
    path: Path | str,
    *,
    synchronous: Synchronous,
    timeout_s: float = 30.0,
    autocommit: bool = True,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with a ``timeout_s`` busy timeout.

    ``autocommit=True`` opens with ``isolation_level=None`` (callers issue ``BEGIN`` themselves);
    ``synchronous`` is ``FULL`` for records of evidence, ``NORMAL`` where a lost last commit after
    power loss is acceptable. Raises :class:`sqlite3.OperationalError` if the file stays locked
    past the deadline.
    """
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=check_same_thread)
    if autocommit:
        conn.isolation_level = None
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        _enable_wal(conn, deadline=time.monotonic() + timeout_s)
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, *, deadline: float) -> None:
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not any(word in str(exc) for word in _RETRYABLE) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            continue
        if str(mode).lower() != "wal":
            # In-memory databases answer "memory"; anything else means WAL is unavailable.
            if str(mode).lower() == "memory":
                return
            raise sqlite3.OperationalError(f"could not switch the database to WAL (mode {mode!r})")
        return


def translate(exc: sqlite3.Error, where: Path | str) -> StorageError | None:
    """The storage error for a driver error raised on the database at ``where``, or ``None``
    when the error means a bug (bad SQL, a closed connection) and must surface as it is."""
    if isinstance(exc, sqlite3.IntegrityError):
        return StorageConflict(f"{where}: {exc}")
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return None
    if isinstance(exc, sqlite3.OperationalError) and str(exc).startswith(
        ("no such", "near ", "incomplete input")
    ):
        return None  # a bug in the SQL, not the database's state
    if isinstance(exc, sqlite3.DatabaseError):
        return StorageUnavailable(f"{where}: cannot use the database: {exc}")
    return None


def probe_write(path: Path, *, timeout_s: float = 0.2) -> str | None:
    """Can the file at ``path`` be written now? ``BEGIN IMMEDIATE`` then ``ROLLBACK`` on a
    fresh connection that never creates the file (nothing is written); ``None`` when it can,
    else why not. Another process holding the write lock counts as writable."""
    try:
        uri = f"{Path(path).resolve().as_uri()}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if any(word in str(exc) for word in _RETRYABLE):
            return None  # another process is writing: writable
        return f"{type(exc).__name__}: {exc}"
    except (OSError, sqlite3.Error) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _dict_row(cursor: sqlite3.Cursor, row: tuple[object, ...]) -> dict[str, object]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class SqliteDriver:
    """The :class:`~storage.database.Database` backend for the SQLite file at ``path``."""

    errors = sqlite3.Error
    traces = True

    def __init__(self, path: Path) -> None:
        from storage.dialect import SQLITE

        self.path = Path(path)
        self.where = str(self.path)
        self.url = f"sqlite:///{self.path}"
        self.dialect = SQLITE
        self.process_lock: str | None = os.path.abspath(self.path)
        """Writers queue on :func:`writer_lock` of this key before ``BEGIN IMMEDIATE``."""

    def connect(self, *, durable: bool, timeout_s: float) -> sqlite3.Connection:
        """A fresh pooled connection in WAL mode (see :func:`connect_wal`)."""
        try:
            return connect_wal(
                self.path,
                synchronous="FULL" if durable else "NORMAL",
                timeout_s=timeout_s,
                check_same_thread=False,
            )
        except OSError as exc:  # the folder cannot be created
            raise sqlite3.OperationalError(str(exc)) from exc

    def translate(self, exc: BaseException) -> StorageError | None:
        """See :func:`translate`."""
        return translate(exc, self.path) if isinstance(exc, sqlite3.Error) else None

    @staticmethod
    def in_transaction(conn: sqlite3.Connection) -> bool:
        """Whether ``conn`` is inside a transaction."""
        return conn.in_transaction

    @staticmethod
    def usable(conn: sqlite3.Connection) -> bool:
        """A pooled SQLite connection stays usable."""
        return True

    @staticmethod
    def cursor(conn: sqlite3.Connection, *, dicts: bool) -> sqlite3.Cursor:
        """A cursor for one statement (rows as dicts with ``dicts``)."""
        cur = conn.cursor()
        if dicts:
            cur.row_factory = _dict_row
        return cur

    @staticmethod
    def set_trace(conn: sqlite3.Connection, callback: Callable[[str], object] | None) -> None:
        """Report every statement ``conn`` runs to ``callback`` (SQLite's own hook)."""
        conn.set_trace_callback(callback)

    def probe_write(self) -> str | None:
        """See :func:`probe_write`."""
        return probe_write(self.path)


WRITER_SUFFIX = "-writer"
"""The lock file beside a database that its writers ``flock`` (``reelguard.db-writer``)."""


class WriterLock:
    """The queue of the writers of one SQLite file, taken before ``BEGIN IMMEDIATE`` and held
    to the end of the transaction (see the module docstring).

    A thread of this process waits for the others on a re-entrant thread lock, without a time
    limit, as before; the process then waits for other processes on an exclusive ``flock`` of
    ``<db>-writer`` for at most ``timeout_s``, and raises :class:`StorageUnavailable` past
    that, as SQLite's busy timeout did. Uncontended it costs one ``flock`` call. Writers that
    do not take it (other tools on the file) still meet SQLite's busy handler, as do all
    writers where the file cannot be locked (a file system without ``flock``: logged once).
    """

    def __init__(self, db_path: str) -> None:
        self.path = db_path + WRITER_SUFFIX
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        """Kept open between transactions (the uncontended path: one ``flock`` call)."""
        self._held: int | None = None
        """The descriptor whose ``flock`` this process holds now."""
        self._warned = False

    def acquire(self, timeout_s: float) -> None:
        """Wait for this process's other writers, then (outermost only) for other processes'."""
        self._thread_lock.acquire()
        self._depth += 1
        if self._depth > 1:
            return  # this thread holds the file lock already
        try:
            self._held = self._lock_file(timeout_s)
        except BaseException:
            self._depth -= 1
            self._thread_lock.release()
            raise

    def release(self) -> None:
        """Let the next writer in (the file lock on the outermost release)."""
        self._depth -= 1
        try:
            if self._depth == 0 and self._held is not None:
                held, self._held = self._held, None
                if held == self._fd:
                    fcntl.flock(held, fcntl.LOCK_UN)
                else:  # a waiter's own descriptor: closing it unlocks
                    os.close(held)
        finally:
            self._thread_lock.release()

    def _lock_file(self, timeout_s: float) -> int | None:
        try:
            if self._fd is None:
                self._fd = _open_lock_file(self.path)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self._fd
            except BlockingIOError:
                pass
            fd = _wait_for_lock(self.path, timeout_s)
        except OSError as exc:
            # The queue only saves waiting time: SQLite's own lock still orders the writers.
            if not self._warned:
                self._warned = True
                log.warning(
                    "%s: cannot lock (%s); writers wait in SQLite's busy handler", self.path, exc
                )
            return None
        if fd is None:
            raise StorageUnavailable(
                f"{self.path[: -len(WRITER_SUFFIX)]}: database is locked: another process "
                f"kept writing for {timeout_s:g} s"
            )
        return fd

    def forget(self) -> None:
        """In a forked child: close the parent's descriptors (the child must never unlock the
        parent's lock, nor keep it alive after the parent dies)."""
        for fd in {self._fd, self._held}:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._held = None


def _open_lock_file(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:  # a new database's folder (connect_wal would make it too)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


@dataclass(eq=False)
class _Wait:
    fd: int
    guard: threading.Lock = field(default_factory=threading.Lock)
    locked: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False
    error: OSError | None = None


def _wait_for_lock(path: str, timeout_s: float) -> int | None:
    """A new descriptor of ``path`` holding its ``flock``, or ``None`` after ``timeout_s``.

    A blocking ``flock`` cannot be timed out, so a helper thread waits in it on a descriptor of
    its own, and a waiter that gives up leaves it to close that descriptor (and so unlock) when
    its turn comes: then neither the kernel's queue nor this process's lock state is disturbed.
    """
    wait = _Wait(_open_lock_file(path))
    threading.Thread(target=_block, args=(wait,), name="sqlite-writer-wait", daemon=True).start()
    wait.locked.wait(timeout_s)
    with wait.guard:
        if not wait.locked.is_set():
            wait.abandoned = True
            return None
    if wait.error is not None:
        os.close(wait.fd)
        raise wait.error
    return wait.fd


def _block(wait: _Wait) -> None:
    try:
        fcntl.flock(wait.fd, fcntl.LOCK_EX)
    except OSError as exc:
        wait.error = exc
    with wait.guard:
        if wait.abandoned:
            os.close(wait.fd)
            return
        wait.locked.set()


_WRITER_LOCKS: dict[str, WriterLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def writer_lock(key: str) -> WriterLock:
    """The :class:`WriterLock` of the SQLite file ``key`` (its absolute path), shared by every
    :class:`~storage.database.Database` of that file in this process."""
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(key)
        if lock is None:
            lock = _WRITER_LOCKS[key] = WriterLock(key)
        return lock


def _forget_writer_locks() -> None:
    # A forked child may inherit a lock some other thread of the parent held at the fork, and
    # the parent's descriptors (the file lock belongs to the descriptor, which both now share).
    global _WRITER_LOCKS_GUARD
    for lock in _WRITER_LOCKS.values():
        lock.forget()
    _WRITER_LOCKS.clear()
    _WRITER_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_writer_locks)
