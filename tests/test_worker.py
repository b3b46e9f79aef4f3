"""The worker pipeline in-process: release and withhold, recovery after a crash at each stage,
cancellation, stage timeouts, shutdown, generator errors, and signed webhooks with retries."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from test_audit_support import RawConnection
from test_videos_support import (
    ExplodingClassifier,
    PatternBackend,
    enqueue_job,
    make_settings,
    new_job,
    run_all,
    runner,
)

from audit.evidence import resolve_evidence_path
from audit.log import AuditLog
from classifiers.base import Evidence, SampledFrame, Verdict
from config.settings import Settings, database_fields
from gateway.cancel import cancel
from gateway.jobs import JobStore, VideoJob, video_key, videos_dir
from gateway.webhooks import WebhookConfigError, check_config, deliver_due, deliveries
from gateway.worker import EXIT_STAGE_OVERRUN
from generator.base import BackendError
from storage import Database
from storage.objects import object_store


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("worker"))


@pytest.fixture
def on_each_db(db_target: Path | str, tmp_path: Path) -> Settings:
    """Settings on a fresh SQLite file, then on a fresh PostgreSQL database."""
    return make_settings(tmp_path, **database_fields(db_target))


def enqueue(
    settings: Settings, prompt: str = "a blue bicycle", action: str = "allow", tenant: str = "acme"
) -> VideoJob:
    return enqueue_job(
        settings.database,
        new_job(
            tenant,
            prompt,
            seconds="1",
            prompt_moderation={"action": action, "reasons": [], "policy_version": "test"},
            policy_version="test",
        ),
    )


def story(settings: Settings, job_id: str) -> dict[str, Any]:
    """What the audit log holds for a job: frame decisions and releases."""
    s = AuditLog(settings.database).story(job_id)
    return {"frames": [d for d in s.decisions if d.get("stage") == "frame"], "releases": s.releases}


def test_allowed_job_is_audited_then_released(settings: Settings) -> None:
    job = enqueue(settings)
    assert run_all(runner(settings, backend=PatternBackend())) >= 1
    done = JobStore(settings.database).get(job.id)
    assert done.status == "completed" and done.release == "released" and done.progress == 100
    assert (videos_dir(settings.data_dir, "released") / done.file_name).is_file()
    assert not (videos_dir(settings.data_dir, "quarantine") / done.file_name).exists()
    assert set(done.timings) >= {"queue_wait_s", "generate_s", "audit_s", "encode_s", "record_s"}
    log = story(settings, job.id)
    assert len(log["frames"]) == 1 and [r["action"] for r in log["releases"]] == ["released"]


def test_classifier_error_withholds_and_keeps_file_in_quarantine(settings: Settings) -> None:
    job = enqueue(settings)
    run_all(
        runner(
            settings,
            backend=PatternBackend(),
            frame_classifiers=lambda policy: [ExplodingClassifier()],
        )
    )
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.error_code == "output_moderation"
    assert done.release == "withheld" and "sexual" in (done.error_message or "")
    assert (videos_dir(settings.data_dir, "quarantine") / done.file_name).is_file()
    assert not (videos_dir(settings.data_dir, "released") / done.file_name).exists()
    assert [r["action"] for r in story(settings, job.id)["releases"]] == ["withheld"]


def test_frame_policy_withhold_keeps_evidence_thumbnails(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    strict = (
        "extends: default\ncategories:\n  sexual:\n    frame: {review_at: 0.0, block_at: 0.0}\n"
    )
    (settings.tenant_policy_dir / "strict.yaml").write_text(strict)  # type: ignore[operator]
    job = enqueue(settings, tenant="strict")
    run_all(runner(settings, backend=PatternBackend()))
    done = JobStore(settings.database).get(job.id)
    assert done.error_code == "output_moderation" and done.release == "withheld"
    reasons = (done.frame_moderation or {})["reasons"]
    assert reasons and all(
        r["category"] == "sexual" and r["source"] == "classifier" for r in reasons
    )
    stamps = [e["timestamp_s"] for r in reasons for e in r["evidence"] if "timestamp_s" in e]
    assert stamps and "at " in (done.error_message or "")
    evidence = AuditLog(settings.database).story(job.id).evidence
    assert evidence and all(e["path"].startswith(f"evidence/{job.id}/") for e in evidence)
    assert all(resolve_evidence_path(e["path"], settings.data_dir).is_file() for e in evidence)
    assert all(e["sha256"] for e in evidence)


def test_prompt_in_review_is_generated_but_withheld(settings: Settings) -> None:
    # The frames pass; only the prompt needs review: the code says so, not "output_moderation".
    job = enqueue(settings, action="review")
    run_all(runner(settings, backend=PatternBackend()))
    done = JobStore(settings.database).get(job.id)
    assert done.error_code == "prompt_review" and done.release == "withheld"
    assert "the prompt needs human review" in (done.error_message or "")
    assert "output moderation" not in (done.error_message or "")
    assert [r["action"] for r in story(settings, job.id)["releases"]] == ["withheld"]


def test_flagged_frames_of_a_prompt_in_review_say_output_moderation(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    strict = (
        "extends: default\ncategories:\n  sexual:\n    frame: {review_at: 0.0, block_at: 0.0}\n"
    )
    (settings.tenant_policy_dir / "strict.yaml").write_text(strict)  # type: ignore[operator]
    job = enqueue(settings, action="review", tenant="strict")
    run_all(runner(settings, backend=PatternBackend()))
    done = JobStore(settings.database).get(job.id)
    assert done.error_code == "output_moderation" and done.release == "withheld"
    message = done.error_message or ""
    assert "sexual" in message and "the prompt also needs human review" in message


def test_audit_that_cannot_run_withholds(settings: Settings) -> None:
    job = enqueue(settings)

    def broken(policy: object) -> list[object]:
        raise OSError("cannot open model directory")

    run_all(runner(settings, backend=PatternBackend(), frame_classifiers=broken))
    done = JobStore(settings.database).get(job.id)
    assert done.release == "withheld" and done.error_code == "output_moderation"


class SexualScore:
    """Scripted frame classifier: every frame gets the same ``sexual`` score (decision logic)."""

    name = "scripted"
    model_id = "scripted"
    model_version = "1"
    categories = ("sexual",)

    def __init__(self, score: float) -> None:
        self.score = score

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        return [
            Verdict(
                classifier=self.name,
                category="sexual",
                score=self.score,
                model_id=self.model_id,
                model_version=self.model_version,
                evidence=(Evidence(frame_index=f.index, timestamp_s=f.timestamp_s),),
            )
            for f in frames
        ]


# (prompt, sexual frame score, expected release, expected reason categories, why). The default
# policy's frame thresholds: sexual review_at 0.4, sexual/minors review_at 0.3.
MINOR_RULE_CASES = [
    ("two adults dancing at a party", 0.35, "released", set(), "below sexual review_at"),
    ("two kids dancing at a party", 0.35, "withheld", {"sexual/minors"}, "rule: minor + 0.3"),
    ("a 12 year old at the beach", 0.35, "withheld", {"sexual/minors"}, "age under 18"),
    ("two kids dancing at a party", 0.1, "released", set(), "no sexual signal at all"),
    ("a baby sleeping in a crib", 0.45, "withheld", {"sexual", "sexual/minors"}, "both fire"),
]


@pytest.mark.parametrize(("prompt", "score", "release", "categories", "why"), MINOR_RULE_CASES)
def test_prompt_minor_mentions_reach_the_frame_rule(
    settings: Settings, prompt: str, score: float, release: str, categories: set[str], why: str
) -> None:
    job = enqueue(settings, prompt=prompt)
    run_all(
        runner(settings, backend=PatternBackend(), frame_classifiers=lambda p: [SexualScore(score)])
    )
    done = JobStore(settings.database).get(job.id)
    assert done.release == release, why
    reasons = (done.frame_moderation or {})["reasons"]
    assert {r["category"] for r in reasons} == categories, why
    for r in reasons:
        if r["category"] == "sexual/minors":
            assert r["source"] == "rule" and r["action"] == "block"
            assert any("minor" in e.get("detail", "") for e in r["evidence"]), r


def test_failing_minor_mention_check_withholds(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import classifiers.text.lexicon as lexicon

    def broken(prompt: object) -> tuple[Evidence, ...]:
        raise OSError("lexicon file unreadable")

    monkeypatch.setattr(lexicon, "find_minor_mentions", broken)
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend()))
    done = JobStore(settings.database).get(job.id)
    assert done.release == "withheld" and done.error_code == "output_moderation"
    reasons = (done.frame_moderation or {})["reasons"]
    assert reasons and all(r["source"] == "error" for r in reasons)
    assert "lexicon file unreadable" in reasons[0]["message"]


def test_encode_overlaps_the_audit_and_the_file_holds_the_audited_frames(
    settings: Settings,
) -> None:
    from generator.encode import decode_mp4

    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend()))
    done = JobStore(settings.database).get(job.id)
    assert done.release == "released"
    t = done.timings
    assert {"audit_encode_s", "encode_wait_s"} <= set(t)
    # The audit and the encode ran side by side: the wall time of both is at most their sum.
    assert t["audit_encode_s"] <= t["audit_s"] + t["encode_s"] + 0.05
    frames, _ = decode_mp4(videos_dir(settings.data_dir, "released") / done.file_name)
    generated = (done.frame_moderation or {})["generator"]["frames"]
    assert len(frames) == generated


def test_encode_failure_fails_the_job_and_releases_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import generator.encode

    def broken(*args: object, **kw: object) -> Path:
        raise generator.encode.EncodeError("libx264 missing")

    monkeypatch.setattr(generator.encode, "encode_mp4", broken)
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend()))
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.release != "released"
    assert "libx264 missing" in (done.error_message or "")
    for folder in ("released", "quarantine"):
        assert not (videos_dir(settings.data_dir, folder) / done.file_name).exists()


def test_audit_stopped_while_encoding_leaves_no_file_behind(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import generator.encode
    from gateway.worker import StopJob

    real = generator.encode.encode_mp4

    def slow(*args: Any, **kw: Any) -> Path:
        time.sleep(0.5)  # still writing when the audit stops the job
        return real(*args, **kw)

    def cancelled(policy: object) -> list[object]:
        raise StopJob("cancelled", "deleted while auditing")

    monkeypatch.setattr(generator.encode, "encode_mp4", slow)
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend(), frame_classifiers=cancelled))
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.error_code == "cancelled"
    time.sleep(0.7)  # had the encoder been left running, its file would appear now
    quarantine = videos_dir(settings.data_dir, "quarantine")
    assert not (quarantine / done.file_name).exists()
    assert not (quarantine / done.thumbnail_name).exists()


def test_generator_error_fails_job_and_leaves_no_file(settings: Settings) -> None:
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend(fail_with=BackendError("CUDA out of memory"))))
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.error_code == "generation_failed"
    assert "CUDA out of memory" in (done.error_message or "")
    assert not (videos_dir(settings.data_dir, "quarantine") / done.file_name).exists()


def test_crash_before_decision_reruns_and_never_releases_unaudited(on_each_db: Settings) -> None:
    settings = on_each_db
    """A worker died mid-generation and left a partial file: the job is run again."""
    job = enqueue(settings)
    store = JobStore(settings.database)
    assert store.claim("dead-worker", lease_s=0.01, max_attempts=2) is not None
    store.update(job.id, "dead-worker", stage="encoding", progress=95)
    partial = videos_dir(settings.data_dir, "quarantine") / job.file_name
    partial.write_bytes(b"half an mp4")
    time.sleep(0.05)
    run_all(runner(settings, backend=PatternBackend()))
    done = store.get(job.id)
    assert done.status == "completed" and done.attempts == 2
    released = videos_dir(settings.data_dir, "released") / job.file_name
    assert released.read_bytes() != b"half an mp4"
    assert len(story(settings, job.id)["frames"]) == 1  # the rerun's audit, recorded once


def test_crash_after_decision_finishes_from_the_record(on_each_db: Settings) -> None:
    settings = on_each_db
    """A worker died between recording the audit and moving the file: no second generation."""
    job = enqueue(settings)
    store = JobStore(settings.database)
    store.claim("dead-worker", lease_s=0.01, max_attempts=1)
    (videos_dir(settings.data_dir, "quarantine") / job.file_name).write_bytes(b"audited mp4")
    store.update(
        job.id,
        "dead-worker",
        stage="decided",
        frame_moderation={"action": "allow", "final_action": "allow", "reasons": []},
    )
    time.sleep(0.05)
    backend = PatternBackend()
    run_all(runner(settings, backend=backend))
    done = store.get(job.id)
    assert done.status == "completed" and backend.calls == 0
    assert (
        videos_dir(settings.data_dir, "released") / job.file_name
    ).read_bytes() == b"audited mp4"


def test_crash_after_withhold_decision_stays_quarantined(on_each_db: Settings) -> None:
    settings = on_each_db
    job = enqueue(settings)
    store = JobStore(settings.database)
    store.claim("dead-worker", lease_s=0.01, max_attempts=1)
    (videos_dir(settings.data_dir, "quarantine") / job.file_name).write_bytes(b"bad mp4")
    store.update(
        job.id,
        "dead-worker",
        stage="decided",
        frame_moderation={"action": "block", "final_action": "block", "reasons": []},
    )
    time.sleep(0.05)
    run_all(runner(settings, backend=PatternBackend()))
    done = store.get(job.id)
    assert done.status == "failed" and done.error_code == "output_moderation"
    assert not (videos_dir(settings.data_dir, "released") / job.file_name).exists()


def _run_in_thread(job_runner: Any) -> threading.Thread:
    thread = threading.Thread(target=job_runner.run_next)
    thread.start()
    return thread


def test_delete_while_generating_cancels_at_the_next_step(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, video_lease_s=0.6)
    job = enqueue(settings)
    backend = PatternBackend(steps=100, step_s=0.05)
    thread = _run_in_thread(runner(settings, backend=backend))
    assert backend.started.wait(30)
    cancel(
        AuditLog(settings.database), job.id, "acme", "tenant:acme"
    )  # what DELETE /v1/videos does
    thread.join(30)
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.error_code == "cancelled"
    assert done.progress < 90


def test_generation_over_its_timeout_fails_the_job(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, video_generate_timeout_s=0.3)
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend(steps=50, step_s=0.05)))
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.error_code == "timeout"
    assert "generating" in (done.error_message or "")


def test_shutdown_hands_the_job_back_to_the_queue(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    job = enqueue(settings)
    backend = PatternBackend(steps=100, step_s=0.05)
    job_runner = runner(settings, backend=backend)
    thread = _run_in_thread(job_runner)
    assert backend.started.wait(30)
    job_runner.shutdown.set()
    thread.join(30)
    back = JobStore(settings.database).get(job.id)
    assert back.status == "queued" and back.attempts == 0 and back.worker_id is None


# -- webhooks --------------------------------------------------------------------------------


class Receiver:
    """A local webhook endpoint that answers the scripted statuses, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append((body, dict(self.headers.items())))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([500])
    yield r
    r.server.shutdown()


SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM="


def test_webhook_is_signed_and_retried_until_delivered(
    tmp_path: Path, receiver: Receiver, db_target: Path | str
) -> None:
    settings = make_settings(
        tmp_path, webhook_url=receiver.url, webhook_secret=SECRET, **database_fields(db_target)
    )
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend()))
    assert deliver_due(settings) == 0  # the receiver answered 500
    [row] = deliveries(settings, job.id)
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"] == "HTTP 500"
    assert row["next_attempt_at"] > time.time()
    assert deliver_due(settings) == 0  # not due yet: backoff

    # Make the retry due now instead of waiting for the backoff.
    RawConnection(Database.from_url(settings.database)).execute(
        "UPDATE webhook_deliveries SET next_attempt_at = 0"
    )
    assert deliver_due(settings) == 1
    assert deliveries(settings, job.id)[0]["status"] == "delivered"

    body, headers = receiver.received[-1]
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9")
    client.webhooks.verify_signature(body, headers, secret=SECRET)  # raises if forged
    event = json.loads(body)
    assert event["type"] == "video.completed" and event["data"]["id"] == job.id
    assert receiver.received[0][0] == body  # the retry sent the same event
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.verify_signature(body + b" ", headers, secret=SECRET)


def test_failed_video_sends_video_failed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses.clear()
    settings = make_settings(tmp_path, webhook_url=receiver.url, webhook_secret=SECRET)
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend(fail_with=BackendError("boom"))))
    assert deliver_due(settings) == 1
    event = json.loads(receiver.received[-1][0])
    assert event["type"] == "video.failed"
    assert event["data"]["error"]["code"] == "generation_failed" and event["data"]["id"] == job.id


