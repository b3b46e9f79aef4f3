"""A video job and its prompt decision (issue 10, item 9): they commit in one transaction, and a
worker refuses (fails closed) a job whose prompt decision is not in the audit log.

Before, ``POST /v1/videos`` committed the job, then the prompt record: a kill -9 in between
left queued jobs with no prompt record, which a worker generated and released.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_audit_support import moderation
from test_videos_support import PatternBackend, enqueue_job, make_settings, new_job, run_all, runner

from audit.errors import InvalidRecord
from audit.log import AuditLog
from config.settings import Settings
from gateway.jobs import JobStore, videos_dir
from gateway.worker import PROMPT_AUDIT_MISSING
from policies.decision import Action


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("prompt-record"))


def test_the_job_and_its_prompt_record_commit_in_one_transaction(db_target: Path | str) -> None:
    db = db_target
    store, audit = JobStore(db), AuditLog(db)
    statements: list[str] = []
    audit.open()  # the schema, before the statements counted below
    audit.database.trace(statements.append)
    job, created = store.create(
        new_job(),
        queue_max=10,
        audit=audit,
        prompt_record=moderation("vidr-1", endpoint="videos"),
    )
    audit.database.trace(None)
    assert created
    begins = [i for i, s in enumerate(statements) if s.startswith("BEGIN")]
    commits = [i for i, s in enumerate(statements) if s == "COMMIT"]
    assert len(begins) == 1 and len(commits) == 1  # one transaction...
    inside = statements[begins[0] : commits[0]]
    assert any("INSERT INTO video_jobs" in s for s in inside)  # ...holding the job...
    assert any("INSERT INTO requests" in s for s in inside)  # ...and its prompt record
    assert audit.prompt_decision(job.id) == "allow"
    assert audit.story(job.id).request["request_id"] == "vidr-1"  # type: ignore[index]


def test_a_prompt_record_that_cannot_be_written_leaves_no_job(db_target: Path | str) -> None:
    db = db_target
    store, audit = JobStore(db), AuditLog(db)
    audit.record_moderation(moderation("vidr-taken", endpoint="videos"))
    with pytest.raises(InvalidRecord, match="already in the audit log"):
        store.create(
            new_job(),
            queue_max=10,
            audit=audit,
            prompt_record=moderation("vidr-taken", endpoint="videos"),
        )
    assert store.list("acme").jobs == ()
    assert store.claim("w", lease_s=30, max_attempts=1) is None


def _refused(settings: Settings, job_id: str, backend: PatternBackend) -> None:
    done = JobStore(settings.db).get(job_id)
    assert done.status == "failed" and done.error_code == PROMPT_AUDIT_MISSING
    assert "refused before generation" in (done.error_message or "")
    assert backend.calls == 0  # nothing was generated
    assert not (videos_dir(settings.data_dir, "released") / done.file_name).exists()
    releases = AuditLog(settings.db).story(job_id).releases
    assert [r["action"] for r in releases] == ["withheld"]
    assert "refused before generation" in releases[0]["reason"]


def test_a_worker_refuses_a_job_with_no_prompt_decision_on_record(settings: Settings) -> None:
    # What a kill -9 between the two old transactions left behind: a queued job, no record.
    job, _ = JobStore(settings.db).create(new_job(seconds="1"), queue_max=10)
    backend = PatternBackend()
    assert run_all(runner(settings, backend=backend)) == 1
    _refused(settings, job.id, backend)


def test_a_worker_refuses_a_job_whose_recorded_decision_is_block(settings: Settings) -> None:
    job, _ = JobStore(settings.db).create(new_job(seconds="1"), queue_max=10)
    log = AuditLog(settings.db)
    log.record_moderation(
        moderation("vidr-blocked", endpoint="videos", job_id=job.id, action=Action.BLOCK)
    )
    backend = PatternBackend()
    run_all(runner(settings, backend=backend))
    _refused(settings, job.id, backend)


def test_a_job_with_its_prompt_record_is_generated(settings: Settings) -> None:
    job = enqueue_job(settings.db, new_job(seconds="1"))
    backend = PatternBackend()
    run_all(runner(settings, backend=backend))
    done = JobStore(settings.db).get(job.id)
    assert done.status == "completed" and done.release == "released" and backend.calls == 1


def test_the_refusal_is_visible_in_the_review_queue(settings: Settings) -> None:
    job, _ = JobStore(settings.db).create(new_job(seconds="1", prompt="a kite"), queue_max=10)
    run_all(runner(settings, backend=PatternBackend()))
    queue = AuditLog(settings.db).queue(limit=None)
    assert job.id in [item.ref for item in queue if item.kind == "withheld_video"]
    with sqlite3.connect(settings.db) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM requests WHERE job_id = ?", (job.id,)
        ).fetchone()
    assert count == 0  # the refusal did not invent a prompt decision


def test_an_uploaded_images_decision_is_chained_with_the_prompt_record(
    db_target: Path | str,
) -> None:
    """The input stage (issue 15): the image's verdicts and decision join the request's record
    in the same transaction as the job row; the request's action is the more severe one."""
    from dataclasses import replace

    from audit.records import InputCheck, ListFilter
    from classifiers.base import Evidence, Verdict
    from policies.decision import Decision, Reason

    face = Verdict(
        "faces",
        "celebrity",
        1.0,
        "opencv-haar",
        "0f7d",
        (Evidence(frame_index=0, timestamp_s=0.0, detail="1 face(s)"),),
        0.5,
        "face",
    )
    reason = Reason(
        category="celebrity",
        action=Action.REVIEW,
        stage="input",
        source="classifier",
        classifier="faces",
        score=1.0,
        threshold=None,
        evidence=face.evidence,
        message="faces: a face in the uploaded image; inputs.faces is review",
    )
    checked = InputCheck(
        field="input_reference",
        sha256="ab" * 32,
        media_type="image/png",
        width=256,
        height=256,
        bytes=1234,
        verdicts=(face,),
        decision=Decision(Action.REVIEW, (reason,), "pv-1", {"celebrity": 1.0}),
        model_versions={"faces": "opencv-haar@0f7d"},
        latency_ms=12.5,
    )
    store, audit = JobStore(db_target), AuditLog(db_target)
    record = replace(moderation("vidr-input", endpoint="videos"), input=checked)
    job, _ = store.create(new_job(), queue_max=10, audit=audit, prompt_record=record)
    story = audit.story(job.id)
    assert story.request is not None and story.request["action"] == "review"
    assert [(d["stage"], d["action"]) for d in story.decisions] == [
        ("prompt", "allow"),
        ("input", "review"),
    ]
    assert story.decisions[1]["frames"]["input_reference"]["sha256"] == "ab" * 32
    assert {v["classifier"] for v in story.verdicts} >= {"faces", "lexicon"}
    assert [r["stage"] for r in story.reasons if r["action"] == "review"] == ["input"]
    assert audit.prompt_decision(job.id) == "review"
    listed = [
        r.request_id
        for r in audit.list_requests(ListFilter(action="review", stage="input"), limit=None)
    ]
    assert "vidr-input" in listed
    assert "vidr-input" not in [
        r.request_id
        for r in audit.list_requests(ListFilter(action="review", stage="prompt"), limit=None)
    ]
    assert audit.verify().ok
