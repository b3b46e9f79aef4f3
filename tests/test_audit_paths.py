"""Evidence paths read from the database (issue 10, item 10): ``audit purge`` deletes only files
inside ``<data_dir>/evidence/``, refuses to purge rows that fail verification, and new records
store their paths relative to the data folder (older absolute paths still work when inside it).

Before, purge unlinked whatever path a row held: an edited row deleted a file outside, and a
restored copy of the database deleted the live deployment's thumbnails.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_audit_support import frame_audit, moderation, raw

from audit import chain
from audit.errors import InvalidRecord, UnsafePath
from audit.evidence import resolve_evidence_path, write_thumbnail
from audit.log import AuditLog
from audit.records import FrameAuditRecord
from audit.schema import TABLES
from gateway.cli import main

PIXELS = np.full((32, 32, 3), 90, np.uint8)


def _record(log: AuditLog, data_dir: Path, job_id: str, *, relative: bool = True) -> Path:
    """A flagged frame audit of ``job_id`` with one thumbnail; returns the thumbnail's path."""
    thumb = write_thumbnail(data_dir, job_id, 16, PIXELS)
    log.record_moderation(moderation(f"req-{job_id}", endpoint="videos", job_id=job_id))
    rec = frame_audit(job_id, thumbnails={16: thumb})
    if relative:
        rec = FrameAuditRecord(**{**_fields(rec), "data_dir": data_dir})
    log.record_frame_audit(rec)
    return thumb


def _fields(rec: FrameAuditRecord) -> dict[str, object]:
    return {name: getattr(rec, name) for name in FrameAuditRecord.__slots__}


def _later() -> float:
    return time.time() + 5


def _outside(tmp_path: Path) -> Path:
    victim = tmp_path / "elsewhere" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("not ReelGuard's to delete")
    return victim


def _rechain(log: AuditLog) -> None:
    """What a careful attacker does after editing a row: recompute every hash and the head,
    so ``verify`` passes again (only an anchor kept elsewhere would notice)."""
    conn = raw(log)
    (prev,) = conn.execute("SELECT base_hash FROM audit_chain").fetchone()
    rows = []
    for name, spec in TABLES.items():
        cols = ", ".join(spec.chained)
        rows += [(r[0], name, r) for r in conn.execute(f"SELECT {cols} FROM [{name}]")]
    seq = 0
    for seq, name, values in sorted(rows):
        prev = chain.row_hash(prev, name, list(values))
        conn.execute(f"UPDATE [{name}] SET hash = ? WHERE seq = ?", (prev, seq))
    conn.execute("UPDATE audit_chain SET head_seq = ?, head_hash = ?", (seq, prev))


def test_new_records_store_evidence_paths_relative_to_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "videos"
    log = AuditLog(tmp_path / "rg.db")
    thumb = _record(log, data, "video_a")
    [row] = log.story("video_a").evidence
    assert row["path"] == "evidence/video_a/frame_000016.jpg"
    assert resolve_evidence_path(row["path"], data) == thumb.resolve()
    assert log.verify(check_files=True, data_dir=data).ok
    # The same database next to another data folder: its files are looked up there.
    problems = log.verify(check_files=True, data_dir=tmp_path / "other").problems
    assert [p.kind for p in problems] == ["file"] and "missing" in problems[0].message


def test_purge_deletes_evidence_inside_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "videos"
    log = AuditLog(tmp_path / "rg.db")
    relative = _record(log, data, "video_new")
    legacy = _record(log, data, "video_old", relative=False)  # an absolute path, from before
    report = log.purge(0, actor="ops", now=_later(), data_dir=data)
    assert report.files == 2 and report.kept == ()
    assert not relative.exists() and not legacy.exists()
    assert log.verify().ok


