"""The object-store seam (:mod:`storage.objects`) on a local folder and on a real S3 server
(SeaweedFS, :mod:`s3server`): the store contract, then the product on each store — the worker
releases and withholds, evidence keeps its SHA-256 (``verify --check-files``, ``purge``), the
API streams or redirects downloads, and an unreachable store is a 503 or a failed job, never a
500 or a release."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient
from pydantic import ValidationError
from s3server import S3Server
from test_videos_e2e import free_port
from test_videos_support import PatternBackend, enqueue_job, make_settings, new_job, run_all, runner

from audit.errors import UnsafePath
from audit.evidence import put_thumbnail, resolve_evidence_key
from audit.log import AuditLog
from config.settings import Settings
from gateway.app import create_app
from gateway.jobs import JobStore, VideoJob, video_key
from gateway.keys import KeyStore
from generator.encode import decode_mp4
from storage.objects import (
    LocalFolderStore,
    ObjectMissing,
    ObjectStore,
    ObjectStoreUnavailable,
    S3Store,
    check_key,
    object_store,
)

REELGUARD = str(Path(sys.executable).with_name("reelguard"))
STRICT_TENANT = (
    "extends: default\ncategories:\n  sexual:\n    frame: {review_at: 0.0, block_at: 0.0}\n"
)
"""A tenant whose frame policy withholds every video (every score is >= 0)."""


@pytest.fixture
def store(store_target: dict[str, object], tmp_path: Path) -> ObjectStore:
    return object_store(Settings(**store_target))  # type: ignore[arg-type]


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Some credentials, so requests are signed and sent (to a store that is not there)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rg-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rg-test-secret")


def dead_store(tmp_path: Path) -> dict[str, object]:
    """Settings naming an S3 endpoint where nothing listens (a port bound, never listened on)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return {
        "data_dir": tmp_path / "videos",
        "storage_url": "s3://gone-bucket/rg",
        "s3_endpoint_url": f"http://127.0.0.1:{port}",
        "s3_timeout_s": 1.0,
    }


# -- the store contract ----------------------------------------------------------------------


def test_put_get_move_delete(store: ObjectStore) -> None:
    assert not store.exists("quarantine/v.mp4")
    store.put_bytes("quarantine/v.mp4", b"audited bytes")
    assert store.exists("quarantine/v.mp4") and store.get_bytes("quarantine/v.mp4") == (
        b"audited bytes"
    )
    store.move("quarantine/v.mp4", "released/v.mp4")
    assert not store.exists("quarantine/v.mp4")
    assert store.get_bytes("released/v.mp4") == b"audited bytes"
    stream = store.open("released/v.mp4")
    try:
        assert stream.size == 13 and b"".join(stream.chunks) == b"audited bytes"
    finally:
        stream.close()
    assert store.delete("released/v.mp4") is True
    assert store.delete("released/v.mp4") is False
    assert not store.exists("released/v.mp4")


def test_missing_objects_are_object_missing(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissing):
        store.get_bytes("released/none.mp4")
    with pytest.raises(ObjectMissing):
        store.open("released/none.mp4")
    with pytest.raises(ObjectMissing):
        store.move("quarantine/none.mp4", "released/none.mp4")
    assert not store.exists("released/none.mp4")


def test_writing_stores_the_file_under_its_key(store: ObjectStore, tmp_path: Path) -> None:
    with store.writing("quarantine/w.jpg") as path:
        assert path.suffix == ".jpg"  # writers pick the format from it
        path.write_bytes(b"\xff\xd8\xff poster")
    assert store.get_bytes("quarantine/w.jpg") == b"\xff\xd8\xff poster"
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(700_000))  # more than one streamed chunk
    store.put_file("released/big.bin", source)
    stream = store.open("released/big.bin")
    try:
        chunks = list(stream.chunks)
    finally:
        stream.close()
    assert len(chunks) > 1 and b"".join(chunks) == source.read_bytes()


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a//b", "released/../../x", "", "a/./b"])
def test_keys_cannot_leave_the_store(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="object key"):
        check_key(key)
    with pytest.raises(ValueError):
        store.exists(key)


