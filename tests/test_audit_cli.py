"""``reelguard audit ...`` through click's CliRunner against a real SQLite file, including the
release of a withheld video through the real job store."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from test_audit_support import fill, frame_audit, moderation
from test_videos_support import new_job

from audit.log import AuditLog
from gateway.cli import main
from gateway.commands.audit import audit as audit_group
from gateway.commands.common import parse_duration, parse_time


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "reelguard.db"
    log = AuditLog(path)
    fill(log)
    log.close()
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["audit", *map(str, args)], catch_exceptions=False)


def test_every_audit_command_has_complete_help() -> None:
    """Like sqlite-utils: each command documented, each option explained, -h works."""
    assert audit_group.help
    for name, command in audit_group.commands.items():
        assert command.help and len(command.help) > 30, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"audit {name} {param.opts[0]} has no help text"
        result = run(name, "-h")
        assert result.exit_code == 0, name
        assert "Usage: " in result.output and "--help" in result.output
        if any(p.name == "db" for p in command.params):
            assert "--db" in result.output


def test_list_json_and_filters(db: Path) -> None:
    result = run("list", "--db", db, "--json", "--action", "block")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["request_id"] for r in rows} == {"req-block", "req-vid-bad"}
    assert {"action", "frame_action", "release", "review", "categories"} <= set(rows[0])
    rows = json.loads(
        run("list", "--db", db, "--json", "--category", "hate", "--since", "1d").output
    )
    assert [r["request_id"] for r in rows] == ["req-review"]
    rows = json.loads(run("list", "--db", db, "--json", "--needs-review").output)
    assert {r["request_id"] for r in rows} == {"req-review", "req-vid-bad"}


def test_list_table(db: Path) -> None:
    result = run("list", "--db", db, "--tenant", "acme")
    assert result.exit_code == 0
    assert "req-vid-bad" in result.output and "withheld" in result.output
    assert "req-block" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--since", "yesterdayish"], "'yesterdayish' is not a time"),
        (["list", "--action", "maybe"], "'maybe' is not one of"),
        (["list", "--stage", "frame"], "--stage only narrows --action"),
        (["list", "--since", "today", "--until", "2000-01-01"], "--since must be earlier"),
        (["purge", "--older-than", "90days", "--actor", "x"], "'90days' is not a duration"),
        (["show", "nope"], "no request or job with id 'nope'"),
        (["review", "nope", "--approve", "--note", "n", "--reviewer", "r"], "no request or job"),
        (["review", "req-review", "--note", "n", "--reviewer", "r"], "give --approve or --reject"),
        (
            ["redact", "--mode", "hash", "--actor", "x"],
            "exactly one of --tenant NAME or --all-tenants",
        ),
    ],
)
def test_clear_errors(db: Path, args: list[str], message: str) -> None:
    result = run(*args, "--db", db)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_database(tmp_path: Path) -> None:
    result = run("list", "--db", tmp_path / "nope.db")
    assert result.exit_code == 1
    assert "no database at" in result.output and "REELGUARD_DB" in result.output


def test_show_tells_the_whole_story(db: Path) -> None:
    result = run("show", "video_bad", "--db", db)
    assert result.exit_code == 0, result.output
    for expected in (
        "req-vid-bad",
        "a knight slays the dragon",
        "frame timeline",
        "0.930 !",
        "1.000",  # a timestamp
        "withheld",
        "pv-1",
    ):
        assert expected in result.output, expected
    story = json.loads(run("show", "req-block", "--db", db, "--json").output)
    assert story["request"]["original"] == "a knight slays the dragon"
    assert story["verdicts"][0]["evidence"][0]["text"] == "knight"
    assert story["decisions"][0]["policy_version"] == "pv-1"


def test_queue_and_review_of_a_prompt(db: Path) -> None:
    items = json.loads(run("queue", "--db", db, "--json").output)
    assert [i["ref"] for i in items] == ["req-review", "video_bad"]
    result = run(
        "review", "req-review", "--reject", "--note", "slur", "--reviewer", "alice", "--db", db
    )
    assert result.exit_code == 0 and "Recorded reject of req-review by alice" in result.output
    items = json.loads(run("queue", "--db", db, "--json").output)
    assert [i["ref"] for i in items] == ["video_bad"]
    assert "1 item(s)" in run("queue", "--db", db).output


def _withheld_job(db: Path, data_dir: Path) -> str:
    """A real job in the job store, failed by the frame audit, its MP4 in quarantine."""
    from gateway.jobs import JobStore, videos_dir

    store = JobStore(db)
    job, _ = store.create(
        new_job(
            model="reelguard-tiny",
            prompt="a knight slays the dragon",
            prompt_moderation={"action": "allow"},
            policy_version="pv-1",
        ),
        queue_max=10,
    )
    claimed = store.claim("worker-1", lease_s=60, max_attempts=2)
    assert claimed is not None and claimed.id == job.id
    (videos_dir(data_dir, "quarantine") / job.file_name).write_bytes(b"mp4")
    log = AuditLog(db)
    log.record_moderation(moderation("req-job", endpoint="videos", job_id=job.id))
    log.record_frame_audit(frame_audit(job.id))
    quarantined = str(videos_dir(data_dir, "quarantine") / job.file_name)
    log.record_release(job.id, "acme", "withheld", quarantined, "frame audit", "worker-1")
    log.close()
    assert store.finish(
        job.id, "worker-1", status="failed", error_code="output_moderation", release="withheld"
    )
    return job.id


def test_approving_a_withheld_video_releases_it_through_the_job_system(
    db: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "videos"
    job_id = _withheld_job(db, data_dir)
    assert job_id in [i["ref"] for i in json.loads(run("queue", "--db", db, "--json").output)]
    result = run(
        "review", job_id, "--approve", "--note", "art, not nudity", "--reviewer", "bob",
        "--data-dir", data_dir, "--db", db,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Video {job_id} released" in result.output
    assert (data_dir / "released" / f"{job_id}.mp4").exists()
    assert not (data_dir / "quarantine" / f"{job_id}.mp4").exists()
    story = json.loads(run("show", job_id, "--db", db, "--json").output)
    assert [r["action"] for r in story["releases"]] == ["withheld", "released"]
    assert story["releases"][1]["actor"] == "bob"
    assert [(r["reviewer"], r["verdict"]) for r in story["reviews"]] == [("bob", "approve")]
    assert job_id not in [i["ref"] for i in json.loads(run("queue", "--db", db, "--json").output)]
    status = sqlite3.connect(db).execute(
        "SELECT status, release FROM video_jobs WHERE id = ?", (job_id,)
    )
    assert status.fetchone() == ("completed", "released")
    assert run("verify", "--db", db).exit_code == 0


def test_approving_a_video_the_job_store_does_not_know_fails_cleanly(
    db: Path, tmp_path: Path
) -> None:
    result = run(
        "review", "video_bad", "--approve", "--note", "ok", "--reviewer", "bob",
        "--data-dir", tmp_path / "videos", "--db", db,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "video_bad" in result.output and "Traceback" not in result.output
    assert json.loads(run("show", "video_bad", "--db", db, "--json").output)["reviews"] == []


def test_rejecting_a_withheld_video_keeps_it_withheld(db: Path) -> None:
    result = run(
        "review", "video_bad", "--reject", "--note", "nudity", "--reviewer", "bob", "--db", db
    )
    assert result.exit_code == 0
    story = json.loads(run("show", "video_bad", "--db", db, "--json").output)
    assert [r["action"] for r in story["releases"]] == ["withheld"]


def test_a_review_without_a_note_or_with_an_essay_is_refused(db: Path) -> None:
    """The CLI takes the review console's rules (one implementation, gateway.review): a blank
    note, or one over MAX_NOTE_CHARS, is refused and nothing is recorded."""
    from gateway.review import MAX_NOTE_CHARS

    for note, says in (("   ", "needs a note"), ("x" * (MAX_NOTE_CHARS + 1), "keep it to")):
        result = run(
            "review", "req-review", "--reject", "--note", note, "--reviewer", "alice", "--db", db
        )
        assert result.exit_code == 1 and says in result.output, result.output
    story = json.loads(run("show", "req-review", "--db", db, "--json").output)
    assert story["reviews"] == []


def test_export_jsonl_and_csv(db: Path, tmp_path: Path) -> None:
    result = run("export", "--db", db, "--format", "jsonl", "--tenant", "acme")
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 4 and all(r["tenant"] == "acme" for r in lines)
    assert lines[0]["original"] == "a knight slays the dragon"
    out = tmp_path / "audit.csv"
    result = run("export", "--db", db, "--format", "csv", "--output", out, "--action", "block")
    assert result.exit_code == 0 and "Wrote 2 request(s)" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["request_id"] for r in rows} == {"req-block", "req-vid-bad"}
    assert rows[0]["categories"] in {"sexual", "violence"}


def test_stats(db: Path) -> None:
    rows = json.loads(run("stats", "--db", db, "--json").output)
    by_cat = {r["category"]: r for r in rows}
    assert by_cat["violence"]["block"] == 1 and by_cat["violence"]["requests"] == 5
    assert by_cat["violence"]["rate"] == pytest.approx(0.2)
    assert "20.00%" in run("stats", "--db", db).output


def test_verify_ok_then_broken(db: Path) -> None:
    result = run("verify", "--db", db)
    assert result.exit_code == 0 and result.output.startswith("OK: ")
    conn = sqlite3.connect(db)
    seq = conn.execute("SELECT seq FROM verdicts ORDER BY seq LIMIT 1").fetchone()[0]
    conn.execute("UPDATE verdicts SET score = 0 WHERE seq = ?", (seq,))
    conn.commit()
    result = run("verify", "--db", db)
    assert result.exit_code == 1
    assert f"first bad row: verdicts seq {seq}" in result.output
    report = json.loads(run("verify", "--db", db, "--json").output)
    assert report["ok"] is False and report["problems"][0]["seq"] == seq


def test_purge_and_redact_keep_verify_green(db: Path) -> None:
    result = run("redact", "--tenant", "acme", "--mode", "drop", "--actor", "dpo", "--db", db)
    assert result.exit_code == 0 and "Redacted (drop)" in result.output
    assert (
        json.loads(run("show", "req-allow", "--db", db, "--json").output)["request"]["original"]
        is None
    )
    assert "not stored: prompt retention drop" in run("show", "req-allow", "--db", db).output
    assert run("verify", "--db", db).exit_code == 0
    result = run("purge", "--older-than", "0s", "--actor", "ops", "--yes", "--db", db, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["rows"] > 0
    assert run("verify", "--db", db).exit_code == 0
    assert json.loads(run("list", "--db", db, "--json").output) == []


def test_prompt_retention_setting(db: Path) -> None:
    assert json.loads(run("prompt-retention", "--db", db, "--json").output) == {}
    result = run("prompt-retention", "acme", "hash", "--db", db, "--json")
    assert json.loads(result.output) == {"acme": "hash"}
    assert json.loads(run("prompt-retention", "globex", "--db", db, "--json").output) == {
        "globex": "keep"
    }
    log = AuditLog(db)
    log.record_moderation(moderation("req-after", tenant="acme"))
    assert log.story("req-after").request["original"] is None  # type: ignore[index]
    assert log.verify().ok


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400.0), ("12h", 43200.0), ("30m", 1800.0), ("45s", 45.0), ("2w", 1209600.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31", 1769817600.0),
        ("2026-01-31T12:00:00+02:00", 1769853600.0),
        ("7d", 1_000_000_000.0 - 7 * 86400),
        ("now", 1_000_000_000.0),
        ("1700000000", 1700000000.0),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, now=1_000_000_000.0) == expected


def _cut_tail_and_head(db: Path, keep: int) -> None:
    """The attack a database alone cannot show: drop the last rows and move the head back."""
    from audit.schema import TABLES

    conn = sqlite3.connect(db)
    for table in TABLES:
        conn.execute(f"DELETE FROM [{table}] WHERE seq > ?", (keep,))
    head_hash = next(
        row[0]
        for table in TABLES
        for row in conn.execute(f"SELECT hash FROM [{table}] WHERE seq = ?", (keep,))
    )
    conn.execute("UPDATE audit_chain SET head_seq = ?, head_hash = ?", (keep, head_hash))
    conn.commit()
    conn.close()


def test_verify_anchor_file_catches_a_cut_tail_with_a_moved_head(db: Path, tmp_path: Path) -> None:
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    result = run("verify", "--db", db, "--anchor", anchors)
    assert result.exit_code == 0, result.output
    assert "0 anchor(s)" in result.output
    first = json.loads(anchors.read_text().splitlines()[0])
    log = AuditLog(db)
    assert (first["seq"], first["hash"]) == log.head()
    log.record_moderation(moderation("req-later"))
    log.close()
    result = run("verify", "--db", db, "--anchor", anchors)
    assert result.exit_code == 0 and "1 anchor(s)" in result.output, result.output
    assert len(anchors.read_text().splitlines()) == 2
    # A clean run with nothing new appends nothing.
    run("verify", "--db", db, "--anchor", anchors)
    assert len(anchors.read_text().splitlines()) == 2

    _cut_tail_and_head(db, first["seq"] - 1)
    assert run("verify", "--db", db).exit_code == 0  # the database alone looks consistent
    result = run("verify", "--db", db, "--anchor", anchors)
    assert result.exit_code == 1
    assert "rows at the end were deleted" in result.output
    assert len(anchors.read_text().splitlines()) == 2  # a broken run notes no new head
    report = json.loads(run("verify", "--db", db, "--anchor", anchors, "--json").output)
    assert report["ok"] is False and {p["kind"] for p in report["problems"]} == {"anchor"}


def test_verify_anchor_catches_a_rewritten_row(db: Path, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    run("verify", "--db", db, "--anchor", anchors)
    seq = json.loads(anchors.read_text())["seq"]
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_chain SET head_hash = ?", ("0" * 64,))
    for table in ("requests", "verdicts", "decisions", "releases", "reviews", "frame_scores"):
        conn.execute(f"UPDATE [{table}] SET hash = ? WHERE seq = ?", ("0" * 64, seq))
    conn.commit()
    conn.close()
    result = run("verify", "--db", db, "--anchor", anchors, "--json")
    problems = json.loads(result.output)["problems"]
    assert any(p["kind"] == "anchor" and p["seq"] == seq for p in problems)


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        ("not json", "not an anchor"),
        ('{"seq": 3}', "not an anchor"),
        ('{"seq": 1, "hash": "ab"}', "64"),
    ],
)
def test_a_bad_anchors_file_names_file_line_and_fix(
    db: Path, tmp_path: Path, line: str, fix: str
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text("\n" + line + "\n")
    result = run("verify", "--db", db, "--anchor", anchors)
    assert result.exit_code == 1
    assert f"{anchors}:2: " in result.output and fix in result.output
    assert "restore the line" in result.output


@pytest.mark.parametrize("command", ["serve", "moderate"])
def test_gateway_commands_refuse_a_database_from_a_newer_release(
    db: Path, tmp_path: Path, command: str
) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_chain SET schema_version = 99")
    conn.commit()
    conn.close()
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"id": 1, "text": "a cat on a sofa"}\n')
    args = {
        "serve": ["serve", "--db", str(db), "--workers", "0", "--port", "1"],
        "moderate": ["moderate", "--db", str(db), "--input", str(rows), "--output", "o.jsonl"],
    }[command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "written by a newer ReelGuard" in result.output and "upgrade ReelGuard" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
