"""How :class:`storage.objects.S3Store` moves large objects and survives a flaky store, on the
real SeaweedFS server (:mod:`s3server`): multipart uploads round-trip byte-exact with their
SHA-256 recorded, a failed one leaves no object and no open upload; deletes try transient
failures again with a bounded backoff and log the key of one that still fails."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server
from test_objects import dead_store

from config.settings import Settings
from storage.objects import (
    LocalFolderStore,
    ObjectStoreUnavailable,
    S3Store,
    object_store,
)
from storage.s3_client import MIB

SMALL_PARTS = {"s3_multipart_threshold_mib": 1, "s3_multipart_chunk_mib": 5}
"""A tiny threshold: an 11 MiB file goes up in three parts (S3's smallest part is 5 MiB)."""


def s3_store(s3_url: str, s3_server: S3Server, **fields: Any) -> S3Store:
    store = object_store(Settings(storage_url=s3_url, s3_endpoint_url=s3_server.endpoint, **fields))
    assert isinstance(store, S3Store)
    return store


def open_uploads(s3_server: S3Server, store: S3Store) -> list[str]:
    listed = s3_server.client().list_multipart_uploads(  # type: ignore[attr-defined]
        Bucket=store.bucket, Prefix=store.prefix
    )
    return [u["Key"] for u in listed.get("Uploads", [])]


def test_settings_default_to_16_mib_parts(s3_url: str) -> None:
    store = object_store(Settings(storage_url=s3_url))
    assert isinstance(store, S3Store)
    assert store.multipart_threshold == 16 * MIB and store.multipart_chunk == 16 * MIB
    with pytest.raises(ValueError, match="s3_multipart_chunk_mib"):
        Settings(s3_multipart_chunk_mib=1)  # S3 refuses parts under 5 MiB


def test_a_multipart_object_round_trips_with_its_sha256(
    s3_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    store = s3_store(s3_url, s3_server, **SMALL_PARTS)
    source = tmp_path / "video.mp4"
    source.write_bytes(os.urandom(11 * MIB + 12345))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    store.put_file("quarantine/video.mp4", source)
    head = s3_server.client().head_object(  # type: ignore[attr-defined]
        Bucket=store.bucket, Key=store.name("quarantine/video.mp4")
    )
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three parts, not one PUT
    assert head["ContentLength"] == source.stat().st_size
    assert store.recorded_sha256("quarantine/video.mp4") == expected
    assert store.sha256("quarantine/video.mp4") == expected
    assert store.get_bytes("quarantine/video.mp4") == source.read_bytes()
    with store.writing("released/w.mp4") as path:  # the encoder's path goes up in parts too
        path.write_bytes(source.read_bytes())
    assert store.sha256("released/w.mp4") == expected
    assert open_uploads(s3_server, store) == []
    small = s3_store(s3_url, s3_server)  # the 16 MiB default: one PUT
    small.put_file("released/small.mp4", source)
    assert (
        "-"
        not in s3_server.client().head_object(  # type: ignore[attr-defined]
            Bucket=store.bucket, Key=store.name("released/small.mp4")
        )["ETag"]
    )
    assert small.recorded_sha256("released/small.mp4") == expected


class FailingDisk:
    """A readable stream whose disk fails (EIO) after ``good`` bytes."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError(5, "Input/output error")
        n = self.left if size < 0 else min(size, self.left)
        self.left -= n
        return os.urandom(n)


def test_an_interrupted_upload_leaves_no_object_and_no_open_upload(
    s3_url: str, s3_server: S3Server
) -> None:
    store = s3_store(s3_url, s3_server, **SMALL_PARTS)
    with pytest.raises(OSError, match="Input/output error"):
        store.put_stream("quarantine/cut.mp4", FailingDisk(12 * MIB))  # type: ignore[arg-type]
    assert not store.exists("quarantine/cut.mp4")
    assert open_uploads(s3_server, store) == []


def test_local_store_reports_sha256(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put_bytes("evidence/v/frame.jpg", b"jpeg bytes")
    assert store.sha256("evidence/v/frame.jpg") == hashlib.sha256(b"jpeg bytes").hexdigest()


# -- deletes ---------------------------------------------------------------------------------


@pytest.fixture
def paused(s3_server: S3Server) -> Any:
    """``pause(seconds)``: stop the SeaweedFS process (SIGSTOP: connections hang, as on a
    congested or restarting store) and let it go on after ``seconds``."""
    if s3_server.process is None:
        pytest.skip("REELGUARD_TEST_S3_ENDPOINT names a server these tests cannot pause")
    group = os.getpgid(s3_server.process.pid)
    timers: list[threading.Timer] = []

    def pause(seconds: float) -> None:
        os.killpg(group, signal.SIGSTOP)
        timer = threading.Timer(seconds, os.killpg, (group, signal.SIGCONT))
        timers.append(timer)
        timer.start()

    yield pause
    for timer in timers:
        timer.cancel()
    os.killpg(group, signal.SIGCONT)


def test_a_delete_rides_out_a_paused_store(
    s3_url: str, s3_server: S3Server, paused: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = s3_store(s3_url, s3_server, s3_timeout_s=0.5, s3_delete_attempts=6)
    store.put_bytes("released/gone.mp4", b"to be deleted")
    caplog.set_level(logging.INFO, logger="reelguard.storage")
    paused(4.0)  # longer than boto3's own two tries (0.5 s timeouts, up to 1 s backoff)
    started = time.monotonic()
    assert store.delete("released/gone.mp4") is True
    assert time.monotonic() - started >= 3.5  # it waited the pause out
    assert not store.exists("released/gone.mp4")
    retries = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert retries and "released/gone.mp4" in retries[0]


def test_a_delete_that_keeps_failing_is_bounded_and_logged_with_its_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rg-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rg-test-secret")
    store = object_store(Settings(**dead_store(tmp_path), s3_delete_attempts=3))  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="reelguard.storage")
    started = time.monotonic()
    with pytest.raises(ObjectStoreUnavailable, match="REELGUARD_S3_ENDPOINT_URL"):
        store.delete("evidence/v/frame_000001.jpg")
    took = time.monotonic() - started
    assert 0.6 <= took < 15, took  # 0.2 s + 0.4 s of backoff, not an endless loop
    messages = [r.getMessage() for r in caplog.records]
    assert sum("trying again" in m for m in messages) == 2
    final = [m for m in messages if m.startswith("cannot delete")]
    assert len(final) == 1 and "s3://gone-bucket/rg/evidence/v/frame_000001.jpg" in final[0]
    assert "after 3 tries" in final[0]


def test_refused_credentials_are_not_retried(
    s3_server: S3Server,
    s3_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rg-unknown-key")  # a new client, refused
    store = s3_store(s3_url, s3_server, s3_delete_attempts=5)
    caplog.set_level(logging.INFO, logger="reelguard.storage")
    with pytest.raises(ObjectStoreUnavailable, match="access denied"):
        store.delete("released/a.mp4")
    # No retry: a later try cannot fix refused credentials. (Counted, not timed: a wall-clock
    # bound failed on a loaded machine.)
    assert not [r for r in caplog.records if "trying again" in r.getMessage()]


def test_purge_on_a_lost_store_keeps_and_names_the_evidence(
    tmp_path: Path,
    s3_url: str,
    s3_server: S3Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from test_objects import enqueue, product_settings
    from test_videos_support import PatternBackend, run_all, runner

    from audit.evidence import resolve_evidence_key
    from audit.log import AuditLog

    target = {"storage_url": s3_url, "s3_endpoint_url": s3_server.endpoint}
    settings = product_settings(tmp_path, target)
    job = enqueue(settings, tenant="strict")  # withheld: evidence frames in the bucket
    run_all(runner(settings, backend=PatternBackend()))
    files = object_store(settings)
    log = AuditLog(settings.database)
    keys = [resolve_evidence_key(e["path"], files) for e in log.story(job.id).evidence]
    assert keys and all(files.exists(k) for k in keys)
    lost = object_store(
        settings.model_copy(update={**dead_store(tmp_path), "s3_delete_attempts": 2})
    )
    caplog.set_level(logging.INFO, logger="reelguard.storage")
    report = log.purge(0, actor="ops", now=2e10, data_dir=lost)
    assert report.files == 0 and len(report.kept) == len(keys)
    assert all(any(k in line for line in report.kept) for k in keys)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cannot")]
    assert len(logged) == len(keys) and all(any(k in m for m in logged) for k in keys)
    assert all(files.exists(k) for k in keys)  # left for a later sweep, not half-deleted
