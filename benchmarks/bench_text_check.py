"""In-process text check latency: normalise -> classifiers -> decision (``TextModerator.check``).

Prints p50/p99 per prompt over a few thousand seeded prompts (target without learned models:
p50 <= 2 ms, p99 <= 10 ms), the share of each stage, and batch throughput with ``check_many``.
Baseline in the same process: normalisation alone.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_text_check.py [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gateway_prompts import percentile, prompts
from classifiers.text.normalize import normalize
from config.settings import PACKAGE_POLICY
from gateway.pipeline import TextModerator
from policies.store import PolicyStore


def timed(fn: object, items: list[str]) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def cpu_timed(fn: object, items: list[str]) -> list[float]:
    """Process CPU time per call: what the check costs, without waits for a busy CPU."""
    out = []
    for item in items:
        t0 = time.process_time()
        fn(item)  # type: ignore[operator]
        out.append((time.process_time() - t0) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    return (
        f"{name:<28} p50 {percentile(ms, 50):7.3f} ms   p99 {percentile(ms, 99):7.3f} ms   "
        f"mean {statistics.fmean(ms):7.3f} ms"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    t0 = time.perf_counter()
    store = PolicyStore(PACKAGE_POLICY)
    moderator = TextModerator(store)
    print(f"start-up (policy + classifiers): {time.perf_counter() - t0:.2f} s")
    print(f"classifiers: {moderator.models()}")
    texts = prompts(n)
    for t in texts[:200]:  # warm caches
        moderator.check(t, "default")

    base = timed(normalize, texts)
    check = timed(lambda t: moderator.check(t, "default"), texts)
    check_cpu = cpu_timed(lambda t: moderator.check(t, "default"), texts)
    actions: dict[str, int] = {}
    for t in texts:
        a = moderator.check(t, "default").decision.action.value
        actions[a] = actions.get(a, 0) + 1
    print(f"{n} prompts, actions: {actions}")
    print(line("normalize (baseline)", base))
    print(line("TextModerator.check", check))
    print(line("TextModerator.check (CPU)", check_cpu))
    print(
        f"  (wall - CPU at p99 is time spent waiting for a core: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    ratio = statistics.median(check) / statistics.median(base)
    print(f"check / normalize (p50): {ratio:.1f}x")
    p50, p99 = percentile(check, 50), percentile(check, 99)
    print(
        f"target p50 <= 2 ms: {'met' if p50 <= 2 else 'MISSED'} ({p50:.3f} ms); "
        f"p99 <= 10 ms: {'met' if p99 <= 10 else 'MISSED'} ({p99:.3f} ms)"
    )

    # Per classifier, to see where the time goes.
    sample = [normalize(t) for t in texts[:1000]]
    for name in moderator.classifier_names("default"):
        clf = moderator._classifier(name)
        if isinstance(clf, BaseException):
            print(f"  {name}: failed to load: {clf}")
            continue
        ms = []
        try:
            for p in sample:
                t1 = time.perf_counter()
                clf.classify(p)
                ms.append((time.perf_counter() - t1) * 1000)
        except Exception as exc:  # the pipeline fails closed on this; report it, keep going
            print(f"  {name}: raised {type(exc).__name__}: {exc}")
            continue
        print("  " + line(name, ms))

    batch = 32
    t1 = time.perf_counter()
    for start in range(0, n, batch):
        moderator.check_many(texts[start : start + batch], "default")
    took = time.perf_counter() - t1
    print(f"check_many (batches of {batch}): {n / took:,.0f} prompts/s")


if __name__ == "__main__":
    main()
