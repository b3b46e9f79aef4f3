"""Group commit (:mod:`audit.group`): concurrent requests' records share one transaction, and
nothing the gateway relies on changes. On SQLite and on a real PostgreSQL server.

Each test that needs a group makes one deterministically: a transaction held open on the same
database (the chain head locked) keeps the first caller waiting inside its commit while the
others queue behind it; then the held transaction ends and the queued callers commit together.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from test_audit_support import moderation

from audit import group as group_module
from audit.errors import InvalidRecord
from audit.log import AuditLog
from storage import Database, StorageUnavailable


@pytest.fixture
def log(db_target: Path | str) -> Iterator[AuditLog]:
    log = AuditLog(db_target).open()
    yield log
    log.close()


def _seqs(log: AuditLog, request_id: str) -> list[int]:
    """The chain positions of a request's rows (request, verdicts, decision, reasons)."""
    story = log.story(request_id)
    assert story.request is not None
    rows = [story.request, *story.verdicts, *story.decisions, *story.reasons]
    return sorted(int(r["seq"]) for r in rows)


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _head_held(log: AuditLog) -> AbstractContextManager[threading.Event]:
    """Hold an audit write transaction (the chain head) on another thread until the yielded
    event is set."""
    return _held(log.transaction)


@contextmanager
def _held(lock: Callable[[], AbstractContextManager[object]]) -> Iterator[threading.Event]:
    """Hold ``lock()`` open on another thread until the yielded event is set."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with lock():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        yield release
    finally:
        release.set()
        holder.join(30)


def _record_in_threads(
    log: AuditLog, batches: list[list[str]], held: threading.Event | None = None
) -> dict[str, BaseException | None]:
    """Each batch of request ids on its own thread (the first one first, so that it leads),
    one ``record_moderations`` call each; returns each batch's error (or ``None``)."""
    outcome: dict[str, BaseException | None] = {}

    def call(ids: list[str]) -> None:
        try:
            log.record_moderations([moderation(i) for i in ids])
            outcome[ids[0]] = None
        except BaseException as exc:
            outcome[ids[0]] = exc

    threads = [threading.Thread(target=call, args=(ids,)) for ids in batches]
    threads[0].start()
    if held is not None:
        _wait_for(lambda: log.group.committing)  # the leader waits on the held head
    for t in threads[1:]:
        t.start()
    if held is not None:
        _wait_for(lambda: log.group.waiting == len(batches) - 1)
        held.set()
    for t in threads:
        t.join(60)
    return outcome


