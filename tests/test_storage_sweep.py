"""The later sweep (:mod:`gateway.storage_sweep`, ``reelguard storage sweep``) on each store
(a temp folder and the real SeaweedFS bucket): evidence a purge could not delete and the
quarantined original of a released video are deleted; withheld videos, evidence still in the
audit log, young objects and objects of jobs this database does not know are left."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from test_objects import REELGUARD, enqueue, product_settings
from test_videos_support import PatternBackend, run_all, runner

from audit.evidence import resolve_evidence_key
from audit.log import AuditLog
from gateway.jobs import JobStore, video_key
from gateway.storage_sweep import sweep
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