def test_local_store_is_the_data_folder_byte_for_byte(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "videos")
    store.put_bytes("evidence/video_1/frame_000001.jpg", b"jpeg", private=True)
    path = tmp_path / "videos" / "evidence" / "video_1" / "frame_000001.jpg"
    assert path.read_bytes() == b"jpeg" and store.location("evidence/video_1/frame_000001.jpg") == (
        str(path)
    )
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert not list(path.parent.glob(".tmp-*"))  # written atomically, nothing left behind
    assert store.presigned_url("evidence/video_1/frame_000001.jpg", 60, "image/jpeg") is None


def test_s3_store_keeps_objects_under_its_prefix(s3_url: str, s3_server: S3Server) -> None:
    settings = Settings(storage_url=s3_url, s3_endpoint_url=s3_server.endpoint)
    store = object_store(settings)
    assert isinstance(store, S3Store) and store.prefix == s3_url.split("/")[-1] + "/"
    store.put_bytes("released/a.mp4", b"x")
    bucket, prefix = s3_url.removeprefix("s3://").split("/")
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}/released/a.mp4"]
    assert store.location("released/a.mp4") == f"s3://{bucket}/{prefix}/released/a.mp4"


def test_missing_credentials_say_which_variables_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = object_store(Settings(**dead_store(tmp_path)))  # type: ignore[arg-type]
    with pytest.raises(ObjectStoreUnavailable, match="set AWS_ACCESS_KEY_ID"):
        store.put_bytes("quarantine/a.mp4", b"x")


def test_s3_presigned_url_serves_without_credentials(s3_url: str, s3_server: S3Server) -> None:
    store = object_store(Settings(storage_url=s3_url, s3_endpoint_url=s3_server.endpoint))
    store.put_bytes("released/p.mp4", b"presigned body")
    url = store.presigned_url("released/p.mp4", 60, "video/mp4")
    assert url is not None and "X-Amz-Signature=" in url
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"presigned body"
    assert r.headers["content-type"] == "video/mp4"
    assert httpx.get(url.split("?")[0]).status_code == 403  # the bucket is not public


def test_unreachable_store_is_object_store_unavailable(tmp_path: Path, credentials: None) -> None:
    store = object_store(Settings(**dead_store(tmp_path)))  # type: ignore[arg-type]
    for call in (
        lambda: store.exists("released/a.mp4"),
        lambda: store.get_bytes("released/a.mp4"),
        lambda: store.put_bytes("quarantine/a.mp4", b"x"),
        lambda: store.move("quarantine/a.mp4", "released/a.mp4"),
    ):
        with pytest.raises(ObjectStoreUnavailable, match="REELGUARD_S3_ENDPOINT_URL"):
            call()


def test_missing_bucket_says_how_to_fix_it(s3_server: S3Server, s3_url: str) -> None:
    store = object_store(
        Settings(storage_url="s3://no-such-bucket-here", s3_endpoint_url=s3_server.endpoint)
    )
    with pytest.raises(ObjectStoreUnavailable, match="bucket does not exist"):
        store.put_bytes("released/a.mp4", b"x")


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3://UPPER",
        "http://bucket/x",
        "s3://a",
        "s3://bucket/has space",
        "s3://bucket/a//b",
        "s3://bucket/../x",
        "s3://bucket/a/./b",
    ],
)
def test_settings_refuse_a_bad_storage_url(url: str) -> None:
    with pytest.raises(ValidationError, match="s3://BUCKET"):
        Settings(storage_url=url)


@pytest.mark.parametrize(
    ("url", "prefix"), [("s3://bucket", ""), ("s3://bucket/", ""), ("s3://b-1.x/a/b_c/", "a/b_c/")]
)
def test_settings_and_store_agree_on_a_good_url(url: str, prefix: str) -> None:
    store = object_store(Settings(storage_url=url))
    assert isinstance(store, S3Store) and store.prefix == prefix


# -- the worker on each store ----------------------------------------------------------------


def product_settings(tmp_path: Path, store_target: Mapping[str, object]) -> Settings:
    settings = make_settings(tmp_path, **store_target)
    (settings.tenant_policy_dir / "strict.yaml").write_text(STRICT_TENANT)  # type: ignore[operator]
    return settings


