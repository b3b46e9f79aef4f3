"""An idle worker wakes on the database's writes (inotify doorbell), not on a 20 ms timer."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_videos_support import new_job

from gateway.doorbell import DatabaseDoorbell
from gateway.jobs import JobStore
from gateway.worker import wait_for_work

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