@pytest.mark.parametrize("edit", ["absolute", "dotdot"])
def test_an_edited_row_is_refused_and_nothing_is_purged(tmp_path: Path, edit: str) -> None:
    data = tmp_path / "videos"
    log = AuditLog(tmp_path / "rg.db")
    _record(log, data, "video_a")
    victim = _outside(tmp_path)
    path = str(victim) if edit == "absolute" else "evidence/../../elsewhere/precious.txt"
    raw(log).execute("UPDATE evidence SET path = ?", (path,))
    rows = log.count()
    with pytest.raises(InvalidRecord, match=r"does not verify.*nothing was purged"):
        log.purge(0, actor="ops", now=_later(), data_dir=data)
    assert victim.read_text() == "not ReelGuard's to delete"
    assert log.count() == rows  # the edited row is still there as evidence of the edit
    assert not log.verify().ok


def test_a_rewritten_chain_still_cannot_reach_outside(tmp_path: Path) -> None:
    """Hashes recomputed after the edit: verify passes, but the path is still refused."""
    data = tmp_path / "videos"
    log = AuditLog(tmp_path / "rg.db")
    _record(log, data, "video_a")
    victim = _outside(tmp_path)
    raw(log).execute("UPDATE evidence SET path = ?", ("evidence/../../elsewhere/precious.txt",))
    _rechain(log)
    assert log.verify().ok
    report = log.purge(0, actor="ops", now=_later(), data_dir=data)
    assert report.files == 0 and len(report.kept) == 1
    assert "climbs out of the data folder" in report.kept[0]
    assert victim.exists()


def test_a_restored_copy_does_not_delete_the_live_deployments_files(tmp_path: Path) -> None:
    """Rows from before relative paths name the live folder absolutely; a copy of the database
    purged with its own data folder must leave the live files alone."""
    live = tmp_path / "live" / "videos"
    log = AuditLog(tmp_path / "live" / "rg.db")
    thumb = _record(log, live, "video_a", relative=False)
    log.close()
    restored = tmp_path / "restore"
    restored.mkdir()
    with (
        sqlite3.connect(tmp_path / "live" / "rg.db") as src,
        sqlite3.connect(restored / "rg.db") as dst,
    ):
        src.backup(dst)
    copy = AuditLog(restored / "rg.db")
    assert copy.verify().ok
    report = copy.purge(0, actor="ops", now=_later(), data_dir=restored / "videos")
    assert report.rows > 0 and report.files == 0
    assert thumb.exists() and "outside" in report.kept[0]


def test_a_symlink_out_of_the_evidence_folder_is_not_followed(tmp_path: Path) -> None:
    data = tmp_path / "videos"
    log = AuditLog(tmp_path / "rg.db")
    thumb = _record(log, data, "video_a")
    victim = _outside(tmp_path)
    thumb.unlink()
    thumb.symlink_to(victim)
    with pytest.raises(UnsafePath):
        resolve_evidence_path("evidence/video_a/frame_000016.jpg", data)
    report = log.purge(0, actor="ops", now=_later(), data_dir=data)
    assert report.files == 0 and victim.exists() and thumb.is_symlink()


def test_purge_cli_names_what_it_kept_and_refuses_an_edited_log(tmp_path: Path) -> None:
    data, db = tmp_path / "videos", tmp_path / "rg.db"
    log = AuditLog(db)
    _record(log, data, "video_a", relative=False)
    raw(log).execute("UPDATE evidence SET path = ?", (str(_outside(tmp_path)),))
    log.close()
    args = ["audit", "purge", "--older-than", "0s", "--actor", "ops", "--yes"]
    time.sleep(0.01)
    refused = CliRunner().invoke(main, [*args, "--db", str(db), "--data-dir", str(data)])
    assert refused.exit_code == 1 and "nothing was purged" in refused.output
    rechain = AuditLog(db)
    _rechain(rechain)
    rechain.close()
    done = CliRunner().invoke(main, [*args, "--db", str(db), "--data-dir", str(data)])
    assert done.exit_code == 0, done.output
    assert "Kept " in done.output and "outside" in done.output
    assert (tmp_path / "elsewhere" / "precious.txt").exists()
