"""Writers of one SQLite file queue on its writers' lock across processes (storage.sqlite).

Each test runs the other writer in a real process (spawned: the test process runs threads, and
a child forked while one of them holds a lock can wait on it forever) that holds a write
transaction until told to end it, and checks what the queue promises: a writer waits for the
other process's commit and then sees it, gives up after the busy timeout (and the lock is free
again afterwards), and goes in at once when the holder is killed; a forked child never keeps
its parent's lock alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from storage import Database, StorageUnavailable
from storage.sqlite import WRITER_SUFFIX

SPAWN = multiprocessing.get_context("spawn")


def _db(path: Path, busy_timeout_s: float = 30.0) -> Database:
    db = Database(path, busy_timeout_s=busy_timeout_s)
    db.create_schema(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)"])
    return db


def _hold_write(path: str, key: str, conn: Connection, fork_child: bool) -> None:
    """In another process: insert ``key`` in a write transaction, say "in" (and, with
    ``fork_child``, the pid of a child forked inside the transaction, which only sleeps), then
    commit when told "commit"."""
    db = _db(Path(path))
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES (?)", (key,))
        child = 0
        if fork_child:
            child = os.fork()
            if child == 0:  # sleeps (until the test kills it), holding whatever it inherited
                time.sleep(60)
                os._exit(0)
        conn.send(("in", child))
        assert conn.recv() == "commit"
    conn.send("committed")


def _start_holder(
    path: Path, key: str, fork_child: bool = False
) -> tuple[multiprocessing.process.BaseProcess, Connection, int]:
    mine, theirs = SPAWN.Pipe()
    proc = SPAWN.Process(target=_hold_write, args=(str(path), key, theirs, fork_child))
    proc.start()
    assert mine.poll(60), "the holder never got its write transaction"
    said, child = mine.recv()
    assert said == "in"
    return proc, mine, child


def _lock_file_is_free(path: Path) -> bool:
    fd = os.open(str(path) + WRITER_SUFFIX, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _keys(db: Database) -> list[str]:
    with db.transaction() as tx:
        return [str(k) for (k,) in tx.all("SELECT k FROM t ORDER BY k")]


def test_a_writer_waits_for_another_process_and_sees_its_commit(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    db = _db(path)
    proc, conn, _ = _start_holder(path, "theirs")
    try:
        assert not _lock_file_is_free(path)  # the other process holds the writers' lock
        seen: list[list[str]] = []

        def write() -> None:
            with db.transaction(write=True) as tx:
                seen.append([str(k) for (k,) in tx.all("SELECT k FROM t")])
                tx.execute("INSERT INTO t VALUES ('mine')")

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(0.3)
        assert writer.is_alive() and seen == []  # queued behind the other process
        conn.send("commit")
        writer.join(30)
        assert not writer.is_alive()
        assert seen == [["theirs"]]  # it went in after the other commit, and saw it
        assert _keys(db) == ["mine", "theirs"]
        assert _lock_file_is_free(path)
    finally:
        proc.join(30)
    assert proc.exitcode == 0


def test_a_writer_gives_up_after_the_busy_timeout_and_the_lock_stays_usable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    _db(path)
    impatient = Database(path, busy_timeout_s=0.2)
    proc, conn, _ = _start_holder(path, "theirs")
    try:
        with (
            pytest.raises(StorageUnavailable, match="locked"),
            impatient.transaction(write=True) as tx,
        ):
            tx.execute("INSERT INTO t VALUES ('mine')")
        conn.send("commit")
        assert conn.poll(30) and conn.recv() == "committed"
    finally:
        proc.join(30)
    # The abandoned wait does not keep the lock: the next write goes in (waiting at most for
    # that wait to get its turn and let go).
    with impatient.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('mine')")
    assert _keys(impatient) == ["mine", "theirs"]
    deadline = time.monotonic() + 10
    while not _lock_file_is_free(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _lock_file_is_free(path)


def test_a_writer_killed_mid_transaction_lets_the_next_one_in(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    db = _db(path)
    proc, _, _ = _start_holder(path, "theirs")
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join(30)
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('mine')")
    assert _keys(db) == ["mine"]  # the killed writer's row was never committed


def test_a_forked_child_does_not_keep_its_parents_lock_alive(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    db = _db(path, busy_timeout_s=5.0)
    proc, _, child = _start_holder(path, "theirs", fork_child=True)
    try:
        os.kill(proc.pid or 0, signal.SIGKILL)  # the child, forked inside the transaction, lives
        proc.join(30)
        with db.transaction(write=True) as tx:
            tx.execute("INSERT INTO t VALUES ('mine')")
        assert _keys(db) == ["mine"]
    finally:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_a_new_databases_folder_is_made_by_its_first_write(tmp_path: Path) -> None:
    db = Database(tmp_path / "new" / "folder" / "w.db")
    db.create_schema(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)"])
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('a')")
    assert _keys(db) == ["a"]


def test_writers_fall_back_to_sqlites_lock_where_the_file_cannot_be_locked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "w.db"
    (tmp_path / f"w.db{WRITER_SUFFIX}").mkdir()  # cannot be opened as the lock file
    db = _db(path)
    proc, conn, _ = _start_holder(path, "theirs")  # SQLite's own lock still orders writers
    try:
        conn.send("commit")
        with db.transaction(write=True) as tx:
            tx.execute("INSERT INTO t VALUES ('mine')")
    finally:
        proc.join(30)
    assert proc.exitcode == 0
    assert _keys(db) == ["mine", "theirs"]
    assert [r.getMessage() for r in caplog.records].count(
        f"{path}{WRITER_SUFFIX}: cannot lock ([Errno 21] Is a directory: "
        f"'{path}{WRITER_SUFFIX}'); writers wait in SQLite's busy handler"
    ) == 1
