"""``POST /v1/moderations`` over a real uvicorn server on 127.0.0.1.

Prints p50/p99 latency of sequential requests (one keep-alive connection), requests/s with
several client threads, and, as a baseline in the same run, ``GET /healthz`` (HTTP and
framework overhead without the text check or the audit write).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_http_moderations.py [N]
"""

from __future__ import annotations

import logging
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
from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report(name: str, ms: list[float]) -> None:
    print(
        f"{name:<34} p50 {percentile(ms, 50):7.2f} ms   p99 {percentile(ms, 99):7.2f} ms   "
        f"mean {statistics.fmean(ms):7.2f} ms"
    )


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
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


if __name__ == "__main__":
    main()
