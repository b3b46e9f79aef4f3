"""Source clips (``quarantine/source-*``: the frames an extension keeps or an edit starts from,
and an upload's original bytes) live exactly as long as their job may still generate: a queued
or running job keeps its own, an ended one (completed, failed, cancelled) loses it to the
worker's sweep. On both databases and both object stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_videos_support import PatternBackend, enqueue_job, make_settings, new_job, runner

from audit.log import AuditLog
from config.settings import Settings
from gateway.cancel import cancel
from gateway.jobs import JobStore
from gateway.source_clips import SourceClip, drop_ended_sources, source_keys, store_source
from storage.objects import object_store

pytestmark = pytest.mark.slow


def settings_for(tmp_path: Path, db: Path | str, store: dict[str, object]) -> Settings:
    where: dict[str, object] = {"database_url": db} if isinstance(db, str) else {"db": db}
    return make_settings(tmp_path, **where, **store)


def stored(settings: Settings) -> dict[str, object]:
    """An uploaded 1 s clip to extend, stored as the web process stores it."""
    frames = np.full((8, 64, 64, 3), 90, np.uint8)
    clip = SourceClip(
        mode="extend",
        frames=frames,
        fps=8.0,
        upload=b"the uploaded mp4's bytes",
        sha256="ab" * 32,
        media_type="video/mp4",
    )
    return store_source(settings, clip)


def present(settings: Settings, record: dict[str, object]) -> list[bool]:
    files = object_store(settings)
    return [files.exists(k) for k in source_keys(record)]


def test_only_ended_jobs_lose_their_clips(
    tmp_path: Path, db_target: Path | str, store_target: dict[str, object]
) -> None:
    settings = settings_for(tmp_path, db_target, store_target)
    jobs, audit = JobStore(settings.database), AuditLog(settings.database)
    # The same video sent three times: each job owns its own objects.
    records = [stored(settings) for _ in range(3)]
    assert len({k for r in records for k in source_keys(r)}) == 6
    running, queued, doomed = (
        enqueue_job(settings.database, new_job(seconds="2", source_clip=r)) for r in records
    )
    claimed = jobs.claim("w1", lease_s=60, max_attempts=2)
    assert claimed is not None and claimed.id == running.id
    cancel(audit, running.id, "acme", "tenant:acme")  # asked to stop, but still running

    assert drop_ended_sources(jobs.database, object_store(settings)) == 0
    assert [present(settings, r) for r in records] == [[True, True]] * 3

    cancel(audit, doomed.id, "acme", "tenant:acme")  # queued: it ends now
    assert drop_ended_sources(jobs.database, object_store(settings)) == 1
    assert present(settings, records[2]) == [False, False]
    assert jobs.get(doomed.id).source_clip == records[2]  # the record stays, for the API
    assert present(settings, records[0]) == [True, True]  # running (cancel requested)
    assert present(settings, records[1]) == [True, True]  # queued

    assert jobs.finish(running.id, "w1", status="failed", error_code="cancelled")
    assert drop_ended_sources(jobs.database, object_store(settings)) == 1
    assert present(settings, records[0]) == [False, False]
    assert present(settings, records[1]) == [True, True]
    assert drop_ended_sources(jobs.database, object_store(settings)) == 0
    assert jobs.get(queued.id).status == "queued"


def test_the_worker_drops_a_clip_when_its_job_ends(
    tmp_path: Path, db_target: Path | str, store_target: dict[str, object]
) -> None:
    settings = settings_for(tmp_path, db_target, store_target)
    first, second = stored(settings), stored(settings)
    ended = enqueue_job(settings.database, new_job(seconds="2", source_clip=first))
    waiting = enqueue_job(settings.database, new_job(seconds="2", source_clip=second))
    # This backend cannot extend: the job fails (invalid_request) without generating.
    assert runner(settings, backend=PatternBackend()).run_next()
    job = JobStore(settings.database).get(ended.id)
    assert (job.status, job.error_code) == ("failed", "invalid_request")
    assert present(settings, first) == [False, False]
    assert present(settings, second) == [True, True]  # same video, its own objects, queued
    assert JobStore(settings.database).get(waiting.id).status == "queued"
