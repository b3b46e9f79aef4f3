"""The hash chain against a real SQLite file: tampering done directly in SQLite is caught and
named; purge, redaction and prompt retention keep the chain verifiable; two processes appending
at once keep one valid chain."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest
from test_audit_support import fill, frame_audit, moderation, raw

from audit import chain
from audit.errors import InvalidRecord, SchemaTooNew
from audit.log import AuditLog
from audit.schema import TABLES
from policies.decision import Action


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.db")
    fill(log)
    return log


def _sql(log: AuditLog, sql: str, *args: object) -> None:
    """Tamper the way an operator with a sqlite3 shell would: a separate connection."""
    conn = sqlite3.connect(log.path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def _seq_of(log: AuditLog, table: str, where: str, *args: object) -> int:
    row = raw(log).execute(f"SELECT seq FROM {table} WHERE {where} ORDER BY seq", args).fetchone()
    return int(row[0])


def _request(log: AuditLog, ref: str) -> dict[str, object]:
    request = log.story(ref).request
    assert request is not None
    return request


def test_untouched_log_verifies(log: AuditLog) -> None:
    report = log.verify(check_files=True)
    assert report.ok, report.problems
    assert report.rows == log.count() == report.head_seq
    assert report.head_hash == log.head()[1]


def test_row_hash_is_reproducible_from_the_documented_format(log: AuditLog) -> None:
    """An outside verifier can recompute a row hash from the module docstring alone."""
    spec = TABLES["releases"]
    row = (
        raw(log)
        .execute(f"SELECT {', '.join(spec.chained)}, hash FROM releases ORDER BY seq LIMIT 1")
        .fetchone()
    )
    seq = row[0]
    prev = next(
        r[0]
        for t in TABLES
        for r in raw(log).execute(f"SELECT hash FROM [{t}] WHERE seq = ?", (seq - 1,))
    )
    assert chain.row_hash(prev, "releases", list(row[:-1])) == row[-1]


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("verdicts", "score", 0.01),  # hide a high score
        ("requests", "action", "block"),  # rewrite a decision
        ("requests", "policy_version", "pv-lenient"),
        ("frame_scores", "timestamp_s", 9.5),
        ("releases", "actor", "someone-else"),
        ("decisions", "model_versions", '{"lexicon":"0"}'),
    ],
)
def test_an_update_names_the_edited_row(
    log: AuditLog, table: str, column: str, value: object
) -> None:
    seq = _seq_of(log, table, "1 = 1")
    _sql(log, f"UPDATE {table} SET {column} = ? WHERE seq = ?", value, seq)
    report = log.verify()
    assert not report.ok
    first = report.problems[0]
    assert (first.seq, first.table, first.kind) == (seq, table, "hash")
    assert f"{table} seq {seq}" in first.message


def test_prompt_text_edited_in_place_is_caught(log: AuditLog) -> None:
    seq = _seq_of(log, "requests", "request_id = 'req-block'")
    _sql(log, "UPDATE requests SET original = 'a harmless prompt' WHERE seq = ?", seq)
    first = log.verify().problems[0]
    assert (first.seq, first.kind) == (seq, "text")
    assert "original was edited" in first.message


def test_text_removed_without_a_redaction_record_is_caught(log: AuditLog) -> None:
    seq = _seq_of(log, "requests", "request_id = 'req-block'")
    _sql(
        log,
        "UPDATE requests SET original = NULL, normalized = NULL, redacted = 'drop' WHERE seq = ?",
        seq,
    )
    first = log.verify().problems[0]
    assert (first.seq, first.kind) == (seq, "text")
    assert "no chained redaction record" in first.message
    _sql(log, "UPDATE requests SET redacted = NULL WHERE seq = ?", seq)
    first = log.verify().problems[0]
    assert (first.seq, first.kind) == (seq, "text")
    assert "original removed, but no chained redaction record" in first.message


def test_a_delete_names_the_missing_row(log: AuditLog) -> None:
    seq = _seq_of(log, "reasons", "request_id = 'req-block'")
    _sql(log, "DELETE FROM reasons WHERE seq = ?", seq)
    first = log.verify().problems[0]
    assert (first.seq, first.kind) == (seq, "deleted")
    assert f"seq {seq} missing" in first.message


def test_deleting_a_whole_request_is_caught(log: AuditLog) -> None:
    seqs = [
        r[0]
        for t in ("requests", "verdicts", "decisions", "reasons")
        for r in raw(log).execute(f"SELECT seq FROM {t} WHERE request_id = 'req-review'")
    ]
    for t in ("requests", "verdicts", "decisions", "reasons"):
        _sql(log, f"DELETE FROM {t} WHERE request_id = 'req-review'")
    first = log.verify().problems[0]
    assert (first.seq, first.kind) == (min(seqs), "deleted")


def test_reordering_rows_names_the_first_moved_row(log: AuditLog) -> None:
    """Swap the contents of two verdict rows (their seqs stay): both no longer match."""
    a, b = [r[0] for r in raw(log).execute("SELECT seq FROM verdicts ORDER BY seq LIMIT 2")]
    cols = [c for c, _ in TABLES["verdicts"].columns if c != "seq"]
    conn = sqlite3.connect(log.path)
    ra = conn.execute(f"SELECT {', '.join(cols)} FROM verdicts WHERE seq = ?", (a,)).fetchone()
    rb = conn.execute(f"SELECT {', '.join(cols)} FROM verdicts WHERE seq = ?", (b,)).fetchone()
    sets = ", ".join(f"{c} = ?" for c in cols)
    conn.execute(f"UPDATE verdicts SET {sets} WHERE seq = ?", (*rb, a))
    conn.execute(f"UPDATE verdicts SET {sets} WHERE seq = ?", (*ra, b))
    conn.commit()
    conn.close()
    problems = log.verify().problems
    assert (problems[0].seq, problems[0].table, problems[0].kind) == (a, "verdicts", "hash")
    assert b in {p.seq for p in problems}


def test_renumbering_rows_is_caught(log: AuditLog) -> None:
    """Move the first request behind the last row by giving it a new seq."""
    seq = _seq_of(log, "requests", "request_id = 'req-allow'")
    head, _ = log.head()
    _sql(log, "UPDATE requests SET seq = ? WHERE seq = ?", head + 1, seq)
    first = log.verify().problems[0]
    assert (first.seq, first.kind) == (seq, "deleted")


def test_cutting_off_the_tail_is_caught(log: AuditLog) -> None:
    head, _ = log.head()
    for t in TABLES:
        _sql(log, f"DELETE FROM [{t}] WHERE seq = ?", head)
    problems = log.verify().problems
    assert problems[-1].kind == "truncated"
    assert f"records seq {head}" in problems[-1].message


def test_deleting_the_start_outside_purge_is_caught(log: AuditLog) -> None:
    _sql(log, "DELETE FROM requests WHERE seq = 1")
    first = log.verify().problems[0]
    assert (first.seq, first.kind) == (1, "deleted")


def test_evidence_file_changed_after_recording(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    thumb = tmp_path / "t.jpg"
    thumb.write_bytes(b"jpeg bytes")
    log.record_moderation(moderation("r", endpoint="videos", job_id="video_x"))
    log.record_frame_audit(frame_audit("video_x", thumbnails={16: thumb}))
    assert log.verify(check_files=True).ok
    thumb.write_bytes(b"other bytes")
    first = log.verify(check_files=True).problems[0]
    assert (first.table, first.kind) == ("evidence", "file")
    assert log.verify().ok  # the rows themselves are untouched


def test_purge_keeps_the_chain_verifiable(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    fill(log)
    old_head, old_hash = log.head()
    time.sleep(0.02)
    cutoff = time.time()
    time.sleep(0.02)
    log.record_moderation(moderation("req-new", action=Action.BLOCK))
    report = log.purge(time.time() - cutoff, actor="retention-job")
    assert (report.through_seq, report.rows) == (old_head, old_head)
    assert raw(log).execute("SELECT count(*) FROM requests").fetchone()[0] == 1
    result = log.verify()
    assert result.ok, result.problems
    assert (result.base_seq, result.rows) == (old_head, log.count())
    purge_row = raw(log).execute("SELECT through_seq, through_hash, actor FROM purges").fetchone()
    assert purge_row == (old_head, old_hash, "retention-job")
    # Nothing old enough: a second purge removes nothing and the chain still verifies.
    assert log.purge(3600, actor="retention-job").rows == 0
    assert log.verify().ok


def test_purge_twice_and_tampering_with_the_purge_anchor(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    fill(log)
    log.purge(0, actor="ops", now=time.time() + 1)
    log.record_moderation(moderation("req-2"))
    log.purge(0, actor="ops", now=time.time() + 1)
    assert log.verify().ok
    _sql(log, "UPDATE audit_chain SET base_seq = base_seq + 1")
    assert next(p.kind for p in log.verify().problems) == "base"


def test_redaction_keeps_the_chain_verifiable(log: AuditLog) -> None:
    report = log.redact("acme", "hash", actor="dpo")
    assert report.rows > 0
    result = log.verify()
    assert result.ok, result.problems
    story = log.story("req-review")
    assert story.request is not None
    assert story.request["original"] is None and story.request["salt"] is not None
    assert story.reasons[0]["evidence"][0]["text"] is None
    # Another tenant's prompts are untouched.
    assert _request(log, "req-block")["original"] == "a knight slays the dragon"
    log.redact(None, "drop", actor="dpo")
    assert log.verify().ok
    assert _request(log, "req-block")["salt"] is None


def test_redaction_of_old_rows_only(log: AuditLog) -> None:
    log.record_moderation(moderation("req-fresh"))
    # Everything in the fixture is "old" only if we pretend it is later than it is.
    log.redact("acme", "drop", actor="dpo", older_than_s=3600, now=time.time() + 7200)
    assert log.verify().ok
    assert _request(log, "req-allow")["original"] is None


def test_prompt_retention_applies_at_write_time(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    log.set_prompt_retention("private", "drop")
    log.set_prompt_retention("hashed", "hash")
    for tenant in ("private", "hashed", "open"):
        log.record_moderation(moderation(f"r-{tenant}", tenant=tenant, action=Action.BLOCK))
    assert log.verify().ok
    rows = {t: log.story(f"r-{t}").request or {} for t in ("private", "hashed", "open")}
    assert rows["private"]["original"] is None and rows["private"]["salt"] is None
    assert rows["hashed"]["original"] is None and rows["hashed"]["salt"] is not None
    assert rows["open"]["original"] == "a knight slays the dragon"
    # "hash" keeps a digest a candidate text can be checked against.
    hashed = rows["hashed"]
    digest = chain.text_digest(hashed["salt"], "a knight slays the dragon")
    assert digest == hashed["original_digest"]
    assert log.prompt_retentions() == {"hashed": "hash", "private": "drop"}


def _writer(path: str, prefix: str, n: int) -> None:
    log = AuditLog(Path(path))
    for i in range(n):
        log.record_moderation(
            moderation(f"{prefix}-{i}", action=Action.BLOCK if i % 3 else Action.ALLOW)
        )
        if i % 5 == 0:
            log.record_release(f"job-{prefix}-{i}", "acme", "withheld", None, "test", prefix)
    log.close()


def test_two_processes_appending_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditLog(path).close()  # create the schema once
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), p, 40)) for p in ("web", "worker")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    log = AuditLog(path)
    report = log.verify()
    assert report.ok, report.problems
    assert raw(log).execute("SELECT count(*) FROM requests").fetchone()[0] == 80
    # Both processes' rows interleave in one sequence.
    writers = [r[0] for r in raw(log).execute("SELECT actor FROM releases ORDER BY seq")]
    assert set(writers) == {"web", "worker"}


def test_a_batch_is_one_transaction(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    with pytest.raises(RuntimeError), log.batch():
        log.record_moderation(moderation("a"))
        raise RuntimeError("crash mid-batch")
    assert log.count() == 0 and log.verify().ok
    with log.batch():
        log.record_moderation(moderation("a"))
        log.record_moderation(moderation("b"))
    assert log.verify().ok and log.head()[0] == log.count()


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_verify_finds_the_same_problems(log: AuditLog, workers: int) -> None:
    """Range boundaries fall on tampered rows too: the report equals the sequential one."""
    assert log.verify(workers=workers).ok
    head, _ = log.head()
    verdict = _seq_of(log, "verdicts", "1 = 1")
    _sql(log, "UPDATE verdicts SET score = 0.5 WHERE seq = ?", verdict)
    middle = head // 2  # likely a range boundary
    for t in TABLES:
        _sql(log, f"DELETE FROM [{t}] WHERE seq IN (?, ?)", middle, middle + 1)
    sequential = log.verify(workers=1)
    parallel = log.verify(workers=workers)
    assert parallel.problems[0] == sequential.problems[0]
    assert parallel.problems[0].seq == verdict
    assert {(p.seq, p.kind) for p in parallel.problems} >= {(middle, "deleted")}
    assert parallel.rows == sequential.rows == head - 2


def test_rows_inserted_beyond_the_head_are_caught(log: AuditLog) -> None:
    head, _ = log.head()
    _sql(
        log,
        "INSERT INTO releases (seq, recorded_at, job_id, tenant, action, actor, hash) "
        "VALUES (?, 0, 'video_bad', 'acme', 'released', 'mallory', ?)",
        head + 1,
        "0" * 64,
    )
    kinds = {p.kind for p in log.verify().problems}
    assert "inserted" in kinds


def _writer_until_killed(path: str, done_file: str) -> None:
    log = AuditLog(Path(path))
    with open(done_file, "a") as done:
        for i in range(100_000):
            log.record_moderation(moderation(f"crash-{i}", action=Action.BLOCK))
            done.write(f"crash-{i}\n")  # only after the commit returned
            done.flush()


def test_kill_9_mid_write_loses_no_committed_row(tmp_path: Path) -> None:
    import os
    import signal

    path, done_file = tmp_path / "audit.db", tmp_path / "done.txt"
    AuditLog(path).close()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_writer_until_killed, args=(str(path), str(done_file)))
    proc.start()
    deadline = time.time() + 60
    while time.time() < deadline and (
        not done_file.exists() or len(done_file.read_text().splitlines()) < 20
    ):
        time.sleep(0.05)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    committed = set(done_file.read_text().split())
    assert len(committed) >= 20
    log = AuditLog(path)
    report = log.verify()
    assert report.ok, report.problems
    stored = {r.request_id for r in log.list_requests(limit=None)}
    assert committed <= stored  # at most the one in flight is extra
    assert len(stored - committed) <= 1


def test_a_refused_record_inside_a_batch_leaves_no_rows(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    with log.batch():
        log.record_moderation(moderation("a"))
        with pytest.raises(InvalidRecord):
            log.record_moderation(moderation("a"))  # duplicate id, refused
        log.record_moderation(moderation("b"))
    assert log.verify().ok
    assert {r.request_id for r in log.list_requests()} == {"a", "b"}


def test_retention_changes_are_chained_with_who_and_the_previous_value(log: AuditLog) -> None:
    seq = log.set_prompt_retention("acme", "drop", actor="dpo")
    log.set_prompt_retention("acme", "hash", actor="legal")
    rows = (
        raw(log)
        .execute("SELECT seq, tenant, value, previous, actor FROM settings ORDER BY seq")
        .fetchall()
    )
    assert rows == [
        (seq, "acme", "drop", "keep", "dpo"),
        (seq + 1, "acme", "hash", "drop", "legal"),
    ]
    assert log.verify().ok


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("UPDATE audit_tenants SET prompt_retention = 'keep' WHERE tenant = 'acme'", "loosened"),
        ("DELETE FROM audit_tenants WHERE tenant = 'acme'", "deleted: falls back to keep"),
        ("INSERT INTO audit_tenants VALUES ('globex', 'hash', 0)", "set without a record"),
    ],
)
def test_a_retention_setting_edited_in_sqlite_fails_verify(
    log: AuditLog, sql: str, why: str
) -> None:
    log.set_prompt_retention("acme", "drop", actor="dpo")
    _sql(log, sql)
    problems = log.verify().problems
    assert [p.kind for p in problems] == ["setting"], why
    assert "outside `reelguard audit prompt-retention`" in problems[0].message


def test_purge_carries_current_settings_into_the_chain(log: AuditLog) -> None:
    log.set_prompt_retention("acme", "drop", actor="dpo")
    report = log.purge(0, actor="ops", now=time.time() + 10)
    assert report.rows > 0
    assert log.verify().ok
    carried = raw(log).execute("SELECT tenant, value, actor FROM settings").fetchall()
    assert carried == [("acme", "drop", "ops")]
    _sql(log, "UPDATE audit_tenants SET prompt_retention = 'keep'")
    assert [p.kind for p in log.verify().problems] == ["setting"]


def test_a_version_1_database_is_migrated_and_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    log = AuditLog(path)
    fill(log)
    log.close()
    # What a version-1 database looked like: a retention setting with no chained record.
    _sql(log, "DELETE FROM settings")
    _sql(log, "INSERT INTO audit_tenants VALUES ('acme', 'drop', 0)")
    _sql(log, "UPDATE audit_chain SET schema_version = 1")
    reopened = AuditLog(path)
    assert raw(reopened).execute("SELECT schema_version FROM audit_chain").fetchone() == (2,)
    rows = raw(reopened).execute("SELECT tenant, value, actor FROM settings").fetchall()
    assert rows == [("acme", "drop", "schema migration 1->2")]
    assert reopened.verify().ok
    # Opening again migrates nothing twice.
    reopened.close()
    assert raw(AuditLog(path)).execute("SELECT count(*) FROM settings").fetchone() == (1,)


def test_a_database_from_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    log = AuditLog(path)
    fill(log)
    head = log.head()
    log.close()
    _sql(log, "UPDATE audit_chain SET schema_version = 99")
    with pytest.raises(SchemaTooNew, match="version 99 was written by a newer ReelGuard"):
        AuditLog(path).open()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT head_seq, head_hash FROM audit_chain").fetchone() == head
