"""The job store, on SQLite and PostgreSQL: queue order, leases and recovery, idempotency,
cancellation, paging."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from test_videos_support import new_job

from audit.log import AuditLog
from gateway.cancel import cancel
from gateway.jobs import (
    IdempotencyConflict,
    JobNotFound,
    JobStore,
    QueueFull,
    VideoJob,
    move_to_released,
    videos_dir,
)


@pytest.fixture
def store(db_target: Path | str) -> JobStore:
    return JobStore(db_target)


def delete(store: JobStore, job_id: str, tenant: str) -> VideoJob:
    """What ``DELETE /v1/videos/{id}`` does (:func:`gateway.cancel.cancel`)."""
    return cancel(AuditLog(store.database), job_id, tenant, f"tenant:{tenant}")


def test_database_is_wal_and_jobs_survive_reopen(tmp_path: Path) -> None:
    db = tmp_path / "rg.db"
    job, created = JobStore(db).create(new_job(), queue_max=10)
    assert created and job.status == "queued" and job.id.startswith("video_")
    again = JobStore(db).get(job.id)
    assert again == job
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_claim_takes_oldest_first_and_only_once(store: JobStore) -> None:
    first, _ = store.create(new_job(prompt="one"), queue_max=10)
    second, _ = store.create(new_job(prompt="two"), queue_max=10)
    a = store.claim("w1", lease_s=30, max_attempts=2)
    b = store.claim("w2", lease_s=30, max_attempts=2)
    assert (a and a.id, b and b.id) == (first.id, second.id)
    assert a is not None and a.status == "in_progress" and a.worker_id == "w1" and a.attempts == 1
    assert store.claim("w3", lease_s=30, max_attempts=2) is None


def test_expired_lease_is_rerun_then_failed_as_worker_lost(store: JobStore) -> None:
    job, _ = store.create(new_job(), queue_max=10)
    assert store.claim("dead-1", lease_s=0.01, max_attempts=2) is not None
    time.sleep(0.05)
    rerun = store.claim("w2", lease_s=0.01, max_attempts=2)
    assert rerun is not None and rerun.id == job.id and rerun.attempts == 2
    assert rerun.stage == "generating"
    time.sleep(0.05)
    assert store.claim("w3", lease_s=30, max_attempts=2) is None
    failed = store.get(job.id)
    assert failed.status == "failed" and failed.error_code == "worker_lost"


def test_recovered_decided_job_keeps_its_stage(store: JobStore) -> None:
    """A worker that died after recording the decision: the next one only applies it."""
    job, _ = store.create(new_job(), queue_max=10)
    store.claim("dead", lease_s=0.01, max_attempts=1)
    assert store.update(job.id, "dead", stage="decided", frame_moderation={"final_action": "allow"})
    time.sleep(0.05)
    recovered = store.claim("w2", lease_s=30, max_attempts=1)
    assert recovered is not None and recovered.stage == "decided"
    assert recovered.frame_moderation == {"final_action": "allow"}


def test_stale_worker_cannot_write_after_losing_the_lease(store: JobStore) -> None:
    job, _ = store.create(new_job(), queue_max=10)
    store.claim("slow", lease_s=0.01, max_attempts=3)
    time.sleep(0.05)
    assert store.claim("fresh", lease_s=30, max_attempts=3) is not None
    assert not store.heartbeat(job.id, "slow", lease_s=30).owned
    assert not store.update(job.id, "slow", progress=50)
    assert not store.finish(job.id, "slow", status="completed")
    assert store.finish(job.id, "fresh", status="completed")
    assert store.get(job.id).status == "completed"


def test_heartbeat_extends_the_lease(store: JobStore) -> None:
    job, _ = store.create(new_job(), queue_max=10)
    store.claim("w1", lease_s=0.2, max_attempts=2)
    for _ in range(4):
        time.sleep(0.1)
        assert store.heartbeat(job.id, "w1", lease_s=0.2).owned
    assert store.claim("w2", lease_s=30, max_attempts=2) is None


def test_full_queue_raises_with_retry_after(store: JobStore) -> None:
    store.create(new_job(prompt="a"), queue_max=2)
    store.create(new_job(prompt="b"), queue_max=2)
    with pytest.raises(QueueFull) as info:
        store.create(new_job(prompt="c"), queue_max=2)
    assert info.value.retry_after_s >= 1
    store.claim("w", lease_s=30, max_attempts=1)  # running jobs do not count against the queue
    store.create(new_job(prompt="c"), queue_max=2)


def test_idempotency_key_returns_the_same_job_per_tenant(store: JobStore) -> None:
    a, created = store.create(new_job(idempotency_key="k1", request_hash="h"), queue_max=10)
    b, created_again = store.create(new_job(idempotency_key="k1", request_hash="h"), queue_max=10)
    assert created and not created_again and a.id == b.id
    other, created_other = store.create(
        new_job(tenant="globex", idempotency_key="k1", request_hash="h"), queue_max=10
    )
    assert created_other and other.id != a.id
    with pytest.raises(IdempotencyConflict):
        store.create(new_job(idempotency_key="k1", request_hash="different"), queue_max=10)


def test_tenant_isolation_in_get_list_and_delete(store: JobStore) -> None:
    job, _ = store.create(new_job(tenant="acme"), queue_max=10)
    with pytest.raises(JobNotFound):
        store.get(job.id, "globex")
    with pytest.raises(JobNotFound):
        delete(store, job.id, "globex")
    assert store.list("globex").jobs == ()
    assert [j.id for j in store.list("acme").jobs] == [job.id]


def test_delete_queued_job_cancels_it_and_hides_it(store: JobStore) -> None:
    job, _ = store.create(new_job(), queue_max=10)
    delete(store, job.id, "acme")
    with pytest.raises(JobNotFound):
        store.get(job.id, "acme")
    row = store.get(job.id)
    assert row.status == "failed" and row.error_code == "cancelled"
    assert store.claim("w", lease_s=30, max_attempts=1) is None


def test_delete_running_job_flags_cancel_for_its_worker(store: JobStore) -> None:
    job, _ = store.create(new_job(), queue_max=10)
    store.claim("w", lease_s=30, max_attempts=1)
    delete(store, job.id, "acme")
    assert store.heartbeat(job.id, "w", lease_s=30).cancel_requested


def test_cancelled_job_whose_worker_died_fails_as_cancelled(store: JobStore) -> None:
    job, _ = store.create(new_job(), queue_max=10)
    store.claim("dead", lease_s=0.01, max_attempts=5)
    delete(store, job.id, "acme")
    time.sleep(0.05)
    assert store.claim("w", lease_s=30, max_attempts=5) is None
    assert store.get(job.id).error_code == "cancelled"


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_list_pages_with_after_cursor(store: JobStore, order: str) -> None:
    ids = [store.create(new_job(prompt=f"p{i}"), queue_max=50)[0].id for i in range(7)]
    expected = ids if order == "asc" else ids[::-1]
    seen: list[str] = []
    after = None
    while True:
        page = store.list("acme", after=after, limit=3, order=order)  # type: ignore[arg-type]
        seen += [j.id for j in page.jobs]
        if not page.has_more:
            break
        after = page.jobs[-1].id
    assert seen == expected


def test_move_to_released_is_atomic_and_idempotent(store: JobStore, tmp_path: Path) -> None:
    job, _ = store.create(new_job(), queue_max=10)
    data = tmp_path / "videos"
    (videos_dir(data, "quarantine") / job.file_name).write_bytes(b"mp4")
    (videos_dir(data, "quarantine") / job.thumbnail_name).write_bytes(b"jpg")
    path = move_to_released(data, job)  # where the MP4 is now, as the audit log records it
    assert Path(path).read_bytes() == b"mp4" and Path(path).parent.name == "released"
    assert move_to_released(data, job) == path  # a recovered worker repeating the move
    assert not any((data / "quarantine").iterdir())


def test_concurrent_claims_never_hand_out_a_job_twice(store: JobStore) -> None:
    import threading

    ids = {store.create(new_job(prompt=f"p{i}"), queue_max=100)[0].id for i in range(30)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        mine = JobStore(store.database.url)
        while (job := mine.claim(name, lease_s=60, max_attempts=1)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(ids)
