"""``POST /v1/moderations`` over a real uvicorn server on 127.0.0.1.

Prints p50/p99 latency of sequential requests (one keep-alive connection), requests/s with
several client threads, and, as a baseline in the same run, ``GET /healthz`` (HTTP and
framework overhead without the text check or the audit write).

Then load shedding: 32 and 128 concurrent clients (one asyncio loop, one connection each,
single prompts, honouring ``Retry-After``; bare asyncio connections, so the clients cost
little CPU) against a server in its own process, configured as
``reelguard serve`` (admission control at ``REELGUARD_MAX_PENDING_CHECKS``), and the same
server with admission control off. Per run: p50/p99 of the answered checks, answered checks/s,
the share of 503 ``overloaded`` answers and how fast those came.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_http_moderations.py [N] [--load-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import multiprocessing.process
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gateway_prompts import percentile, prompts
from config.settings import Settings
from gateway.app import create_app
from gateway.keys import KeyStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report(name: str, ms: list[float]) -> None:
    print(
        f"{name:<34} p50 {percentile(ms, 50):7.2f} ms   p99 {percentile(ms, 99):7.2f} ms   "
        f"mean {statistics.fmean(ms):7.2f} ms"
    )


def _serve(settings: Settings, port: int) -> None:
    """Server process: the gateway under uvicorn, as ``reelguard serve`` runs it."""
    from gateway.limits import uvicorn_config

    uvicorn.Server(
        uvicorn_config(create_app(settings), settings, port=port, log_level="error")
    ).run()


def _start_server(settings: Settings) -> tuple[multiprocessing.process.BaseProcess, str]:
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(settings, port), daemon=True
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code in (200, 503):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the benchmark server did not start")


class _Connection:
    """A bare keep-alive HTTP/1.1 connection on asyncio streams: the load clients below must
    cost the 2-core machine far less CPU than the server they measure (httpx's async client
    spends more CPU per request than the server does at 128 connections)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, payload: object) -> tuple[int, dict[str, str], bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        body = json.dumps(payload).encode()
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        data = await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, fields, data

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def run_load(
    url: str, headers: dict[str, str], texts: list[str], clients: int, seconds: float
) -> tuple[list[float], list[float], int, int]:
    """``clients`` loops posting one prompt at a time for ``seconds``, each on its own
    keep-alive connection; a 503 waits its Retry-After. Returns (answered ms, refused ms,
    other statuses and connection errors, answers that are blocks because the check missed
    its deadline)."""
    answered: list[float] = []
    refused: list[float] = []
    other = late = 0
    stop = time.perf_counter() + seconds
    host, port = url.removeprefix("http://").split(":")

    async def one_client(k: int) -> None:
        nonlocal other, late
        conn = _Connection(host, int(port), headers)
        i = k
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    status, fields, body = await conn.post(
                        "/v1/moderations", {"input": texts[i % len(texts)]}
                    )
                except (OSError, asyncio.IncompleteReadError):
                    other += 1
                    continue
                finally:
                    i += clients
                ms = (time.perf_counter() - t0) * 1000
                if status == 200:
                    answered.append(ms)
                    late += b"missed its deadline" in body
                elif status == 503:
                    refused.append(ms)
                    await asyncio.sleep(float(fields.get("retry-after", "1")))
                else:
                    other += 1
        finally:
            conn.close()

    await asyncio.gather(*(one_client(k) for k in range(clients)))
    return answered, refused, other, late


def load_shedding(settings: Settings, key: str, texts: list[str], seconds: float) -> None:
    """The admission-control runs (see the module docstring)."""
    headers = {"Authorization": f"Bearer {key}"}
    print(
        f"\nconcurrent clients, {seconds:g} s each, single prompts, 503s honour Retry-After "
        "(server in its own process):"
    )
    for label, limit in (
        (f"admission at {settings.max_pending_checks}", settings.max_pending_checks),
        ("admission off", 1_000_000),
    ):
        proc, url = _start_server(settings.model_copy(update={"max_pending_checks": limit}))
        try:
            asyncio.run(run_load(url, headers, texts[:64], 8, 2.0))  # warm up
            for clients in (32, 128):
                t0 = time.perf_counter()
                ok, shed, other, late = asyncio.run(run_load(url, headers, texts, clients, seconds))
                took = time.perf_counter() - t0
                total = len(ok) + len(shed) + other
                line = f"{label:<16} {clients:>3} clients: "
                if ok:
                    line += (
                        f"p50 {percentile(ok, 50):7.1f} ms  p99 {percentile(ok, 99):7.1f} ms  "
                        f"{len(ok) / took:6.1f} checks/s  "
                    )
                line += f"503s {100 * len(shed) / max(1, total):5.1f} %"
                if shed:
                    line += f" (p99 {percentile(shed, 99):.1f} ms)"
                if late:
                    line += f"  blocked by the deadline: {late}"
                if other:
                    line += f"  other statuses or connection errors: {other}"
                print(line)
        finally:
            proc.terminate()
            proc.join(10)


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=1000, help="sequential requests")
    parser.add_argument("--load-s", type=float, default=15.0, help="seconds per load run")
    options = parser.parse_args()
    n, load_s = options.n, options.load_s
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=Path(tmp) / "bench.db")
        store = KeyStore(settings.db)
        key = store.create("default").token
        store.close()
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        texts = prompts(n)
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                for t in texts[:50]:
                    client.post("/v1/moderations", json={"input": t})
                health = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    client.get("/healthz").raise_for_status()
                    health.append((time.perf_counter() - t0) * 1000)
                seq = []
                for t in texts:
                    t0 = time.perf_counter()
                    client.post("/v1/moderations", json={"input": t}).raise_for_status()
                    seq.append((time.perf_counter() - t0) * 1000)
                batch = []
                for start in range(0, min(n, 3200), 32):
                    t0 = time.perf_counter()
                    client.post(
                        "/v1/moderations", json={"input": texts[start : start + 32]}
                    ).raise_for_status()
                    batch.append((time.perf_counter() - t0) * 1000)
            print(f"{n} requests, one connection, sequential:")
            report("GET /healthz (baseline)", health)
            report("POST /v1/moderations (1 input)", seq)
            report("POST /v1/moderations (32 inputs)", batch)
            ratio = statistics.median(seq) / statistics.median(health)
            print(f"moderation / healthz (p50): {ratio:.1f}x")

            workers = 8
            local = threading.local()

            def one(text: str) -> None:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=url, headers=headers, timeout=30)
                local.client.post("/v1/moderations", json={"input": text}).raise_for_status()

            t0 = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, texts))
            took = time.perf_counter() - t0
            print(f"{workers} client threads: {n / took:,.0f} requests/s (single server process)")
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        load_shedding(settings, key, texts, load_s)


if __name__ == "__main__":
    main()
