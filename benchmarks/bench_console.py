"""The review console and /metrics with a large backlog: how long the pages and a scrape take.

Builds a log with N items awaiting review (half withheld videos, half prompts sent to review,
over 20 tenants and 30 days) through the real write path, then times, in process (Litestar
TestClient, one reviewer signed in): the queue page (first page and a filtered one), an item
page, the dashboard, and a /metrics scrape. Run::

    python benchmarks/bench_console.py                # 5,000 items
    python benchmarks/bench_console.py --items 20000
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from litestar.testing import TestClient

from audit.log import AuditLog
from audit.records import ModerationRecord
from classifiers.base import CATEGORIES, Evidence, Verdict
from config.settings import Settings
from gateway.app import create_app
from gateway.console.accounts import ReviewerStore
from policies.decision import Action, Decision, Reason

TENANTS = [f"tenant-{i}" for i in range(20)]
TOKEN = "bench-metrics-token-0123456789"


def build(db: Path, items: int) -> str:
    """``items`` open review items; returns one item's id."""
    log = AuditLog(db)
    now = time.time()
    first = ""
    with log.batch():
        for i in range(items):
            tenant = TENANTS[i % len(TENANTS)]
            category = CATEGORIES[i % len(CATEGORIES)]
            created = now - (i / items) * 30 * 86400
            prompt = f"prompt number {i} with a knife fight in a dark alley"
            evidence = (Evidence(text=prompt[16:21], start=16, end=21, detail="term"),)
            reason = Reason(
                category,
                Action.REVIEW,
                "prompt",
                "classifier",
                "lexicon",
                0.6,
                0.5,
                evidence,
                "over",
            )
            job = f"video_bench{i:08d}" if i % 2 else None
            log.record_moderation(
                ModerationRecord(
                    request_id=f"vidr-bench{i:08d}",
                    tenant=tenant,
                    endpoint="videos" if job else "moderations",
                    created_at=created,
                    original=prompt,
                    normalized=prompt,
                    verdicts=[Verdict("lexicon", category, 0.6, "lexicon", "1", evidence, 0.5)],
                    decision=Decision(Action.REVIEW, (reason,), "pv-1", {category: 0.6}),
                    model_versions={"lexicon": "lexicon@1"},
                    latency_ms=1.0,
                    job_id=job,
                )
            )
            if job:
                log.record_release(job, tenant, "withheld", None, "frames flagged", "worker:b")
            first = first or f"vidr-bench{i:08d}"
    log.close()
    return first


def timed(client: TestClient, path: str, runs: int, **kw: object) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        t = time.perf_counter()
        answer = client.get(path, **kw)  # type: ignore[arg-type]
        took.append((time.perf_counter() - t) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(took), max(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(db=root / "bench.db", data_dir=root / "videos", metrics_token=TOKEN)
        t = time.perf_counter()
        item = build(settings.db, args.items)
        print(f"built {args.items} open items in {time.perf_counter() - t:.1f} s")
        password = ReviewerStore(settings.db).create("bench", "admin").password
        with TestClient(create_app(settings)) as client:
            page = client.get("/review/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            client.post(
                "/review/login",
                data={"csrf_token": token.group(1), "name": "bench", "password": password},
            )
            rows = [
                ("queue, first page", "/review", {}),
                ("queue, tenant+stage filter", "/review?tenant=tenant-3&stage=prompt", {}),
                ("queue, page 50", "/review?page=50", {}),
                ("item", f"/review/items/{item}", {}),
                ("dashboard, 30 days", "/review/dashboard?days=30", {}),
                ("/metrics scrape", "/metrics", {"headers": {"Authorization": f"Bearer {TOKEN}"}}),
            ]
            print(f"{'what':<28} {'median ms':>10} {'max ms':>8}   ({args.runs} runs)")
            for name, path, kw in rows:
                median, worst = timed(client, path, args.runs, **kw)
                print(f"{name:<28} {median:>10.1f} {worst:>8.1f}")


if __name__ == "__main__":
    main()
