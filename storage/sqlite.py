"""SQLite specifics: open the shared file in WAL mode, translate driver errors, probe writes.

Opening safely when several processes start at once: the gateway's database (audit log, jobs,
API keys) is opened by the web process and every worker process, often in the same second.
Switching a file to WAL (or reading its mode right after the last connection closed, while
another process is recovering the WAL) can answer ``database is locked`` at once: SQLite does
not call the busy handler for that step, so the busy timeout alone does not help.
:func:`connect_wal` sets the busy timeout first and retries that one step with backoff until
the same deadline.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Literal

from storage.errors import StorageConflict, StorageError, StorageUnavailable

Synchronous = Literal["FULL", "NORMAL"]

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
