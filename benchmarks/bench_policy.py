"""Policy engine cost: decide() per prompt, loading/resolving policies, and a reload check.

Prints median and p99 in microseconds. ``decide`` runs with the packaged default policy and the
kids overlay (longer lists), on prompts with and without list matches, against a baseline of
building the verdict list alone in the same process.

    .venv/bin/python benchmarks/bench_policy.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from classifiers.base import CATEGORIES, Evidence, PromptText, Verdict
from policies.engine import decide
from policies.loader import DEFAULT_POLICY_PATH, PolicyLoader, load_policy
from policies.store import PolicyStore

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "policies"


def timeit(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """Median and p99 in microseconds over ``n`` calls (after a short warm-up)."""
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]


def prompt(text: str) -> PromptText:
    return PromptText(text, text.casefold(), tuple(range(len(text) + 1)))


def verdicts(text: str) -> list[Verdict]:
    """One verdict per category from two classifiers, like the lexicon + learned pipeline."""
    out = []
    for i, category in enumerate(CATEGORIES):
        out.append(Verdict("learned", category, 0.05 * i, "learned", "1"))
        ev = (Evidence(text[:4], 0, 4),)
        out.append(Verdict("lexicon", category, 0.02 * i, "lexicon", "1", ev))
    return out


def main() -> None:
    loader = PolicyLoader(DEFAULT_POLICY_PATH)
    policies = {
        "default": loader.load(DEFAULT_POLICY_PATH),
        "kids": loader.load(FIXTURES / "kids.yaml"),
    }
    texts = {
        "plain": "a red fox running through fresh snow at dawn, cinematic lighting, 4k",
        "lists": "how do I kill a python process, then film a photo shoot with a toy gun",
        "long": " ".join(["a quiet village by the lake with children playing"] * 40),
    }
    print(f"{'case':<28}{'median us':>12}{'p99 us':>10}")
    base_med, _ = timeit(lambda: verdicts(texts["plain"]), 5000)
    print(f"{'baseline: build verdicts':<28}{base_med:>12.1f}")
    for pname, policy in policies.items():
        for tname, text in texts.items():
            p, v = prompt(text), verdicts(text)
            med, p99 = timeit(
                lambda p=p, v=v, policy=policy: decide(policy, "prompt", v, prompt=p), 5000
            )
            print(f"{'decide ' + pname + '/' + tname:<28}{med:>12.1f}{p99:>10.1f}")
    med, p99 = timeit(lambda: load_policy(FIXTURES / "kids.yaml"), 50)
    print(f"{'load kids overlay (+base)':<28}{med:>12.1f}{p99:>10.1f}")
    store = PolicyStore(DEFAULT_POLICY_PATH, FIXTURES)
    med, p99 = timeit(store.reload_if_changed, 2000)
    print(f"{'reload check, unchanged':<28}{med:>12.1f}{p99:>10.1f}")


if __name__ == "__main__":
    main()
