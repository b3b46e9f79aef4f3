"""What only PostgreSQL has to prove, on a real server (tests/pgserver.py): the storage layer's
transactions, errors and dialect there, first use of an empty database by several processes at
once, and the chain head's lock under writers that wait."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pgserver
import psycopg
import pytest
from conftest import ClassifierFactory
from litestar.testing import TestClient
from test_audit_support import moderation

from audit.log import AuditLog
from audit.schema import SCHEMA_VERSION
from config.settings import Settings
from gateway.jobs import JobStore
from gateway.keys import KeyStore
from storage import Database, StorageConflict, StorageRetryable, StorageUnavailable, Tx


def _table(url: str) -> Database:
    db = Database.from_url(url)
    db.create_schema(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER, f REAL)"])
    return db


def test_transactions_nest_as_savepoints_and_conflicts_are_translated(postgres_url: str) -> None:
    db = _table(postgres_url)
    statements: list[str] = []
    db.trace(statements.append)
    with db.transaction(write=True) as outer:
        outer.execute("INSERT INTO t VALUES (?, ?, ?)", ("a", 1, 0.1))
        with pytest.raises(StorageConflict), db.transaction(write=True) as inner:
            inner.execute("INSERT INTO t VALUES ('b', 2, 0)")
            inner.execute("INSERT INTO t VALUES ('a', 3, 0)")  # the savepoint rolls back alone
        with db.transaction(write=True) as inner:  # the outer transaction is still usable
            inner.execute("INSERT INTO t VALUES ('c', 3, 1e-300)")
    db.trace(None)
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN", "COMMIT"]
    with db.transaction() as tx:
        # DOUBLE PRECISION: floats come back exactly as written (the chain hashes them).
        assert tx.all("SELECT k, v, f FROM t ORDER BY k") == [("a", 1, 0.1), ("c", 3, 1e-300)]
        assert tx.record("SELECT * FROM t WHERE k = ?", ("a",)) == {"k": "a", "v": 1, "f": 0.1}
        assert tx.value("SELECT count(*) FROM t WHERE k LIKE 'a%'") == 1  # % is not a marker
    with pytest.raises(RuntimeError), db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('d', 4, 0)")
        raise RuntimeError("boom")
    with db.transaction() as tx:
        assert tx.value("SELECT count(*) FROM t") == 2
    db.close()


def test_a_read_transaction_is_read_only_and_bad_sql_is_a_bug(postgres_url: str) -> None:
    db = _table(postgres_url)
    with pytest.raises(StorageUnavailable, match="read-only"), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES ('a', 1, 0)")
    with pytest.raises(psycopg.errors.UndefinedTable), db.transaction() as tx:
        tx.execute("SELECT * FROM missing")
    with db.transaction() as tx:  # the pool handed out a clean connection again
        assert tx.value("SELECT count(*) FROM t") == 0
    assert db.probe_write() is None


def test_dialect_functions_agree_with_sqlite(postgres_url: str) -> None:
    db = _table(postgres_url)
    d = db.dialect
    with db.transaction(write=True) as tx:
        upsert = d.upsert("t", ("k", "v"), ("k",), ("v",))
        tx.execute(upsert, ("a", 1))
        tx.execute(upsert, ("a", 2))
        tx.execute(d.insert_or_ignore("t", ("k", "v")), ("a", 3))
        tx.execute(d.insert_or_ignore("t", ("k", "v")), ("b", 3))
        assert tx.all("SELECT k, v FROM t ORDER BY k") == [("a", 2), ("b", 3)]
        assert tx.value(f"SELECT {d.utc_day('86399.5')}") == "1970-01-01"
        assert tx.value(f"SELECT {d.greatest('0', '-1')}") == 0
        assert tx.value(f"SELECT {d.distinct_list('k')} FROM (SELECT k FROM t ORDER BY k) s") in (
            "a,b",
            "b,a",
        )


def _deadlock(db: Database, *, retry: bool) -> tuple[dict[str, int], list[BaseException]]:
    """Two threads update rows 1 and 2 of ``t`` in opposite orders, each waiting until the
    other holds its first row: the server must abort one of them (deadlock detected). Returns
    how often each body ran and what the threads raised."""
    with db.transaction(write=True) as tx:
        tx.executemany("INSERT INTO t VALUES (?, 0, 0)", [("1",), ("2",)])
    holding = threading.Barrier(2)
    runs = {"a": 0, "b": 0}
    errors: list[BaseException] = []

    def body(name: str, first: str, second: str) -> None:
        def run(tx: Tx) -> None:
            runs[name] += 1
            tx.execute("UPDATE t SET v = v + 1 WHERE k = ?", (first,))
            if runs[name] == 1:
                holding.wait(10)
            tx.execute("UPDATE t SET v = v + 1 WHERE k = ?", (second,))

        try:
            if retry:
                db.write(run)
            else:
                with db.transaction(write=True) as tx:
                    run(tx)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=body, args=("a", "1", "2")),
        threading.Thread(target=body, args=("b", "2", "1")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return runs, errors


def test_a_deadlock_victim_is_retryable_and_write_runs_it_again(postgres_url: str) -> None:
    db = _table(postgres_url)
    runs, errors = _deadlock(db, retry=False)
    (error,) = errors  # the server broke the cycle by aborting one transaction
    assert isinstance(error, StorageRetryable) and isinstance(error, StorageUnavailable)
    assert "deadlock detected" in str(error)
    with db.transaction() as tx:
        assert tx.all("SELECT v FROM t ORDER BY k") == [(1,), (1,)]  # the victim wrote nothing

    with db.transaction(write=True) as tx:
        tx.execute("DELETE FROM t")
    runs, errors = _deadlock(db, retry=True)
    assert errors == []
    assert sorted(runs.values()) == [1, 2]  # the victim ran again, once
    with db.transaction() as tx:
        assert tx.all("SELECT v FROM t ORDER BY k") == [(2,), (2,)]  # both committed, once each


def test_write_inside_a_transaction_runs_once_in_it(postgres_url: str) -> None:
    db = _table(postgres_url)
    calls = []

    def body(tx: Tx) -> str:
        calls.append(tx)
        raise StorageRetryable("a conflict the outer transaction must handle")

    with pytest.raises(StorageRetryable), db.transaction(write=True) as outer:
        db.write(body)
    assert calls == [outer]  # not run again: only the outermost transaction can be


def test_a_writer_waiting_on_the_chain_head_gives_up_after_the_busy_timeout(
    postgres_url: str,
) -> None:
    AuditLog(postgres_url).open()
    holder = psycopg.connect(postgres_url)  # another machine's writer, mid-append
    holder.execute("SELECT head_seq FROM audit_chain WHERE id = 1 FOR UPDATE")
    try:
        impatient = AuditLog(Database(url=postgres_url, busy_timeout_s=0.2))
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="lock timeout"):
            impatient.record_moderation(moderation("waits"))
        assert time.monotonic() - started < 5
    finally:
        holder.rollback()
        holder.close()
    assert impatient.count() == 0  # nothing half-written
    impatient.record_moderation(moderation("waits"))
    assert impatient.verify().ok


def test_appends_wait_for_the_head_and_keep_one_order(postgres_url: str) -> None:
    """Threads with their own connections append at once: each waits on the head row, reads
    the head the previous one left, and the chain has no fork and no gap."""
    log = AuditLog(postgres_url)
    log.open()

    def write(prefix: str) -> None:
        mine = AuditLog(postgres_url)
        for i in range(15):
            mine.record_moderation(moderation(f"{prefix}-{i}"))
        mine.close()

    threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    report = log.verify()
    assert report.ok, report.problems
    assert log.count() == report.rows == report.head_seq


def _open_everything(url: str) -> int:
    AuditLog(url).open()
    JobStore(url)
    KeyStore(url).close()
    return 0


def test_an_empty_database_is_created_once_by_processes_starting_together(
    postgres_url: str,
) -> None:
    """The web process and every worker open the database in the same second; on an empty
    PostgreSQL database their CREATE statements would collide without the schema lock."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        assert pool.map(_open_everything, [postgres_url] * 4) == [0] * 4
    db = Database.from_url(postgres_url)
    with db.transaction() as tx:
        assert tx.value("SELECT schema_version FROM audit_chain WHERE id = 1") == SCHEMA_VERSION
        tables = {
            name
            for (name,) in tx.all(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert {"audit_chain", "requests", "video_jobs", "api_keys"} <= tables
    db.close()


def test_a_database_that_goes_away_is_503_not_500(
    postgres_url: str,
    postgres_server: pgserver.PostgresServer,
    tmp_path: Path,
    text_classifiers: Mapping[str, ClassifierFactory],
) -> None:
    """The server restarts or the network splits: every request, even the API key lookup
    before any handler, answers 503 with Retry-After, naming neither host nor password."""
    from gateway.app import create_app

    settings = Settings(database_url=postgres_url, data_dir=tmp_path / "videos")
    token = KeyStore(postgres_url).create("default").token
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, classifiers=text_classifiers)
    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post("/v1/moderations", json={"input": "a cat"}, headers=headers)
        assert ok.status_code == 200, ok.text
        postgres_server.drop_database(postgres_url)  # its connections end with it
        for path, body in (
            ("/v1/moderations", {"input": "a cat"}),
            ("/v1/videos", {"prompt": "a cat"}),
        ):
            down = client.post(path, json=body, headers=headers)
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"] == "1"
            assert "127.0.0.1" not in down.text
        assert client.get("/healthz").status_code == 503
