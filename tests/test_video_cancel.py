"""``client.videos.delete(id)`` on a running video cancels it, and wins every race with the worker.

A real server on 127.0.0.1 driven with the official ``openai`` SDK, and a real worker
(:class:`gateway.worker.JobRunner`, in-process so a test can hold it at a chosen point) on the
same database. Whatever the order, a cancelled video is never released, its files are removed
(or kept in quarantine as evidence when the frame audit flagged it), and the audit log records
who cancelled it and when.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn
from conftest import free_port
from test_videos_support import PatternBackend, make_settings, runner

from audit.log import AuditLog
from config.settings import Settings
from gateway.jobs import JobStore, VideoJob
from gateway.keys import KeyStore
from gateway.worker import Components, JobRunner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]

STRICT = "extends: default\ncategories:\n  sexual:\n    frame: {review_at: 0.0, block_at: 0.0}\n"
"""A tenant whose frame policy withholds every video."""


@dataclass
class Live:
    settings: Settings
    url: str
    key: dict[str, str]
    key_id: dict[str, str]

    def sdk(self, tenant: str = "acme") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=self.key[tenant], max_retries=0)

    def job(self, video_id: str) -> VideoJob:
        return JobStore(self.settings.db).get(video_id)

    def releases(self, video_id: str) -> list[tuple[str, str]]:
        story = AuditLog(self.settings.db).story(video_id)
        return [(r["action"], r["actor"]) for r in story.releases]

    def files(self, video_id: str) -> set[str]:
        data = self.settings.data_dir
        return {
            f"{kind}/{p.name}"
            for kind in ("released", "quarantine")
            for p in (data / kind).glob(f"{video_id}.*")
        }


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, Any]
) -> Iterator[Live]:
    from gateway.app import create_app

    settings = make_settings(tmp_path_factory.mktemp("cancel"), video_lease_s=30.0)
    (settings.tenant_policy_dir / "strict.yaml").write_text(STRICT)  # type: ignore[operator]
    keys = KeyStore(settings.db)
    made = {t: keys.create(t) for t in ("acme", "strict")}
    keys.close()
    port = free_port()
    app = create_app(settings, classifiers=text_classifiers)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Live(
            settings,
            f"http://127.0.0.1:{port}/v1",
            {t: m.token for t, m in made.items()},
            {t: m.key.key_id for t, m in made.items()},
        )
    finally:
        server.should_exit = True
        thread.join(10)


class HoldingLog(AuditLog):
    """The real audit log, holding the worker right after it recorded the frame audit (the
    decision is in the log; nothing is released yet) until the test lets it go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reached = threading.Event()
        self.go = threading.Event()

    def record_frame_audit(self, rec: Any) -> int:
        seq = super().record_frame_audit(rec)
        self.reached.set()
        assert self.go.wait(60), "the test never let the worker go"
        return seq


def holding_runner(settings: Settings) -> tuple[JobRunner, HoldingLog]:
    base = runner(settings).c
    log = HoldingLog(settings.db)
    components = Components(
        settings=settings,
        backends={"embedded": PatternBackend()},
        policies=base.policies,
        audit_log=log,
        frame_classifiers=base.frame_classifiers,
    )
    return JobRunner(settings, components, "test-worker"), log


@contextmanager
def worker_thread(job_runner: JobRunner) -> Iterator[None]:
    thread = threading.Thread(target=job_runner.run_next, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(60)
        assert not thread.is_alive(), "the worker did not finish"


def assert_cancelled_by(live: Live, video_id: str, tenant: str = "acme") -> VideoJob:
    job = live.job(video_id)
    assert (job.status, job.error_code) == ("failed", "cancelled"), job
    assert job.release != "released" and job.deleted_at is not None
    actions = live.releases(video_id)
    assert ("cancelled", f"tenant:{tenant} key:{live.key_id[tenant]}") in actions, actions
    assert "released" not in [a for a, _ in actions]
    with pytest.raises(openai.NotFoundError):
        live.sdk(tenant).videos.retrieve(video_id)
    with pytest.raises(openai.NotFoundError):
        live.sdk(tenant).videos.download_content(video_id)
    return job


def test_delete_while_generating_stops_at_the_next_step(live: Live) -> None:
    client = live.sdk()
    video = client.videos.create(prompt="a red circle bouncing", seconds="1")  # type: ignore[arg-type]
    backend = PatternBackend(steps=200, step_s=0.05)
    job_runner = runner(live.settings, backend=backend)
    with worker_thread(job_runner):
        assert backend.started.wait(30)
        t0 = time.monotonic()
        deleted = client.videos.delete(video.id)
        assert deleted.deleted and deleted.id == video.id
    stopped_s = time.monotonic() - t0
    job = assert_cancelled_by(live, video.id)
    assert job.progress < 90 and job.stage == "done"
    assert stopped_s < 2.0, f"the worker took {stopped_s:.2f} s to stop"  # next step, not a beat
    assert live.files(video.id) == set()
    assert AuditLog(live.settings.db).story(video.id).decisions[-1]["stage"] == "prompt"


def test_delete_between_the_audit_and_the_release_wins(live: Live) -> None:
    client = live.sdk()
    video = client.videos.create(prompt="a blue square moving left", seconds="1")  # type: ignore[arg-type]
    job_runner, log = holding_runner(live.settings)
    with worker_thread(job_runner):
        assert log.reached.wait(60), "the worker never recorded the frame audit"
        assert client.videos.delete(video.id).deleted
        log.go.set()
    assert_cancelled_by(live, video.id)
    story = AuditLog(live.settings.db).story(video.id)
    assert any(d.get("stage") == "frame" and d["action"] == "allow" for d in story.decisions)
    # The audited, allowed file was never servable and is gone: the owner deleted it.
    assert live.files(video.id) == set()


def test_a_withheld_video_cancelled_before_its_release_keeps_its_evidence(live: Live) -> None:
    client = live.sdk("strict")
    video = client.videos.create(prompt="a green triangle growing", seconds="1")  # type: ignore[arg-type]
    job_runner, log = holding_runner(live.settings)
    with worker_thread(job_runner):
        assert log.reached.wait(60)
        client.videos.delete(video.id)
        log.go.set()
    assert_cancelled_by(live, video.id, "strict")
    assert [a for a, _ in live.releases(video.id)] == ["cancelled"]
    assert live.files(video.id) == {f"quarantine/{video.id}.mp4", f"quarantine/{video.id}.jpg"}


def test_delete_after_the_release_deletes_and_says_who(live: Live) -> None:
    client = live.sdk()
    video = client.videos.create(prompt="an orange circle falling", seconds="1")  # type: ignore[arg-type]
    with worker_thread(runner(live.settings, backend=PatternBackend())):
        pass
    assert client.videos.retrieve(video.id).status == "completed"
    assert client.videos.delete(video.id).deleted
    assert live.job(video.id).status == "completed"  # it had finished when the DELETE came
    assert live.releases(video.id) == [
        ("released", "worker:test-worker"),
        ("deleted", f"tenant:acme key:{live.key_id['acme']}"),
    ]
    assert live.files(video.id) == set()
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(video.id)  # deleting twice is a 404, and records nothing
    assert len(live.releases(video.id)) == 2


def test_delete_of_a_queued_video_is_recorded(live: Live) -> None:
    client = live.sdk()
    video = client.videos.create(prompt="a white circle shrinking", seconds="1")  # type: ignore[arg-type]
    assert client.videos.delete(video.id).deleted
    assert_cancelled_by(live, video.id)
    assert JobStore(live.settings.db).claim("w", lease_s=5, max_attempts=2) is None
