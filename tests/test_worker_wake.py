"""An idle worker wakes on the database's writes (inotify doorbell), not on a 20 ms timer."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_videos_support import new_job

from config.settings import Settings
from gateway.doorbell import DatabaseDoorbell, open_doorbell
from gateway.jobs import JOBS_CHANNEL, JobStore
from gateway.worker import wait_for_work
from storage.postgres import Listener

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux")


def enqueue(store: JobStore) -> None:
    store.create(
        new_job(
            prompt="a red kite",
            seconds="1",
            prompt_moderation={"action": "allow", "reasons": [], "policy_version": "t"},
            policy_version="t",
        ),
        queue_max=10,
    )


def later(delay_s: float, fn: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)
        fn()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@linux_only
def test_doorbell_rings_for_the_database_files_only(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with DatabaseDoorbell(store.db_path) as bell:
        assert bell.available, bell.unavailable_reason
        assert bell.wait(0.05) is False  # quiet: times out
        (tmp_path / "notes.txt").write_text("another file in the same folder")
        assert bell.wait(0.05) is False
        enqueue(store)  # written before the wait: rings at once
        assert bell.wait(30) is True
        assert bell.wait(0.05) is False  # drained


def test_doorbell_off_linux_is_unavailable_and_just_sleeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    bell = DatabaseDoorbell(tmp_path / "jobs.db")
    assert not bell.available and "Linux" in (bell.unavailable_reason or "")
    assert bell.wait(0.01) is False
    bell.close()


def test_doorbell_in_a_missing_folder_is_unavailable_not_an_error(tmp_path: Path) -> None:
    bell = DatabaseDoorbell(tmp_path / "no-such-folder" / "jobs.db")
    assert not bell.available and bell.unavailable_reason


@linux_only
def test_a_new_job_wakes_the_waiter_by_the_doorbell_not_the_tick(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    stop = threading.Event()
    with DatabaseDoorbell(store.db_path) as bell:
        writer = later(0.05, lambda: enqueue(JobStore(store.db_path)))
        started = time.monotonic()
        # The tick and the timeout are far away: only the doorbell can end this wait early.
        wait_for_work(store, bell, 60.0, stop, tick_s=60.0)
        writer.join()
    assert store.queued_count() == 1
    assert time.monotonic() - started < 30.0


def test_without_the_doorbell_it_still_finds_new_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(tmp_path / "jobs.db")
    monkeypatch.setattr(sys, "platform", "darwin")
    bell = DatabaseDoorbell(store.db_path)
    writer = later(0.05, lambda: enqueue(JobStore(store.db_path)))
    wait_for_work(store, bell, 60.0, threading.Event())
    writer.join()
    assert store.queued_count() == 1


def test_on_postgres_a_new_job_wakes_the_waiter_by_notify(postgres_url: str) -> None:
    """Workers on other machines cannot watch a file: the job store NOTIFYs in the transaction
    that queues a job, and the waiter LISTENs (a commit from any process rings)."""
    store = JobStore(postgres_url)
    stop = threading.Event()
    settings = Settings(database_url=postgres_url)
    with open_doorbell(settings) as bell:
        assert isinstance(bell, Listener) and bell.available
        assert bell.wait(0.05) is False  # nothing queued yet: it times out
        writer = later(0.05, lambda: enqueue(JobStore(postgres_url)))
        started = time.monotonic()
        wait_for_work(store, bell, 60.0, stop, tick_s=60.0)  # only NOTIFY can end it early
        writer.join()
        assert time.monotonic() - started < 30.0
        assert store.queued_count() == 1
        # A rolled-back enqueue rings nobody: NOTIFY is delivered on commit only.
        with pytest.raises(RuntimeError), store.database.transaction(write=True):
            enqueue(store)
            raise RuntimeError("the request failed after the insert")
        assert bell.wait(0.3) is False and store.queued_count() == 1


def test_on_postgres_a_lost_listener_reconnects(postgres_url: str) -> None:
    with Listener(postgres_url, JOBS_CHANNEL) as bell:
        assert bell._conn is not None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                (f"LISTEN {JOBS_CHANNEL}",),
            )
        assert bell.wait(0.5) is False  # the loss is noticed, not raised
        enqueue(JobStore(postgres_url))
        deadline = time.monotonic() + 10
        while not bell.wait(0.2):  # reopened on a later wait; it rings for later jobs
            enqueue(JobStore(postgres_url))
            assert time.monotonic() < deadline


@linux_only
def test_stop_and_timeout_end_the_wait(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with DatabaseDoorbell(store.db_path) as bell:
        wait_for_work(store, bell, 0.05, threading.Event())  # times out
        stop = threading.Event()
        setter = later(0.05, stop.set)
        wait_for_work(store, bell, 60.0, stop, tick_s=0.02)
        setter.join()
    assert store.queued_count() == 0


@linux_only
def test_a_busy_database_without_jobs_does_not_make_it_spin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(tmp_path / "jobs.db")
    peeks = [0]
    real_peek = store.has_queued

    def counting() -> bool:
        peeks[0] += 1
        return real_peek()

    monkeypatch.setattr(store, "has_queued", counting)
    done, commits = threading.Event(), [0]

    def write_noise() -> None:  # commits as fast as it can, none of them a job
        other = sqlite3.connect(store.db_path, isolation_level=None)
        other.execute("CREATE TABLE noise (x INTEGER)")
        while not done.is_set():
            other.execute("INSERT INTO noise VALUES (1)")
            commits[0] += 1
        other.close()

    writer = threading.Thread(target=write_noise)
    with DatabaseDoorbell(store.db_path) as bell:
        writer.start()
        started = time.monotonic()
        wait_for_work(store, bell, 0.5, threading.Event(), min_gap_s=0.01)
        waited = time.monotonic() - started
        done.set()
        writer.join()
    # Many commits rang, but it peeked once per min_gap_s at most (plus the first).
    assert commits[0] > 100
    assert peeks[0] <= waited / 0.01 + 2
