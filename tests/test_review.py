"""A reviewer's decision on a withheld video commits with its effect (issue 16).

Before, ``reelguard audit review --approve`` released the video (release record + job row), and
only then recorded the review in a second transaction; a failure in between left a released
video with no review on record. Now the release, the job row and the review are one
transaction, and so are a rejection and its review.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_videos_support import (
    ExplodingClassifier,
    PatternBackend,
    enqueue_job,
    make_settings,
    new_job,
    run_all,
    runner,
)

from audit.log import AuditLog
from config.settings import Settings
from gateway.jobs import JobStore, VideoJob, videos_dir
from gateway.review import apply_review


@pytest.fixture
def withheld(tmp_path: Path) -> tuple[Settings, VideoJob]:
    """A video the frame audit withheld (its classifier failed: fail closed)."""
    settings = make_settings(tmp_path)
    prompt = {"action": "allow", "reasons": [], "policy_version": "test"}
    job = enqueue_job(settings.db, new_job(seconds="1", prompt_moderation=prompt))
    run_all(
        runner(
            settings, backend=PatternBackend(), frame_classifiers=lambda p: [ExplodingClassifier()]
        )
    )
    assert JobStore(settings.db).get(job.id).release == "withheld"
    return settings, job


def _transactions(statements: list[str]) -> list[list[str]]:
    """The write transactions among traced statements, each as its list of statements."""
    out: list[list[str]] = []
    current: list[str] | None = None
    for s in statements:
        if s == "BEGIN IMMEDIATE":
            current = []
        elif s == "COMMIT" and current is not None:
            out.append(current)
            current = None
        elif current is not None:
            current.append(s)
    return out


def _writes_to(transaction: list[str], table: str) -> bool:
    return any(s.startswith((f"INSERT INTO {table}", f"UPDATE {table}")) for s in transaction)


def test_approving_releases_and_records_the_review_in_one_transaction(
    withheld: tuple[Settings, VideoJob],
) -> None:
    settings, job = withheld
    audit = AuditLog(settings.db).open()
    statements: list[str] = []
    audit.database.trace(statements.append)
    outcome = apply_review(audit, settings.data_dir, job.id, "alice", "approve", "a bicycle")
    audit.database.trace(None)
    assert outcome.released and outcome.job_id == job.id
    together = [
        t
        for t in _transactions(statements)
        if _writes_to(t, "releases") or _writes_to(t, "reviews")
    ]
    assert len(together) == 1  # the release, the job row and the review: one commit
    assert _writes_to(together[0], "video_jobs")
    story = audit.story(job.id)
    assert [r["action"] for r in story.releases] == ["withheld", "released"]
    assert [(r["verdict"], r["reviewer"]) for r in story.reviews] == [("approve", "alice")]
    assert JobStore(settings.db).get(job.id).status == "completed"


def test_a_review_that_cannot_be_recorded_releases_nothing(
    withheld: tuple[Settings, VideoJob], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, job = withheld
    audit = AuditLog(settings.db)

    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(audit, "record_review", refuse)
    with pytest.raises(OSError, match="disk full"):
        apply_review(audit, settings.data_dir, job.id, "alice", "approve", "a bicycle")
    after = JobStore(settings.db).get(job.id)
    assert after.status == "failed" and after.release == "withheld"  # never served
    story = AuditLog(settings.db).story(job.id)
    assert [r["action"] for r in story.releases] == ["withheld"]
    assert story.reviews == []
    # The file may have left quarantine, but only a completed job's video is served; a second
    # approval finishes the release.
    done = apply_review(AuditLog(settings.db), settings.data_dir, job.id, "alice", "approve", "ok")
    assert done.released
    assert (videos_dir(settings.data_dir, "released") / after.file_name).is_file()


def test_rejecting_marks_the_job_and_records_the_review_in_one_transaction(
    withheld: tuple[Settings, VideoJob],
) -> None:
    settings, job = withheld
    audit = AuditLog(settings.db).open()
    statements: list[str] = []
    audit.database.trace(statements.append)
    outcome = apply_review(audit, settings.data_dir, job.id, "bob", "reject", "not a bicycle")
    audit.database.trace(None)
    assert not outcome.released
    (together,) = [t for t in _transactions(statements) if _writes_to(t, "reviews")]
    assert _writes_to(together, "video_jobs")
    after = JobStore(settings.db).get(job.id)
    assert after.release == "withheld" and "rejected on review by bob" in (
        after.error_message or ""
    )