def enqueue(settings: Settings, tenant: str = "acme") -> VideoJob:
    return enqueue_job(
        settings.database,
        new_job(
            tenant,
            "a blue bicycle",
            seconds="1",
            prompt_moderation={"action": "allow", "reasons": [], "policy_version": "test"},
            policy_version="test",
        ),
    )


def local_videos(settings: Settings) -> list[Path]:
    return [p for p in Path(settings.data_dir).rglob("*") if p.is_file()]


def test_worker_releases_and_withholds_through_the_store(
    tmp_path: Path, store_target: dict[str, object]
) -> None:
    settings = product_settings(tmp_path, store_target)
    files = object_store(settings)
    allowed, withheld = enqueue(settings), enqueue(settings, tenant="strict")
    assert run_all(runner(settings, backend=PatternBackend())) == 2
    jobs = JobStore(settings.database)
    done = jobs.get(allowed.id)
    assert done.status == "completed" and done.release == "released"
    assert files.exists(video_key("released", done.file_name))
    assert files.exists(video_key("released", done.thumbnail_name))
    assert not files.exists(video_key("quarantine", done.file_name))
    frames, _ = decode_mp4(files.get_bytes(video_key("released", done.file_name)))
    assert frames.shape[1:] == (64, 64, 3)
    kept = jobs.get(withheld.id)
    assert kept.status == "failed" and kept.release == "withheld"
    assert files.exists(video_key("quarantine", kept.file_name))
    assert not files.exists(video_key("released", kept.file_name))
    log = AuditLog(settings.database)
    releases = log.story(done.id).releases
    assert [(r["action"], r["path"]) for r in releases] == [
        ("released", files.location(video_key("released", done.file_name)))
    ]
    evidence = log.story(kept.id).evidence
    assert evidence and all(e["path"].startswith(f"evidence/{kept.id}/") for e in evidence)
    for e in evidence:  # the digest in the chain is the object's
        data = files.get_bytes(resolve_evidence_key(e["path"], files))
        assert hashlib.sha256(data).hexdigest() == e["sha256"] and len(data) == e["bytes"]
    if settings.storage_url:  # no shared folder: nothing of the videos lies on this disk
        assert local_videos(settings) == []


def test_verify_check_files_and_purge_read_the_store(
    tmp_path: Path, store_target: dict[str, object]
) -> None:
    settings = product_settings(tmp_path, store_target)
    files = object_store(settings)
    job = enqueue(settings, tenant="strict")
    run_all(runner(settings, backend=PatternBackend()))
    log = AuditLog(settings.database)
    keys = [resolve_evidence_key(e["path"], files) for e in log.story(job.id).evidence]
    assert keys and log.verify(check_files=True, data_dir=files).ok
    files.put_bytes(keys[0], b"edited after recording")
    problems = log.verify(check_files=True, data_dir=files).problems
    assert [p.kind for p in problems] == ["file"] and "changed" in problems[0].message
    files.delete(keys[0])
    problems = log.verify(check_files=True, data_dir=files).problems
    assert "missing" in problems[0].message
    report = log.purge(0, actor="ops", now=2e10, data_dir=files)
    assert report.files == len(keys) - 1 and report.kept == ()
    assert not any(files.exists(k) for k in keys)
    assert files.exists(video_key("quarantine", job.file_name))  # purge touches evidence only


