"""The storage layer on a real SQLite file: URLs, transactions that nest, errors translated."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from storage import (
    POSTGRES,
    Database,
    StorageConflict,
    StorageRetryable,
    StorageUnavailable,
    StorageUnsupported,
    Tx,
)
from storage.database import split_statements


def _db(tmp_path: Path) -> Database:
    db = Database.from_url(tmp_path / "t.db")
    db.create_schema(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)"])
    return db


def _rows(db: Database) -> list[tuple[str, int]]:
    with db.transaction() as tx:
        return [(k, v) for k, v in tx.all("SELECT k, v FROM t ORDER BY k")]


def test_from_url_takes_paths_and_sqlite_urls(tmp_path: Path) -> None:
    assert Database.from_url(tmp_path / "a.db").path == tmp_path / "a.db"
    assert Database.from_url("var/x.db").path == Path("var/x.db")
    assert Database.from_url("sqlite:///var/x.db").path == Path("var/x.db")
    assert Database.from_url(f"sqlite:///{tmp_path}/b.db").path == tmp_path / "b.db"
    assert Database.from_url(f"sqlite:///{tmp_path}/b.db").url == f"sqlite:///{tmp_path}/b.db"
    with pytest.raises(StorageUnsupported, match="sqlite:///relative"):
        Database.from_url("sqlite://host/x.db")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://rg:s3cret@db.example/reelguard",
        "postgres://rg:s3cret@db/rg",
        "postgresql+psycopg://rg:s3cret@db/rg",
    ],
)
def test_postgresql_urls_open_postgres_and_never_show_the_password(url: str) -> None:
    db = Database.from_url(url)  # connects lazily: nothing is reached yet
    assert db.dialect is POSTGRES and db.path is None and db.url == url
    assert "s3cret" not in db.where and "s3cret" not in repr(db)
    assert db.where.startswith(url.split(":", 1)[0] + "://rg:***@")


def test_an_unreachable_server_is_storage_unavailable_without_the_password() -> None:
    port = _closed_port()
    db = Database.from_url(f"postgresql://rg:s3cret@127.0.0.1:{port}/rg", durable=False)
    with pytest.raises(StorageUnavailable) as caught, db.transaction():
        pass
    assert "s3cret" not in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)
    assert db.probe_write() is not None


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(StorageUnsupported, match="unknown database URL scheme 'mysql'"):
        Database.from_url("mysql://db/rg")


def test_a_transaction_commits_or_rolls_back_as_a_whole(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('a', 1)")
    with pytest.raises(RuntimeError), db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('b', 2)")
        raise RuntimeError("boom")
    assert _rows(db) == [("a", 1)]
    # Another connection (another process, in effect) sees the commit at once.
    assert sqlite3.connect(db.path).execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_write_returns_the_body_result_and_runs_it_again_only_when_retryable(
    tmp_path: Path,
) -> None:
    db = _db(tmp_path)
    runs: list[int] = []

    def conflicted_once(tx: Tx) -> int:
        runs.append(1)
        tx.execute("INSERT INTO t VALUES (?, ?)", (f"k{len(runs)}", len(runs)))
        if len(runs) == 1:  # as the server reports a deadlock victim (PostgreSQL 40P01)
            raise StorageRetryable("deadlock detected")
        return len(runs)

    assert db.write(conflicted_once) == 2
    assert _rows(db) == [("k2", 2)]  # the aborted run left nothing
    runs.clear()

    def conflicted_always(tx: Tx) -> None:
        runs.append(1)
        raise StorageRetryable("deadlock detected")

    with pytest.raises(StorageRetryable):
        db.write(conflicted_always, attempts=3)
    assert len(runs) == 3
    runs.clear()

    def broken(tx: Tx) -> None:
        runs.append(1)
        raise StorageUnavailable("disk full")

    with pytest.raises(StorageUnavailable):
        db.write(broken)
    assert len(runs) == 1  # an outage is not a conflict: no second run


def test_a_nested_write_joins_the_outer_transaction_as_a_savepoint(tmp_path: Path) -> None:
    db = _db(tmp_path)
    statements: list[str] = []
    db.trace(statements.append)
    with db.transaction(write=True) as outer:
        outer.execute("INSERT INTO t VALUES ('a', 1)")
        with pytest.raises(StorageConflict), db.transaction(write=True) as inner:
            assert inner is outer
            inner.execute("INSERT INTO t VALUES ('b', 2)")
            inner.execute("INSERT INTO t VALUES ('a', 3)")  # conflicts: the savepoint rolls back
        with db.transaction(write=True) as inner:
            inner.execute("INSERT INTO t VALUES ('c', 3)")
    db.trace(None)
    assert _rows(db) == [("a", 1), ("c", 3)]
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]


def test_a_write_cannot_start_inside_a_read(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with (
        db.transaction() as tx,
        pytest.raises(RuntimeError, match="inside a read"),
        db.transaction(write=True),
    ):
        pass
    assert tx.raw.in_transaction is False


def test_transactions_of_other_threads_are_their_own(tmp_path: Path) -> None:
    db = _db(tmp_path)
    seen: list[list[tuple[str, int]]] = []
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('a', 1)")
        # A reader on another thread does not join this transaction: it sees the last commit.
        reader = threading.Thread(target=lambda: seen.append(_rows(db)))
        reader.start()
        reader.join()
    assert seen == [[]]
    assert _rows(db) == [("a", 1)]


def test_a_read_only_database_is_storage_unavailable(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('a', 1)")
        tx.raw.execute("PRAGMA query_only = ON")  # what a read-only file answers
    with pytest.raises(StorageUnavailable, match="readonly"), db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('b', 2)")
    db.close()  # the next transaction opens a fresh connection, writable again
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO t VALUES ('b', 2)")
    assert _rows(db) == [("a", 1), ("b", 2)]


def test_a_database_that_cannot_be_opened_is_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    db = Database.from_url(blocker / "sub" / "x.db")
    with pytest.raises(StorageUnavailable, match=r"x\.db"), db.transaction():
        pass
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a SQLite database at all, not even close" * 100)
    with pytest.raises(StorageUnavailable, match="not a database"):
        Database.from_url(garbage).create_schema(["CREATE TABLE IF NOT EXISTS t (k TEXT)"])


def test_bad_sql_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="no such table"), db.transaction() as tx:
        tx.execute("SELECT * FROM missing")


def test_a_locked_database_is_storage_unavailable_after_the_busy_timeout(tmp_path: Path) -> None:
    db = _db(tmp_path)
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        impatient = Database(db.path, busy_timeout_s=0.05)
        with (
            pytest.raises(StorageUnavailable, match="locked"),
            impatient.transaction(write=True) as tx,
        ):
            tx.execute("INSERT INTO t VALUES ('a', 1)")
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_probe_write_says_why_without_writing(tmp_path: Path) -> None:
    db = _db(tmp_path)
    assert db.probe_write() is None
    missing = Database.from_url(tmp_path / "absent.db")
    assert missing.probe_write() is not None
    assert not (tmp_path / "absent.db").exists()


def test_records_are_dicts_by_column_name(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.transaction(write=True) as tx:
        tx.executemany("INSERT INTO t VALUES (?, ?)", [("a", 1), ("b", 2)])
        assert tx.record("SELECT * FROM t WHERE k = ?", ("b",)) == {"k": "b", "v": 2}
        assert tx.records("SELECT v FROM t ORDER BY k") == [{"v": 1}, {"v": 2}]
        assert tx.value("SELECT count(*) FROM t") == 2
        assert tx.value("SELECT v FROM t WHERE k = 'z'") is None


def test_dialect_sql_is_shared_text(tmp_path: Path) -> None:
    db = _db(tmp_path)
    d = db.dialect
    with db.transaction(write=True) as tx:
        upsert = d.upsert("t", ("k", "v"), ("k",), ("v",))
        tx.execute(upsert, ("a", 1))
        tx.execute(upsert, ("a", 2))
        tx.execute(d.insert_or_ignore("t", ("k", "v")), ("a", 3))
        assert tx.all("SELECT k, v FROM t") == [("a", 2)]
        assert tx.value(f"SELECT {d.utc_day('0')}") == "1970-01-01"
        assert tx.value(f"SELECT {d.greatest('0', '-1')}") == 0
    assert split_statements("CREATE TABLE a (x);\n CREATE INDEX i ON a (x);\n") == (
        "CREATE TABLE a (x)",
        "CREATE INDEX i ON a (x)",
    )


def test_a_url_that_went_through_a_path_is_refused_not_created(tmp_path: Path) -> None:
    # REELGUARD_DB and --db are parsed as paths, which turn "//" into "/".
    with pytest.raises(StorageUnsupported, match="REELGUARD_DATABASE_URL") as caught:
        Database.from_url(Path("postgresql://rg:pw@db/reelguard"))
    assert ":pw@" not in str(caught.value)
    with pytest.raises(StorageUnsupported, match="looks like a URL"):
        Database.from_url(Path("sqlite:///var/x.db"))
    assert Database.from_url(Path("var/a:b.db")).path == Path("var/a:b.db")  # a colon is fine


@pytest.mark.parametrize("command", [["keys", "list"], ["audit", "list"], ["worker"]])
def test_commands_refuse_a_postgresql_url_in_db_with_the_fix(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*command, "--db", "postgresql://rg:pw@db/reelguard"])
    assert result.exit_code == 2, result.output
    assert "REELGUARD_DATABASE_URL" in result.output and "--db" in result.output
    assert ":pw@" not in result.output
    assert list(tmp_path.iterdir()) == []  # no file or folder named after the URL
