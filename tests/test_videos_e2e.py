"""End to end: a real ``reelguard serve`` (uvicorn + worker processes, the embedded generator,
the bundled frame models) on 127.0.0.1, driven with the official ``openai`` SDK; then kill -9
of a worker and of the server mid-job, and ``reelguard worker`` finishing what was left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from test_videos_support import BLOCKED_TERM, embedded_weights, make_settings

from audit.log import AuditLog
from config.settings import Settings, database_fields
from gateway.jobs import JobStore, VideoJob
from gateway.keys import KeyStore
from generator.encode import decode_mp4

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The Sora API:DeprecationWarning"
    ),  # the SDK marks videos deprecated
]

REELGUARD = str(Path(sys.executable).with_name("reelguard"))
METRICS_TOKEN = "e2e-metrics-token-0123456789"
STRICT_TENANT = """\
extends: default
categories:
  sexual:
    frame: {review_at: 0.0, block_at: 0.0}
"""
"""A tenant whose frame policy withholds every video (every score is >= 0)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(settings: Settings) -> dict[str, str]:
    """The process environment that gives a server or worker these settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REELGUARD_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["REELGUARD_METRICS_TOKEN"] = METRICS_TOKEN
    for name in (
        "db",
        "data_dir",
        "policy",
        "tenant_policy_dir",
        "video_default_size",
        "video_default_seconds",
        "video_lease_s",
        "embedded_steps",
        "embedded_weights",
        "worker_poll_interval_s",
        "port",
    ):
        env[f"REELGUARD_{name.upper()}"] = str(getattr(settings, name))
    if settings.database_url:
        env["REELGUARD_DATABASE_URL"] = settings.database_url
    env.update(REELGUARD_BOOTSTRAP_KEY="false", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@dataclass
class Server:
    settings: Settings
    url: str
    tokens: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, tenant: str = "acme") -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.tokens[tenant], base_url=self.url + "/v1", max_retries=0, timeout=60
        )

    def job(self, video_id: str) -> VideoJob:
        return JobStore(self.settings.database).get(video_id)


def start_server(
    settings: Settings, log: Path, workers: int = 1, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``reelguard serve --workers N`` with these settings (or the environment ``env``), in a
    process group of its own; returns once ``/healthz`` answers."""
    proc = subprocess.Popen(
        [REELGUARD, "serve", "--workers", str(workers)],
        env=env if env is not None else env_for(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{settings.port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and everything it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with __import__("contextlib").suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # orphaned workers, if any


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e")
    settings = make_settings(
        tmp, port=free_port(), embedded_weights=embedded_weights(tmp), embedded_steps=20
    )
    (settings.tenant_policy_dir / "strict.yaml").write_text(STRICT_TENANT)  # type: ignore[operator]
    keys = KeyStore(settings.database)
    tokens = {t: keys.create(t).token for t in ("acme", "globex", "strict")}
    keys.close()
    log = tmp / "server.log"
    proc = start_server(settings, log)
    try:
        yield Server(settings, f"http://127.0.0.1:{settings.port}", tokens, proc, log)
    finally:
        stop(proc)


def wait_done(client: openai.OpenAI, video_id: str, timeout_s: float = 300) -> openai.types.Video:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        video = client.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
        time.sleep(0.3)
    raise AssertionError(f"video {video_id} still {video.status} after {timeout_s} s")


def test_sdk_create_retrieve_download(server: Server) -> None:
    client = server.client()
    video = client.videos.create(
        prompt="a white triangle sailing on a blue lake", seconds="2", size="64x64"
    )  # type: ignore[arg-type]
    assert video.status == "queued" and video.id.startswith("video_")
    done = wait_done(client, video.id)
    assert done.status == "completed", done.error
    assert done.progress == 100 and done.seconds == "2"
    frames, fps = decode_mp4(client.videos.download_content(video.id).read())
    assert frames.shape[1:] == (64, 64, 3) and frames.shape[0] >= round(fps)
    thumb = client.videos.download_content(video.id, variant="thumbnail").read()
    assert thumb[:3] == b"\xff\xd8\xff"
    listed = [v.id for v in client.videos.list(limit=1)]  # pages through every video
    assert video.id in listed
    # The moderation record: prompt allowed, frames audited with timestamps, same policy.
    extra = done.model_extra or {}
    assert extra["moderation"]["action"] == "allow"
    assert extra["moderation"]["frames"]["sampled_frames"] >= 2
    story = AuditLog(server.settings.database).story(video.id)
    assert [r["action"] for r in story.releases] == ["released"] and story.frame_scores


def test_sdk_blocked_prompt_is_a_bad_request_with_reasons(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        server.client().videos.create(prompt=f"a {BLOCKED_TERM} in a harbour")
    err = info.value
    assert err.code == "prompt_moderation" and err.param == "prompt"
    body = err.body
    assert isinstance(body, dict)
    reason = body["moderation"]["reasons"][0]
    assert reason["category"] == "violence" and reason["evidence"][0]["text"] == BLOCKED_TERM
    assert body["moderation"]["policy_version"]


def test_sdk_tenant_isolation_and_idempotency(server: Server) -> None:
    acme, globex = server.client("acme"), server.client("globex")
    headers = {"Idempotency-Key": "retry-me"}
    first = acme.videos.create(
        prompt="a green circle on a quiet forest path", extra_headers=headers
    )
    again = acme.videos.create(
        prompt="a green circle on a quiet forest path", extra_headers=headers
    )
    assert first.id == again.id
    with pytest.raises(openai.NotFoundError):
        globex.videos.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        globex.videos.download_content(first.id)
    with pytest.raises(openai.NotFoundError):
        globex.videos.delete(first.id)
    assert first.id not in [v.id for v in globex.videos.list()]
    wait_done(acme, first.id)
    deleted = acme.videos.delete(first.id)
    assert deleted.deleted and deleted.id == first.id and deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        acme.videos.retrieve(first.id)


def test_withheld_video_is_never_served(server: Server) -> None:
    client = server.client("strict")
    video = client.videos.create(prompt="a bowl of orange fruit on a table", seconds="1")  # type: ignore[arg-type]
    done = wait_done(client, video.id)
    assert done.status == "failed" and done.error is not None
    assert done.error.code == "output_moderation"
    for variant in ("video", "thumbnail"):
        with pytest.raises(openai.PermissionDeniedError):
            client.videos.download_content(video.id, variant=variant)  # type: ignore[arg-type]
    assert not (server.settings.data_dir / "released" / f"{video.id}.mp4").exists()
    assert (server.settings.data_dir / "quarantine" / f"{video.id}.mp4").exists()


def test_metrics_add_up_the_web_and_worker_processes(server: Server) -> None:
    """One scrape of the web process shows what its worker process counted too."""
    client = server.client()
    video = client.videos.create(prompt="a yellow square moving left", seconds="1")  # type: ignore[arg-type]
    wait_done(client, video.id)
    answer = httpx.get(
        server.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    )
    assert answer.status_code == 200
    lines = dict(
        line.rsplit(" ", 1) for line in answer.text.splitlines() if not line.startswith("#")
    )
    assert float(lines["reelguard_workers"]) == 1.0  # the worker process is alive
    finished = [float(v) for k, v in lines.items() if k.startswith("reelguard_jobs_finished")]
    assert sum(finished) >= 1  # counted in the worker process
    frame = [
        float(v)
        for k, v in lines.items()
        if k.startswith("reelguard_moderation_decisions_total") and 'stage="frame"' in k
    ]
    assert sum(frame) >= 1  # the worker's frame decisions
    posts = [
        float(v)
        for k, v in lines.items()
        if k.startswith("reelguard_http_requests_total") and 'route="/v1/videos"' in k
    ]
    assert sum(posts) >= 1  # counted in the web process


def wait_running(server: Server, video_id: str, timeout_s: float = 120) -> VideoJob:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = server.job(video_id)
        if job.status == "in_progress" and job.stage == "generating" and job.progress > 0:
            return job
        assert job.status in ("queued", "in_progress"), (job.error_code, job.error_message)
        time.sleep(0.05)
    raise AssertionError(f"{video_id} never started generating")


def assert_ended_with_audit(server: Server, video_id: str) -> VideoJob:
    job = server.job(video_id)
    assert job.status in ("completed", "failed"), job
    story = AuditLog(server.settings.database).story(video_id)
    if job.status == "completed":
        assert any(d.get("stage") == "frame" for d in story.decisions)
        assert [r["action"] for r in story.releases][-1] == "released"
    else:
        assert not (server.settings.data_dir / "released" / f"{video_id}.mp4").exists()
    return job


def test_sdk_delete_of_a_running_video_cancels_it(server: Server) -> None:
    """The first-time user's trial: delete an in_progress video; a worker process must not
    release it afterwards, and the audit log must say who cancelled it."""
    client = server.client()
    video = client.videos.create(prompt="a purple circle bouncing", seconds="4", size="128x128")  # type: ignore[arg-type]
    wait_running(server, video.id)
    assert client.videos.delete(video.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    deadline = time.monotonic() + 120
    while (job := server.job(video.id)).status not in ("completed", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    time.sleep(0.5)  # a worker that ignored the cancellation would release about now
    job = server.job(video.id)
    story = AuditLog(server.settings.database).story(video.id)
    actions = [r["action"] for r in story.releases]
    by_owner = [r for r in story.releases if r["actor"].startswith("tenant:acme key:")]
    assert len(by_owner) == 1, story.releases  # who cancelled, and when (recorded_at)
    if actions == ["released", "deleted"]:
        # The worker's release committed before the DELETE did: it had finished, and the
        # DELETE removed it. (A loaded machine can be that slow; the invariants still hold.)
        assert job.status == "completed"
    else:
        assert actions == ["cancelled"], actions  # never released after the cancellation
        assert (job.status, job.error_code, job.release) == ("failed", "cancelled", None), job
    data = server.settings.data_dir
    assert not list((data / "released").glob(f"{video.id}.*"))
    assert not list((data / "quarantine").glob(f"{video.id}.*"))


def test_kill_9_worker_mid_job_then_the_job_still_ends(server: Server) -> None:
    client = server.client()
    video = client.videos.create(
        prompt="blue waves breaking on black rocks", seconds="4", size="128x128"
    )  # type: ignore[arg-type]
    job = wait_running(server, video.id)
    worker_pid = int((job.worker_id or "").split(":")[1])
    os.kill(worker_pid, signal.SIGKILL)
    done = wait_done(client, video.id, timeout_s=300)
    job = assert_ended_with_audit(server, video.id)
    assert done.status == job.status and job.worker_id != f"{worker_pid}"
    assert job.attempts == 2 or job.error_code == "worker_lost"


def test_kill_9_server_mid_job_then_a_worker_finishes_it(
    tmp_path: Path, db_target: Path | str
) -> None:
    """On SQLite and on PostgreSQL (there the worker is woken by LISTEN/NOTIFY, and claims with
    FOR UPDATE SKIP LOCKED)."""
    settings = make_settings(
        tmp_path,
        port=free_port(),
        video_lease_s=2.0,
        embedded_weights=embedded_weights(tmp_path),
        embedded_steps=20,
        **database_fields(db_target),
    )
    keys = KeyStore(settings.database)
    token = keys.create("acme").token
    keys.close()
    log = tmp_path / "server.log"
    proc = start_server(settings, log)
    server = Server(settings, f"http://127.0.0.1:{settings.port}", {"acme": token}, proc, log)
    try:
        video = server.client().videos.create(
            prompt="a red train crossing a bridge",
            seconds="4",
            size="128x128",  # type: ignore[arg-type]
        )
        wait_running(server, video.id)
        os.kill(proc.pid, signal.SIGKILL)  # the web process and pool supervisor, not its workers
        proc.wait(10)
        # Orphaned workers notice and hand the job back (or their lease runs out).
        worker = subprocess.Popen(
            [REELGUARD, "worker", "-n", "1"],
            env=env_for(settings),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while server.job(video.id).status not in ("completed", "failed"):
                assert time.monotonic() < deadline, server.job(video.id)
                time.sleep(0.3)
        finally:
            stop(worker)
        assert assert_ended_with_audit(server, video.id).status == "completed"
    finally:
        stop(proc)
