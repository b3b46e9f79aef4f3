"""The later sweep for objects whose delete failed for good: ``reelguard storage sweep``.

Two kinds of object are left behind when the store was down at the moment of deleting (each
was logged then, and none is ever served):

- **purged evidence**: ``evidence/<job>/...`` whose audit rows a purge removed (the purge's
  report listed it under ``kept``);
- **release leftovers**: ``quarantine/<job>.mp4`` / ``.jpg`` of a job that was released (the
  server-side copy landed in ``released/``, the delete of the original did not).

The sweep deletes an object only when the database proves it is one of these: its job is in
``video_jobs`` of this database (so the database and the store belong together) and has ended;
for evidence, no audit row names the key; for a leftover, the job is ``completed`` and
``released`` and ``released/<name>`` holds an object of the same size. Objects younger than
``older_than_s`` are left alone, so nothing a running job is writing is touched.

Besides the command (run it any time; a delete of an object another sweep already deleted is
no failure), idle workers run it: :func:`claim` lets one worker of the deployment (any machine)
sweep every :data:`SWEEP_EVERY_S`, through a row of this database, so workers never sweep the
same store at once nor list the whole bucket every few minutes each.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from audit.errors import UnsafePath
from audit.evidence import resolve_evidence_key
from storage.database import Database, Tx, split_statements
from storage.errors import ObjectMissing, StorageError
from storage.listing import ObjectInfo, list_objects
from storage.objects import ObjectStore

log = logging.getLogger("reelguard.storage")

SWEEP_EVERY_S = 3600.0
"""How often the idle workers of a deployment run the sweep, one of them each time."""
SWEEP_OLDER_THAN_S = 86400.0
"""The idle workers' ``older_than_s`` (the command's default ``--older-than 1d``)."""

_SCHEMA = split_statements("""
CREATE TABLE IF NOT EXISTS sweep_runs (
    name TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    worker TEXT NOT NULL
)
""")


def claim(
    database: Database, worker_id: str, *, every_s: float = SWEEP_EVERY_S, now: float | None = None
) -> bool:
    """Whether ``worker_id`` runs the storage sweep now: True for the first caller of the
    deployment once the last claimed run started ``every_s`` ago (or never ran), recording
    the claim; False for everyone else. One conditional ``UPDATE`` of the row ``storage`` in
    ``sweep_runs`` decides, so of workers asking at once on any number of machines exactly one
    gets True (SQLite: the write lock orders them; PostgreSQL: the row lock, and the second
    ``UPDATE`` re-reads the row the first one changed)."""
    at = time.time() if now is None else now
    database.ensure_schema("sweep_runs", _SCHEMA)

    def body(tx: Tx) -> bool:
        tx.execute(
            database.dialect.insert_or_ignore("sweep_runs", ("name", "started_at", "worker")),
            ("storage", at - every_s, ""),  # a first run is due at once
        )
        changed = tx.execute(
            "UPDATE sweep_runs SET started_at = ?, worker = ? "
            "WHERE name = 'storage' AND started_at <= ?",
            (at, worker_id, at - every_s),
        ).rowcount
        return changed == 1

    return database.write(body)


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What a sweep deleted (with ``dry_run``: would delete), and what it could not."""

    dry_run: bool
    evidence: tuple[str, ...] = ()
    leftovers: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        """The report as JSON (the CLI's ``--json``)."""
        return {
            "dry_run": self.dry_run,
            "evidence": list(self.evidence),
            "leftovers": list(self.leftovers),
            "failed": list(self.failed),
        }


def sweep(
    database: Database,
    files: ObjectStore,
    *,
    older_than_s: float,
    dry_run: bool = False,
    now: float | None = None,
) -> SweepReport:
    """Delete purged evidence and release leftovers older than ``older_than_s`` (see the
    module docstring); a delete that fails is listed and left for the next sweep."""
    cutoff = (time.time() if now is None else now) - older_than_s
    doomed = _purged_evidence(database, files, cutoff)
    leftovers = _release_leftovers(database, files, cutoff)
    failed: list[str] = []
    done: dict[str, list[str]] = {"evidence": [], "leftovers": []}
    for kind, keys in (("evidence", doomed), ("leftovers", leftovers)):
        for key in keys:
            if not dry_run:
                try:
                    if not files.delete(key):
                        continue  # another sweep (or the purge) deleted it meanwhile
                except StorageError as exc:
                    failed.append(f"{key}: {exc}")
                    continue
                log.info("sweep: deleted %s", files.location(key))
            done[kind].append(key)
    return SweepReport(dry_run, tuple(done["evidence"]), tuple(done["leftovers"]), tuple(failed))


def _ended_jobs(database: Database, job_ids: set[str]) -> dict[str, tuple[str, str | None]]:
    """(status, release) of those of ``job_ids`` that have ended."""
    found: dict[str, tuple[str, str | None]] = {}
    with database.transaction() as tx:
        for job_id in sorted(job_ids):
            row = tx.one("SELECT status, release FROM video_jobs WHERE id = ?", (job_id,))
            if row is not None and row[0] in ("completed", "failed"):
                found[job_id] = (str(row[0]), row[1])
    return found


def _purged_evidence(database: Database, files: ObjectStore, cutoff: float) -> list[str]:
    by_job: dict[str, list[ObjectInfo]] = defaultdict(list)
    for info in list_objects(files, "evidence"):
        parts = info.key.split("/")
        if len(parts) == 3 and info.modified < cutoff:
            by_job[parts[1]].append(info)
    ended = _ended_jobs(database, set(by_job))
    doomed: list[str] = []
    with database.transaction() as tx:
        for job_id in sorted(ended):
            named = set()
            for (path,) in tx.all("SELECT path FROM evidence WHERE job_id = ?", (job_id,)):
                try:
                    named.add(resolve_evidence_key(str(path), files))
                except UnsafePath:
                    continue
            doomed += sorted(i.key for i in by_job[job_id] if i.key not in named)
    return doomed


def _release_leftovers(database: Database, files: ObjectStore, cutoff: float) -> list[str]:
    by_job: dict[str, list[ObjectInfo]] = defaultdict(list)
    for info in list_objects(files, "quarantine"):
        name = info.key.split("/", 1)[1]
        stem, dot, ext = name.rpartition(".")
        if dot and ext in ("mp4", "jpg") and "/" not in name and info.modified < cutoff:
            by_job[stem].append(info)
    ended = _ended_jobs(database, set(by_job))
    leftovers: list[str] = []
    for job_id, (status, release) in sorted(ended.items()):
        if status != "completed" or release != "released":
            continue  # withheld or failed: its quarantined files are evidence, never swept
        for info in by_job[job_id]:
            try:
                released = files.size(f"released/{info.key.split('/', 1)[1]}")
            except ObjectMissing:
                continue
            if released == info.size:
                leftovers.append(info.key)
    return sorted(leftovers)