def test_cli_verify_and_purge_honour_the_storage_url(
    tmp_path: Path, store_target: dict[str, object]
) -> None:
    settings = product_settings(tmp_path, store_target)
    files = object_store(settings)
    job = enqueue(settings, tenant="strict")
    run_all(runner(settings, backend=PatternBackend()))
    keys = [
        resolve_evidence_key(e["path"], files) for e in AuditLog(settings.db).story(job.id).evidence
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    env.update(REELGUARD_DB=str(settings.db), REELGUARD_DATA_DIR=str(settings.data_dir))
    if settings.storage_url:
        env.update(
            REELGUARD_STORAGE_URL=settings.storage_url,
            REELGUARD_S3_ENDPOINT_URL=str(settings.s3_endpoint_url),
        )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [REELGUARD, "audit", *args], env=env, capture_output=True, text=True, timeout=120
        )

    ok = cli("verify", "--check-files", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    files.put_bytes(keys[0], b"tampered")
    bad = cli("verify", "--check-files", "--json")
    assert bad.returncode == 1 and "was changed after recording" in bad.stdout
    time.sleep(1.1)  # the rows must be older than the cutoff
    purged = cli("purge", "--older-than", "1s", "--actor", "ops", "--yes", "--json")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert json.loads(purged.stdout)["files"] == len(keys)
    assert not any(files.exists(k) for k in keys)


def test_s3_evidence_keys_outside_evidence_are_refused(s3_url: str, s3_server: S3Server) -> None:
    store = object_store(Settings(storage_url=s3_url, s3_endpoint_url=s3_server.endpoint))
    stored = put_thumbnail(store, "video_1", 3, np.zeros((8, 8, 3), np.uint8))
    assert resolve_evidence_key(stored.key, store) == "evidence/video_1/frame_000003.jpg"
    for bad in (
        "released/video_1.mp4",
        "evidence/../released/x.mp4",
        "/evidence/a.jpg",
        "evidence",
    ):
        with pytest.raises(UnsafePath):
            resolve_evidence_key(bad, store)


def test_crash_after_decision_releases_from_the_store(
    tmp_path: Path, store_target: dict[str, object]
) -> None:
    settings = product_settings(tmp_path, store_target)
    files = object_store(settings)
    job = enqueue(settings)
    store = JobStore(settings.database)
    claimed = store.claim("w-dead", lease_s=0.01, max_attempts=3)
    assert claimed is not None and claimed.id == job.id
    files.put_bytes(video_key("quarantine", job.file_name), b"audited mp4")
    store.update(
        job.id,
        "w-dead",
        stage="decided",
        frame_moderation={"action": "allow", "final_action": "allow", "reasons": []},
    )
    time.sleep(0.05)  # the dead worker's lease lapses
    run_all(runner(settings, backend=PatternBackend()))
    done = store.get(job.id)
    assert done.status == "completed" and done.release == "released"
    assert files.get_bytes(video_key("released", job.file_name)) == b"audited mp4"
    assert not files.exists(video_key("quarantine", job.file_name))


def test_unreachable_store_fails_the_job_closed(tmp_path: Path, credentials: None) -> None:
    settings = product_settings(tmp_path, dead_store(tmp_path))
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend()))
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.release is None
    assert done.error_code == "storage_unavailable", done.error_message
    assert "REELGUARD_S3_ENDPOINT_URL" in (done.error_message or "")
    assert [r["action"] for r in AuditLog(settings.database).story(job.id).releases] == []


def test_store_lost_after_the_decision_fails_without_releasing(
    tmp_path: Path, s3_url: str, s3_server: S3Server
) -> None:
    settings = product_settings(
        tmp_path, {"storage_url": s3_url, "s3_endpoint_url": s3_server.endpoint}
    )
    job = enqueue(settings)
    store = JobStore(settings.database)
    claimed = store.claim("w-dead", lease_s=0.01, max_attempts=3)
    assert claimed is not None
    object_store(settings).put_bytes(video_key("quarantine", job.file_name), b"audited mp4")
    store.update(
        job.id,
        "w-dead",
        stage="decided",
        frame_moderation={"action": "allow", "final_action": "allow", "reasons": []},
    )
    time.sleep(0.05)
    down = settings.model_copy(update=dead_store(tmp_path))
    run_all(runner(down, backend=PatternBackend()))
    done = store.get(job.id)
    assert done.status == "failed" and done.release is None
    assert done.error_code == "release_failed" and "ObjectStoreUnavailable" in (
        done.error_message or ""
    )
    assert AuditLog(settings.database).story(job.id).releases == []


# -- downloads through the API ---------------------------------------------------------------


