"""The later sweep (:mod:`gateway.storage_sweep`, ``reelguard storage sweep``) on each store
(a temp folder and the real SeaweedFS bucket): evidence a purge could not delete and the
quarantined original of a released video are deleted; withheld videos, evidence still in the
audit log, young objects and objects of jobs this database does not know are left. Idle
workers run it too, one worker of the deployment at a time (on SQLite with a folder, and on
PostgreSQL with a bucket, as the workers of several machines share them)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_objects import REELGUARD, enqueue, product_settings
from test_videos_support import DEPLOYMENTS, PatternBackend, deployment_fields, run_all, runner

from audit.evidence import resolve_evidence_key
from audit.log import AuditLog
from config.settings import Settings
from gateway import storage_sweep
from gateway.jobs import JobStore, video_key
from gateway.storage_sweep import claim, sweep
from gateway.worker.runner import JobRunner
from storage import Database
from storage.objects import LocalFolderStore, object_store

LATER = 10 * 24 * 3600.0
"""Sweeps run as if ten days had passed, past the one-day guard."""


def test_sweep_deletes_only_what_the_database_proves_is_left_over(
    tmp_path: Path, store_target: dict[str, object]
) -> None:
    settings = product_settings(tmp_path, store_target)
    files = object_store(settings)
    released, withheld = enqueue(settings), enqueue(settings, tenant="strict")
    assert run_all(runner(settings, backend=PatternBackend())) == 2
    database = JobStore(settings.database).database
    log = AuditLog(settings.database)
    evidence = [resolve_evidence_key(e["path"], files) for e in log.story(withheld.id).evidence]
    assert evidence
    now = time.time() + LATER

    assert sweep(database, files, older_than_s=86400, now=now).as_json() == {
        "dry_run": False,
        "evidence": [],
        "leftovers": [],
        "failed": [],
    }  # everything is still referenced: nothing to sweep

    # What failed deletes leave: the purge's evidence, a released video's quarantined original.
    report = log.purge(0, actor="ops", now=2e10, data_dir=None)  # no store: every file kept
    assert len(report.kept) == len(evidence)
    mp4 = files.get_bytes(video_key("released", released.file_name))
    files.put_bytes(video_key("quarantine", released.file_name), mp4)
    # A job this database never ran (another deployment's store): never swept.
    files.put_bytes("evidence/video_elsewhere/frame_000001.jpg", b"not ours")

    assert sweep(database, files, older_than_s=86400).evidence == ()  # too young today
    dry = sweep(database, files, older_than_s=86400, now=now, dry_run=True)
    assert dry.evidence == tuple(sorted(evidence))
    assert dry.leftovers == (video_key("quarantine", released.file_name),)
    assert all(files.exists(k) for k in evidence)  # a dry run deletes nothing

    done = sweep(database, files, older_than_s=86400, now=now)
    assert (done.evidence, done.leftovers, done.failed) == (dry.evidence, dry.leftovers, ())
    assert not any(files.exists(k) for k in evidence)
    assert not files.exists(video_key("quarantine", released.file_name))
    assert files.get_bytes(video_key("released", released.file_name)) == mp4  # still served
    assert files.exists(video_key("quarantine", withheld.file_name))  # withheld: evidence
    assert files.exists("evidence/video_elsewhere/frame_000001.jpg")


def test_cli_sweep_reports_and_exits_zero(tmp_path: Path, store_target: dict[str, object]) -> None:
    settings = product_settings(tmp_path, store_target)
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend()))
    files = object_store(settings)
    files.put_bytes(
        video_key("quarantine", job.file_name),
        files.get_bytes(video_key("released", job.file_name)),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    env.update(REELGUARD_DB=str(settings.db), REELGUARD_DATA_DIR=str(settings.data_dir))
    if settings.storage_url:
        env.update(
            REELGUARD_STORAGE_URL=settings.storage_url,
            REELGUARD_S3_ENDPOINT_URL=str(settings.s3_endpoint_url),
        )
    if isinstance(files, LocalFolderStore):  # a folder's objects can be made old
        old = time.time() - 2 * 86400
        os.utime(files.path(video_key("quarantine", job.file_name)), (old, old))
        args = ["--older-than", "1d"]
    else:
        args = ["--older-than", "0s"]
    done = subprocess.run(
        [REELGUARD, "storage", "sweep", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["leftovers"] == [video_key("quarantine", job.file_name)]
    assert not files.exists(video_key("quarantine", job.file_name))


def test_one_asker_of_the_deployment_gets_each_turn(db_target: Path | str) -> None:
    answers: list[bool] = []
    ready = threading.Barrier(6)

    def ask(n: int) -> None:
        database = Database.from_url(db_target)  # its own connections, as another machine's
        ready.wait()
        answers.append(claim(database, f"worker-{n}", every_s=3600, now=1000.0))
        database.close()

    askers = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(60)
    assert sorted(answers) == [False] * 5 + [True]
    database = Database.from_url(db_target)
    assert not claim(database, "late", every_s=3600, now=1000.0 + 3599)
    assert claim(database, "late", every_s=3600, now=1000.0 + 3600)
    with database.transaction() as tx:
        assert tx.all("SELECT started_at, worker FROM sweep_runs") == [(4600.0, "late")]


@pytest.fixture(params=DEPLOYMENTS)
def deployed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with deployment_fields(request, tmp_path) as where:
        yield product_settings(tmp_path, where)


def _idle_at_once(workers: list[JobRunner]) -> None:
    """Every worker's idle pass at the same moment (each made due first)."""
    ready = threading.Barrier(len(workers))
    swept: list[bool] = []

    def idle(worker: JobRunner) -> None:
        ready.wait()
        swept.append(worker.sweep_when_idle())

    for worker in workers:
        worker._last_sweep, worker.last_storage_sweep = float("-inf"), None
    threads = [threading.Thread(target=idle, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert swept == [True] * len(workers)


def test_idle_workers_sweep_the_store_one_at_a_time(
    deployed: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = deployed
    workers = [runner(settings, backend=PatternBackend(), worker_id=f"machine-{n}") for n in "ab"]
    files = object_store(settings)
    log = AuditLog(settings.database)
    released, withheld = enqueue(settings), enqueue(settings, tenant="strict")
    assert run_all(workers[0]) == 2
    purged = [resolve_evidence_key(e["path"], files) for e in log.story(withheld.id).evidence]
    assert purged
    log.purge(0, actor="ops", now=2e10, data_dir=None)  # rows gone, every file kept
    leftover = video_key("quarantine", released.file_name)
    files.put_bytes(leftover, files.get_bytes(video_key("released", released.file_name)))
    kept = enqueue(settings, tenant="strict")  # withheld after the purge: its evidence is live
    assert run_all(workers[1]) == 1
    live = [resolve_evidence_key(e["path"], files) for e in log.story(kept.id).evidence]
    assert live

    _idle_at_once(workers)
    assert [w.last_storage_sweep for w in workers].count(None) == 1  # young objects: one turn
    assert all(files.exists(k) for k in [*purged, leftover])  # younger than a day: kept

    # A day later (objects count as old), the next turn: still one worker, deleting each
    # leftover once, and nothing referenced, withheld or served.
    monkeypatch.setattr(storage_sweep, "SWEEP_OLDER_THAN_S", -60.0)
    with Database.from_url(settings.database).transaction(write=True) as tx:
        tx.execute(
            "UPDATE sweep_runs SET started_at = started_at - ?", (storage_sweep.SWEEP_EVERY_S,)
        )
    _idle_at_once(workers)
    reports = [w.last_storage_sweep for w in workers if w.last_storage_sweep is not None]
    assert len(reports) == 1
    assert reports[0].evidence == tuple(sorted(purged))
    assert reports[0].leftovers == (leftover,)
    assert reports[0].failed == ()
    assert not any(files.exists(k) for k in [*purged, leftover])
    assert all(files.exists(k) for k in live)
    assert files.exists(video_key("released", released.file_name))
    assert files.exists(video_key("quarantine", withheld.file_name))
    assert files.exists(video_key("quarantine", kept.file_name))
    assert log.verify().ok

    _idle_at_once(workers)  # ten idle minutes later: the hour is not over, no turn
    assert [w.last_storage_sweep for w in workers] == [None, None]
    # No idle sweep failed (each logs its failure and carries on), the characters' one
    # included, on a database no character upload has reached.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