def test_queued_requests_commit_in_one_transaction_in_arrival_order(log: AuditLog) -> None:
    before = log.group.groups
    batches = [["lead"], *([f"r{k}.0", f"r{k}.1"] for k in range(6))]
    with _head_held(log) as release:
        outcome = _record_in_threads(log, batches, release)
    assert outcome == {ids[0]: None for ids in batches}
    # The leader's own group, then every queued request in one more transaction.
    assert log.group.groups - before == 2
    # Each request's rows are contiguous and its items in order; one chain, no gaps.
    spans = []
    for ids in batches:
        seqs = [s for i in ids for s in _seqs(log, i)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        spans.append((seqs[0], seqs[-1]))
    assert log.verify().ok


def test_a_group_is_bounded_and_every_caller_still_commits(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_module, "MAX_GROUP_REQUESTS", 2)
    before = log.group.groups
    batches = [["lead"], *([f"r{k}"] for k in range(5))]
    with _head_held(log) as release:
        outcome = _record_in_threads(log, batches, release)
    assert outcome == {ids[0]: None for ids in batches}
    assert log.group.groups - before == 1 + 3  # the leader's, then 2 + 2 + 1 queued
    assert len(log.list_requests(limit=None)) == 6
    assert log.verify().ok


def test_a_reused_id_fails_only_its_own_request(log: AuditLog) -> None:
    log.record_moderations([moderation("taken")])
    batches = [["lead"], ["fine-1"], ["taken"], ["fine-2.0", "fine-2.1"]]
    with _head_held(log) as release:
        outcome = _record_in_threads(log, batches, release)
    assert isinstance(outcome["taken"], InvalidRecord)
    assert "already in the audit log" in str(outcome["taken"])
    assert {k: v for k, v in outcome.items() if k != "taken"} == {
        "lead": None,
        "fine-1": None,
        "fine-2.0": None,
    }
    for request_id in ("lead", "fine-1", "fine-2.0", "fine-2.1"):
        assert _seqs(log, request_id)
    assert log.verify().ok


def test_a_reused_id_within_one_request_writes_none_of_it(log: AuditLog) -> None:
    with pytest.raises(InvalidRecord, match="already in the audit log"):
        log.record_moderations([moderation("twice"), moderation("twice")])
    assert log.list_requests() == []
    assert log.verify().ok


def test_when_the_database_fails_every_caller_in_the_group_gets_the_error(
    db_target: Path | str,
) -> None:
    """Fail closed: nobody in a group that did not commit is told it did, nothing is written."""
    if isinstance(db_target, Path):
        database = Database(db_target, busy_timeout_s=0.3)
    else:
        database = Database(url=db_target, busy_timeout_s=0.3)
    log = AuditLog(database).open()
    log.record_moderations([moderation("first")])
    other = AuditLog(db_target)  # another process's connection, as far as locks go

    @contextmanager
    def file_lock() -> Iterator[None]:  # another connection's write lock on the file
        import sqlite3

        conn = sqlite3.connect(db_target, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()

    with _held(file_lock if isinstance(db_target, Path) else other.transaction):
        outcome = _record_in_threads(log, [["a"], ["b"], ["c.0", "c.1"]])
    assert set(outcome) == {"a", "b", "c.0"}
    assert all(isinstance(e, StorageUnavailable) for e in outcome.values()), outcome
    assert [r.request_id for r in log.list_requests()] == ["first"]
    # The next request commits normally.
    log.record_moderations([moderation("after")])
    assert {r.request_id for r in log.list_requests()} == {"first", "after"}
    assert log.verify().ok
    other.close()
    log.close()


def _writer(target: Path | str, name: str, threads: int, per_thread: int) -> None:
    """A process of concurrent writers; each checks, on a connection of its own, that every
    request it was told is recorded is there before it goes on."""
    log = AuditLog(target)
    reader = AuditLog(target)
    failures: list[str] = []

    def run(t: int) -> None:
        for k in range(per_thread):
            ids = [f"{name}-{t}-{k}"] if k % 2 else [f"{name}-{t}-{k}.{j}" for j in range(2)]
            log.record_moderations([moderation(i) for i in ids])
            for i in ids:
                if reader.story(i).request is None:
                    failures.append(i)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise SystemExit(f"acknowledged but not visible: {failures}")


def test_concurrent_writers_in_several_processes_keep_one_chain(db_target: Path | str) -> None:
    AuditLog(db_target).open().close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(db_target, f"p{n}", 4, 12)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    log = AuditLog(db_target)
    requests = log.list_requests(limit=None)
    # 3 processes x 4 threads x 12 calls; half of the calls have two items.
    assert len(requests) == 3 * 4 * (6 + 6 * 2)
    seqs = sorted(s for r in requests for s in _seqs(log, r.request_id))
    assert seqs == list(range(1, len(seqs) + 1))  # one order, no gaps, no forks
    report = log.verify()
    assert report.ok, report
    log.close()


def test_inside_a_transaction_it_appends_in_that_transaction(log: AuditLog) -> None:
    before = log.group.groups
    with pytest.raises(RuntimeError, match="rolled back"), log.transaction():
        log.record_moderations([moderation("inner")])
        raise RuntimeError("rolled back")
    assert log.list_requests() == []
    with log.transaction():
        log.record_moderations([moderation("inner")])
    assert [r.request_id for r in log.list_requests()] == ["inner"]
    assert log.group.groups == before