class Api:
    def __init__(self, settings: Settings, client: TestClient[Any]) -> None:
        self.settings, self.client = settings, client
        keys = KeyStore(settings.database)
        self.headers = {
            t: {"Authorization": f"Bearer {keys.create(t).token}"} for t in ("acme", "strict")
        }
        keys.close()

    def create(self, tenant: str) -> str:
        r = self.client.post(
            "/v1/videos",
            json={"prompt": "a red kite over a calm sea", "seconds": "1", "size": "64x64"},
            headers=self.headers[tenant],
        )
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def content(self, video_id: str, tenant: str, **params: str) -> httpx.Response:
        return self.client.get(
            f"/v1/videos/{video_id}/content",
            params=params,
            headers=self.headers[tenant],
            follow_redirects=False,  # the TestClient would send the store's URL to the app
        )


@pytest.fixture
def api(
    tmp_path: Path, store_target: dict[str, object], text_classifiers: Mapping[str, Any]
) -> Iterator[Api]:
    settings = product_settings(tmp_path, store_target)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        yield Api(settings, client)


def test_download_streams_released_and_never_serves_withheld(api: Api) -> None:
    allowed, withheld = api.create("acme"), api.create("strict")
    run_all(runner(api.settings, backend=PatternBackend()))
    files = object_store(api.settings)
    r = api.content(allowed, "acme")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content == files.get_bytes(video_key("released", f"{allowed}.mp4"))
    assert int(r.headers["content-length"]) == len(r.content)
    thumb = api.content(allowed, "acme", variant="thumbnail")
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    assert files.exists(video_key("quarantine", f"{withheld}.mp4"))
    denied = api.content(withheld, "strict")
    assert denied.status_code == 403 and "withheld" in denied.json()["detail"]
    # The released object gone from the store: 404, not a 500.
    files.delete(video_key("released", f"{allowed}.mp4"))
    assert api.content(allowed, "acme").status_code == 404


@pytest.mark.parametrize("store_target", ["s3"], indirect=True)
def test_presigned_downloads_redirect_to_the_store(api: Api) -> None:
    video_id = api.create("acme")
    run_all(runner(api.settings, backend=PatternBackend()))
    api.client.app.state.settings = api.settings.model_copy(
        update={"s3_presigned_downloads": True, "s3_presigned_expiry_s": 60}
    )
    r = api.content(video_id, "acme")
    assert r.status_code == 307 and "X-Amz-Expires=60" in r.headers["location"]
    fetched = httpx.get(r.headers["location"])  # no API key, no AWS credentials
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "video/mp4"
    assert fetched.content == object_store(api.settings).get_bytes(
        video_key("released", f"{video_id}.mp4")
    )
    withheld = api.create("strict")
    run_all(runner(api.settings, backend=PatternBackend()))
    assert api.content(withheld, "strict").status_code == 403  # no URL for quarantine


@pytest.mark.parametrize("store_target", ["s3"], indirect=True)
def test_unreachable_store_is_a_503_with_retry_after(api: Api, tmp_path: Path) -> None:
    video_id = api.create("acme")
    run_all(runner(api.settings, backend=PatternBackend()))
    api.client.app.state.settings = api.settings.model_copy(update=dead_store(tmp_path))
    r = api.content(video_id, "acme")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "video store" in r.json()["detail"] and "127.0.0.1" not in r.text


@pytest.mark.parametrize("command", [["worker"], ["serve", "--workers", "0"]])
def test_commands_refuse_to_start_on_an_unreachable_store(
    tmp_path: Path, command: list[str]
) -> None:
    settings = Settings(**{**dead_store(tmp_path), "db": tmp_path / "rg.db"})  # type: ignore[arg-type]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    env.update(
        REELGUARD_DB=str(settings.db),
        REELGUARD_STORAGE_URL=str(settings.storage_url),
        REELGUARD_S3_ENDPOINT_URL=str(settings.s3_endpoint_url),
        REELGUARD_S3_TIMEOUT_S="1",
        REELGUARD_PORT=str(free_port()),
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
    )
    done = subprocess.run(
        [REELGUARD, *command], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the video store cannot be used" in done.stderr
    assert "REELGUARD_S3_ENDPOINT_URL" in done.stderr and "Traceback" not in done.stderr