def test_webhook_gives_up_after_max_attempts(
    tmp_path: Path, receiver: Receiver, db_target: Path | str
) -> None:
    receiver.statuses[:] = [503] * 5
    settings = make_settings(
        tmp_path,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_max_attempts=2,
        **database_fields(db_target),
    )
    job = enqueue(settings)
    run_all(runner(settings, backend=PatternBackend()))
    for _ in range(2):
        RawConnection(Database.from_url(settings.database)).execute(
            "UPDATE webhook_deliveries SET next_attempt_at = 0"
        )
        deliver_due(settings)
    [row] = deliveries(settings, job.id)
    assert row["status"] == "failed" and row["attempts"] == 2


@pytest.mark.parametrize(
    ("url", "secret", "problem"),
    [
        (None, None, None),  # webhooks off
        ("https://hooks.example/x", SECRET, None),
        ("https://hooks.example/x", "a-long-plain-secret", None),
        ("https://hooks.example/x", None, "REELGUARD_WEBHOOK_SECRET is not"),  # never unsigned
        ("ftp://hooks.example/x", SECRET, "http(s) URL"),
        ("https://hooks.example/x", "whsec_***", "not base64"),
    ],
)
def test_webhook_settings_are_checked_at_start(
    tmp_path: Path, url: str | None, secret: str | None, problem: str | None
) -> None:
    settings = make_settings(tmp_path, webhook_url=url, webhook_secret=secret)
    if problem is None:
        check_config(settings)
    else:
        with pytest.raises(WebhookConfigError, match=re.escape(problem)):
            check_config(settings)


