"""``reelguard storage migrate``: a data folder the worker filled (released and withheld videos,
thumbnails, evidence) copied into the real SeaweedFS bucket (:mod:`s3server`) key for key,
verified by SHA-256; the audit chain's evidence still verifies against the bucket; runs are
idempotent and resumable; ``--dry-run`` copies nothing; bad input is a message, never a
traceback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from s3server import S3Server
from test_objects import REELGUARD, enqueue, product_settings
from test_videos_support import PatternBackend, run_all, runner

from config.settings import Settings
from storage.migrate import folder_keys, migrate
from storage.objects import LocalFolderStore, S3Store, object_store


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REELGUARD, *args], env=env, capture_output=True, text=True, timeout=180)


def base_env(s3_server: S3Server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    env.update(s3_server.env(), **extra)
    return env


def test_migrate_copies_verifies_and_resumes(
    tmp_path: Path, s3_url: str, s3_server: S3Server
) -> None:
    settings = product_settings(tmp_path, {"data_dir": tmp_path / "videos"})
    enqueue(settings), enqueue(settings, tenant="strict")
    assert run_all(runner(settings, backend=PatternBackend())) == 2
    folder = Path(settings.data_dir)
    (folder / "quarantine" / ".tmp-half.mp4").write_bytes(b"unfinished")  # not an object
    keys, ignored = folder_keys(folder)
    assert any(k.startswith("evidence/") for k in keys)
    assert any(k.startswith("released/") for k in keys)
    assert any(k.startswith("quarantine/") for k in keys)
    assert ignored == ["quarantine/.tmp-half.mp4: a temporary file of an unfinished write"]
    env = base_env(s3_server, REELGUARD_DB=str(settings.db), REELGUARD_DATA_DIR=str(folder))
    bucket = object_store(Settings(storage_url=s3_url, s3_endpoint_url=s3_server.endpoint))
    assert isinstance(bucket, S3Store)

    dry = cli(env, "storage", "migrate", "--to", s3_url, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert json.loads(dry.stdout)["copied"] == len(keys)
    assert not any(bucket.exists(k) for k in keys)  # a dry run copies nothing

    done = cli(env, "storage", "migrate", "--to", s3_url)  # the folder from REELGUARD_DATA_DIR
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"copied {len(keys)} object(s)" in done.stdout and "ok: set REELGUARD_STORAGE_URL" in (
        done.stdout
    )
    for key in keys:
        data = (folder / key).read_bytes()
        assert bucket.get_bytes(key) == data
        assert bucket.recorded_sha256(key) == hashlib.sha256(data).hexdigest()

    verify = cli(
        {**env, "REELGUARD_STORAGE_URL": s3_url},
        "audit",
        "verify",
        "--check-files",
        "--json",
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr  # evidence digests hold

    again = json.loads(cli(env, "storage", "migrate", "--to", s3_url, "--json").stdout)
    assert (again["copied"], again["skipped"], again["ok"]) == (0, len(keys), True)

    bucket.delete(keys[0])  # an interrupted run: one object never arrived
    bucket.put_bytes(keys[1], b"a different object")  # and one arrived wrong
    resumed = cli(env, "storage", "migrate", "--from", str(folder), "--to", s3_url, "--json")
    report = json.loads(resumed.stdout)
    assert (report["copied"], report["skipped"]) == (2, len(keys) - 2)
    assert bucket.get_bytes(keys[1]) == (folder / keys[1]).read_bytes()


def test_a_file_gone_mid_run_is_a_failure_to_run_again(
    tmp_path: Path, s3_url: str, s3_server: S3Server
) -> None:
    folder = tmp_path / "videos"
    for key in ("quarantine/a.mp4", "released/b.mp4", "released/c.mp4"):
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(key.encode())
    bucket = object_store(Settings(storage_url=s3_url, s3_endpoint_url=s3_server.endpoint))
    assert isinstance(bucket, S3Store)

    def progress(key: str, what: str) -> None:  # a process deletes c.mp4 after the listing
        if key == "quarantine/a.mp4":
            (folder / "released" / "c.mp4").unlink()

    report = migrate(LocalFolderStore(folder), bucket, progress=progress)
    assert not report.ok and report.copied == 2
    assert len(report.failed) == 1
    assert report.failed[0].startswith("released/c.mp4: gone from the folder")
    assert not bucket.exists("released/c.mp4")


def test_bad_url_and_unreachable_store_say_how_to_fix_it(
    tmp_path: Path, s3_server: S3Server
) -> None:
    folder = tmp_path / "videos"
    (folder / "released").mkdir(parents=True)
    (folder / "released" / "a.mp4").write_bytes(b"x")
    env = base_env(s3_server, REELGUARD_DATA_DIR=str(folder))
    bad = cli(env, "storage", "migrate", "--to", "s3://UPPER/x")
    assert bad.returncode == 1 and "use s3://BUCKET or s3://BUCKET/PREFIX" in bad.stderr
    missing = cli(env, "storage", "migrate", "--to", "s3://no-such-bucket-here")
    assert missing.returncode == 1 and "create it or fix" in missing.stderr
    closed = cli(
        {**env, "REELGUARD_S3_ENDPOINT_URL": "http://127.0.0.1:9", "REELGUARD_S3_TIMEOUT_S": "1"},
        "storage",
        "migrate",
        "--to",
        "s3://some-bucket",
    )
    assert closed.returncode == 1 and "check REELGUARD_S3_ENDPOINT_URL" in closed.stderr
    assert "run the command again" in closed.stderr
    nofolder = cli(env, "storage", "migrate", "--from", str(tmp_path / "none"), "--to", "s3://b-1")
    assert nofolder.returncode == 1 and "pass --from DIR" in nofolder.stderr
    for run in (bad, missing, closed, nofolder):
        assert "Traceback" not in run.stderr + run.stdout