def _run_one_hanging_job(settings: Settings) -> None:
    """In a spawned process: a generator stuck in one long step, never calling progress."""
    run_all(runner(settings, backend=PatternBackend(steps=1, step_s=120)))


def test_stage_that_ignores_its_timeout_ends_the_worker_process(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, video_generate_timeout_s=0.5, video_stage_grace_s=0.5, video_lease_s=0.6
    )
    job = enqueue(settings)
    proc = multiprocessing.get_context("spawn").Process(
        target=_run_one_hanging_job, args=(settings,)
    )
    proc.start()
    proc.join(120)
    if proc.is_alive():
        proc.kill()
        pytest.fail("the worker kept running a stage far past its timeout")
    assert proc.exitcode == EXIT_STAGE_OVERRUN
    done = JobStore(settings.database).get(job.id)
    assert done.status == "failed" and done.error_code == "timeout"


def test_reviewer_cli_releases_a_withheld_video(
    tmp_path: Path, store_target: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reelguard audit queue` lists the withheld video; `audit review --approve` releases it
    through gateway.jobs.release_withheld; `--reject` would have kept it withheld. On S3 the
    CLI finds the bucket in REELGUARD_STORAGE_URL (no --data-dir)."""
    from click.testing import CliRunner

    from gateway.cli import main

    settings = make_settings(tmp_path, **store_target)
    files = object_store(settings)
    job = enqueue(settings)
    run_all(
        runner(
            settings, backend=PatternBackend(), frame_classifiers=lambda p: [ExplodingClassifier()]
        )
    )
    assert JobStore(settings.database).get(job.id).release == "withheld"
    cli = CliRunner()
    queue = cli.invoke(main, ["audit", "queue", "--json", "--db", str(settings.database)])
    assert queue.exit_code == 0 and job.id in queue.output
    common = ["--note", "looked at it", "--reviewer", "bob", "--db", str(settings.database)]
    if settings.storage_url:
        monkeypatch.setenv("REELGUARD_STORAGE_URL", settings.storage_url)
    else:
        common += ["--data-dir", str(settings.data_dir)]
    rejected = cli.invoke(main, ["audit", "review", job.id, "--reject", *common])
    assert rejected.exit_code == 0, rejected.output
    assert JobStore(settings.database).get(job.id).release == "withheld"
    approved = cli.invoke(main, ["audit", "review", job.id, "--approve", *common])
    assert approved.exit_code == 0, approved.output
    done = JobStore(settings.database).get(job.id)
    assert done.status == "completed" and done.release == "released" and done.error_code is None
    assert files.exists(video_key("released", done.file_name))
    assert not files.exists(video_key("quarantine", done.file_name))
    releases = AuditLog(settings.database).story(job.id).releases
    assert [(r["action"], r["actor"]) for r in releases][-1] == ("released", "bob")
    again = cli.invoke(main, ["audit", "review", job.id, "--approve", *common])
    assert "Traceback" not in again.output


def test_review_outcomes_send_webhooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client waiting on a withheld video hears the review's outcome: video.failed again on
    a rejection, video.completed on an approval (the reviewer CLI runs with the server's env)."""
    from click.testing import CliRunner

    from gateway.cli import main

    monkeypatch.setenv("REELGUARD_WEBHOOK_URL", "http://127.0.0.1:9/hooks")
    monkeypatch.setenv("REELGUARD_WEBHOOK_SECRET", SECRET)
    settings = make_settings(tmp_path)
    job = enqueue(settings)
    run_all(
        runner(
            settings, backend=PatternBackend(), frame_classifiers=lambda p: [ExplodingClassifier()]
        )
    )
    common = ["--note", "n", "--reviewer", "bob", "--db", str(settings.database)]
    common += ["--data-dir", str(settings.data_dir)]
    for verdict in ("--reject", "--approve"):
        done = CliRunner().invoke(main, ["audit", "review", job.id, verdict, *common])
        assert done.exit_code == 0, done.output
    events = [d["type"] for d in deliveries(settings, job.id)]
    # withheld (the worker), rejected, approved
    assert events == ["video.failed", "video.failed", "video.completed"]


def test_worker_command_refuses_a_bad_policy_or_webhook_config(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("categories: [\n")
    cli = CliRunner()
    db = ["--db", str(tmp_path / "rg.db")]
    result = cli.invoke(main, ["worker", *db], env={"REELGUARD_POLICY": str(bad)})
    assert result.exit_code == 1 and "bad.yaml:" in result.output
    assert "Traceback" not in result.output
    result = cli.invoke(main, ["worker", *db], env={"REELGUARD_WEBHOOK_URL": "https://x.example"})
    assert result.exit_code == 1 and "REELGUARD_WEBHOOK_SECRET" in result.output
    assert cli.invoke(main, ["worker", "-h"]).exit_code == 0
